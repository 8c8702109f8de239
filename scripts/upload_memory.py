"""Peak memory of parsing one large prediction upload, per format (what the service holds while
it turns a raw_data part into the long-format frame a pipeline reads).

Each measurement runs in a fresh process: the multipart body is written to a file and read from
it as gunicorn hands a body to the app (a stream), parsed by ``uploads.require_files`` as
``POST /serve_prediction`` does, then by ``parsing.read_raw_data``. Reported: the peak of
Python's and numpy's allocations (``tracemalloc``) and the peak resident set (VmHWM, reset
just before the parse), beside the upload's size and the parsed frame's.

    .venv/bin/python scripts/upload_memory.py                      # this checkout
    .venv/bin/python scripts/upload_memory.py --root /tmp/before   # another one (e.g. git archive)
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOUNDARY = "automl-memory-boundary"
FORMATS = ("csv", "json", "parquet", "wide-csv")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to import automl from")
    parser.add_argument("--series", type=int, default=5000)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--formats", nargs="*", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--string-storage", choices=("auto", "python", "pyarrow"), default="auto",
                        help="pandas' text storage (python: as without pyarrow installed)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one body file
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure(Path(args.one), args.root, args.string_storage)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats:
            body = _write_body(Path(tmp), fmt, args.series, args.length)
            out = subprocess.run([sys.executable, __file__, "--root", str(args.root), "--one",
                                  str(body), "--string-storage", args.string_storage],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                rows.append({"format": fmt, "error": out.stderr.strip().splitlines()[-1]})
            else:
                rows.append({"format": fmt, **json.loads(out.stdout)})
            body.unlink()
    print(f"{args.series} series x {args.length} points ({args.series * args.length:,} rows), "
          f"automl from {args.root}, pandas text storage {args.string_storage}")
    print(f"{'format':<9} {'upload MB':>10} {'frame MB':>9} {'tracemalloc peak MB':>20} "
          f"{'RSS peak over start MB':>23}")
    for row in rows:
        if "error" in row:
            print(f"{row['format']:<9} {row['error']}")
            continue
        print(f"{row['format']:<9} {row['upload_mb']:>10.1f} {row['frame_mb']:>9.1f} "
              f"{row['tracemalloc_peak_mb']:>20.1f} {row['rss_peak_mb']:>23.1f}")
    return 0


def _write_body(tmp: Path, fmt: str, n_series: int, length: int) -> Path:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    values = rng.normal(size=(n_series, length)).round(6)
    ids = np.arange(100_000, 100_000 + n_series)
    long = pd.DataFrame({"example_id": np.repeat(ids, length), "measurement": values.ravel()})
    data = tmp / f"data.{fmt}"
    if fmt == "csv":
        long.to_csv(data, index=False)
        name, ctype = "data.csv", "text/csv"
    elif fmt == "json":
        long.to_json(data)
        name, ctype = "data.json", "application/json"
    elif fmt == "parquet":
        long.to_parquet(data, index=False)
        name, ctype = "data.parquet", "application/vnd.apache.parquet"
    else:
        wide = pd.DataFrame(values, columns=[str(i) for i in range(length)])
        wide.insert(0, "example_id", ids)
        wide.to_csv(data, index=False)
        name, ctype = "data.csv", "text/csv"
    params = b"pipeline_id: 1\n" + (b"layout: wide\n" if fmt == "wide-csv" else b"")
    body = tmp / f"body-{fmt}"
    with body.open("wb") as out:
        out.write(_part_head("raw_data", name, ctype))
        with data.open("rb") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        out.write(b"\r\n" + _part_head("params", "params.yml", "application/yaml") + params
                  + f"\r\n--{BOUNDARY}--\r\n".encode())
    data.unlink()
    return body


def _part_head(name: str, filename: str, ctype: str) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n").encode()


def _measure(body: Path, root: Path, string_storage: str) -> dict:
    sys.path.insert(0, str(root))
    import gc
    import tracemalloc

    import pandas as pd

    pd.set_option("mode.string_storage", string_storage)
    from flask import Request
    from werkzeug.test import EnvironBuilder

    from automl import parsing, uploads
    from automl.parsing import Columns

    size = body.stat().st_size
    with body.open("rb") as stream:
        environ = EnvironBuilder(method="POST", path="/serve_prediction", input_stream=stream,
                                 content_length=size,
                                 content_type=f"multipart/form-data; boundary={BOUNDARY}"
                                 ).get_environ()
        request = Request(environ)
        gc.collect()
        _reset_peak_rss()
        start_rss = _rss("VmRSS")
        tracemalloc.start()
        frame = _parse(request, uploads, parsing, Columns())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peak_rss = _rss("VmHWM")
    assert frame["example_id"].nunique() > 0
    return {"upload_mb": size / 2**20,
            "frame_mb": frame.memory_usage(deep=True).sum() / 2**20,
            "tracemalloc_peak_mb": peak / 2**20,
            "rss_peak_mb": (peak_rss - start_rss) / 2**10}


def _parse(request, uploads, parsing, columns):
    """What POST /serve_prediction does before scoring, in whichever API the checkout has."""
    if "streamed" in inspect.signature(uploads.require_files).parameters:
        files = uploads.require_files(request, uploads.PREDICTION_FILES, streamed=("raw_data",))
    else:
        files = uploads.require_files(request, uploads.PREDICTION_FILES)
    extra = {}
    if "layout" in inspect.signature(parsing.read_raw_data).parameters:
        from automl.params import parse_prediction_params

        extra["layout"] = parse_prediction_params(files["params"].payload).layout or "long"
    upload = files.pop("raw_data")
    return parsing.read_raw_data(**upload.as_args(), columns=columns, field="raw_data",
                                 max_series=10_000_000, **extra)


def _reset_peak_rss() -> None:
    with open(f"/proc/{os.getpid()}/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current RSS


def _rss(field: str) -> int:
    """A /proc/self/status memory figure, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


if __name__ == "__main__":
    raise SystemExit(main())
