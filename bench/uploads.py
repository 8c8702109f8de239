"""What a large training upload costs the web process: time to the job's 202 and the gunicorn
worker's peak memory, per upload size.

Against gunicorn started as the Procfile starts it (a fresh server per size, so each peak is
that upload's), with ``MAX_UPLOAD_MB`` raised above the largest size. Each upload is a long
CSV of GunPoint training series, seven of one class end to end (1,050 points) with Gaussian
noise (sd 0.05) on every copy, sent by ``curl -F`` (which streams the file, as a client of a
large upload would) with ``Prefer: respond-async``; the job is cancelled once it is accepted.
The request parses the upload once (to refuse bad data at once) and streams it to the store.

Figures: seconds until the 202, the worker's resident memory before the upload and its
high-water mark after (``VmHWM``), and the growth as a multiple of the file's size. Held as
bytes, the upload alone would add 1x; the parsed table is what the rest is.

    .venv/bin/python bench/uploads.py [--smoke] [--out DIR] [--sizes-mb 50 250 1000]
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, arguments, load_split, machine, pyplot, report

sys.path.insert(0, str(ROOT / "tests"))  # the real-server helpers the end-to-end tests use

SERIES_PER_ROW = 7  # GunPoint series joined into one long one
NOISE_SD = 0.05
ROWS_PER_WRITE = 1_000_000
PARAMS = b"extract_features: {engine: minirocket}\nmodel_training: {model_args: {max_time_mins: 1}}\n"


def write_upload(folder: Path, megabytes: float) -> tuple[Path, Path, int, int]:
    """A long CSV of at least ``megabytes`` and its labels; (raw, labels, series, rows)."""
    X, y = load_split("GunPoint", "train")
    X = X[:, 0, :]
    by_class = {label: X[y == label] for label in np.unique(y)}
    rng = np.random.default_rng(0)
    raw, labels = folder / "raw_data.csv", folder / "labels.csv"
    series = rows = 0
    with raw.open("w") as out, labels.open("w") as label_out:
        out.write("example_id,time,measurement\n")
        label_out.write("example_id,label\n")
        while out.tell() < megabytes * 1e6:
            block = []
            # About 21 bytes a row: a small upload is not overshot by a whole block.
            while sum(len(b) for b in block) < min(ROWS_PER_WRITE, megabytes * 1e6 / 21):
                label = list(by_class)[series % len(by_class)]
                parts = by_class[label][rng.integers(0, len(by_class[label]), SERIES_PER_ROW)]
                values = parts.ravel() + rng.normal(0, NOISE_SD, parts.size)
                block.append(np.column_stack([np.full(values.size, series),
                                              np.arange(values.size), values]))
                label_out.write(f"{series},{label}\n")
                series += 1
            block = np.concatenate(block)
            np.savetxt(out, block, fmt=["%d", "%d", "%.6g"], delimiter=",")
            rows += len(block)
    return raw, labels, series, rows


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def workers(server) -> list[int]:
    """The gunicorn worker processes: members of the server's group that are not the master
    or the shell (the master is the oldest gunicorn process)."""
    gunicorns = [pid for pid in server.pids()
                 if "gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
    return sorted(gunicorns)[1:]


def measure(folder: Path, megabytes: float) -> dict:
    import requests
    from servers import GunicornServer

    raw, labels, series, rows = write_upload(folder, megabytes)
    params = folder / "params.yml"
    params.write_bytes(PARAMS)
    size_mb = raw.stat().st_size / 1e6
    server = GunicornServer(folder / "gunicorn.log", env={
        "AUTOML_MODEL_DIR": str(folder / "models"), "AUTOML_SECRET_KEY": "bench-uploads",
        "AUTOML_RATE_LIMIT": "off", "MAX_UPLOAD_MB": str(int(size_mb * 1.1) + 10),
        "AUTOML_UPLOAD_TIMEOUT_SECONDS": "3600", "GUNICORN_TIMEOUT": "3600"})
    with server:
        idle = {pid: kib(pid, "VmRSS") for pid in workers(server)}
        began = time.perf_counter()
        answer = subprocess.run(
            ["curl", "-sS", "-o", str(folder / "answer.json"), "-w", "%{http_code}",
             "-H", "Prefer: respond-async", "-F", f"raw_data=@{raw};type=text/csv",
             "-F", f"labels=@{labels};type=text/csv", "-F", f"params=@{params}",
             f"{server.url}/train_model"], capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - began
        peaks = {pid: kib(pid, "VmHWM") for pid in idle}
        body = (folder / "answer.json").read_text()
        if answer.stdout != "202":
            print(f"refused: {answer.stdout} {body[:300]}", flush=True)
        else:
            import json

            requests.post(f"{server.url}/jobs/{json.loads(body)['jobId']}/cancel", timeout=30)
    busiest = max(peaks, key=lambda pid: peaks[pid] - idle[pid])
    grown_mb = (peaks[busiest] - idle[busiest]) * 1024 / 1e6
    return {"upload MB": round(size_mb, 1), "series": series, "rows": rows,
            "status": int(answer.stdout), "to 202 s": seconds, "MB/s": size_mb / seconds,
            "worker idle MB": idle[busiest] * 1024 / 1e6,
            "worker peak MB": peaks[busiest] * 1024 / 1e6,
            "growth MB": grown_mb, "growth / upload": grown_mb / size_mb}


def figure(rows: list[dict]):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sizes = [row["upload MB"] for row in rows]
    ax.plot(sizes, [row["growth MB"] for row in rows], "o-", label="worker growth")
    ax.plot(sizes, sizes, "k:", label="the upload's size (held once as bytes)")
    ax.set_xlabel("upload (MB of CSV)")
    ax.set_ylabel("MB")
    ax.legend()
    ax.set_title("A training upload in the web worker")
    return fig


def main() -> None:
    args = arguments(__doc__.splitlines()[0],
                     sizes_mb=(float, [50.0, 250.0, 1000.0], "upload sizes in MB of CSV"))
    sizes = [1.0] if args.smoke else args.sizes_mb
    rows = []
    for megabytes in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(Path(tmp), megabytes))
            print(rows[-1], flush=True)
    note = (f"{machine()}. gunicorn from the Procfile; one upload per fresh server, sent by "
            "`curl -F` with `Prefer: respond-async`; the job cancelled once accepted. "
            "`growth` is the busiest worker's peak resident memory (VmHWM) above its idle "
            "size: the request's parse of the upload, which it streams to the store as a file.")
    report(args.out, "uploads", "Large training uploads: time to 202 and the web worker's memory",
           rows, note, figure=figure(rows), smoke=args.smoke)


if __name__ == "__main__":
    main()
