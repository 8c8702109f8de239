"""Whether waiting trainings can starve the API: how fast ``/health`` and a one-series
prediction answer while many synchronous trainings wait and a long training runs.

Against gunicorn started as the Procfile starts it (default settings: 2 gevent workers), with
a stored pipeline (tsfresh ``minimal``, ExtraTrees). Three phases, each probing ``/health``
and a one-series ``POST /serve_prediction`` alternately, one request at a time:

1. *idle*: nothing else running;
2. *long job*: a TPOT search running (it takes both CPUs);
3. *long job + N waiting*: the search, and N synchronous ``POST /train_model`` requests, each
   holding its connection open while its job waits in the queue behind the search.

Then every job is cancelled, and each waiting client must receive its answer (409 cancelled).
Figures are latencies in ms (median, 99th percentile, worst) and the loaded/idle ratio of
the medians. The target: every probe within 1 s with 50 waiting.

    .venv/bin/python bench/overload.py [--smoke] [--out DIR] [--waiting 50] [--probes 100]
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import ROOT, arguments, csv_bytes, load_split, long_format, machine, pyplot, report

sys.path.insert(0, str(ROOT / "tests"))  # the real-server helpers the end-to-end tests use

FIXED = (b"extract_features: {default_fc_parameters: minimal}\n"
         b"model_training: {model: extra_trees, model_args: {n_estimators: 100, random_state: 0},"
         b" cv: 3}\n")
SEARCH = (b"extract_features: {default_fc_parameters: minimal}\n"
          b"model_training: {model: tpot, cv: 3, model_args: {generations: 1000,"
          b" population_size: 10, max_time_mins: 10}}\n")
TARGET_S = 1.0


def main() -> None:
    args = arguments(__doc__.splitlines()[0],
                     waiting=(int, 50, "synchronous trainings waiting in the queue"),
                     probes=(int, 100, "probes of each route per phase"))
    import requests
    from servers import GunicornServer

    waiting, probes = (5, 5) if args.smoke else (args.waiting, args.probes)
    X, y = load_split("GunPoint", "train")
    raw, labels = long_format(X, y)
    files = {"raw_data": ("raw.csv", csv_bytes(raw)), "labels": ("labels.csv", csv_bytes(labels))}
    X_test, y_test = load_split("GunPoint", "test")
    one, _ = long_format(X_test[:1], y_test[:1], first_id=10_000)
    one_series = csv_bytes(one)

    with tempfile.TemporaryDirectory() as tmp:
        server = GunicornServer(Path(tmp) / "gunicorn.log", env={
            "AUTOML_MODEL_DIR": str(Path(tmp) / "models"), "AUTOML_SECRET_KEY": "bench-overload",
            "AUTOML_MAX_QUEUED_JOBS": str(waiting + 5), "AUTOML_RATE_LIMIT": "off"})
        with server:
            trained = requests.post(f"{server.url}/train_model", timeout=300,
                                    files={**files, "params": ("p.yml", FIXED + b"pipeline_id: 1\n")})
            assert trained.status_code == 200, trained.text

            def probe() -> tuple[float, float]:
                began = time.perf_counter()
                assert requests.get(f"{server.url}/health", timeout=30).status_code == 200
                health = time.perf_counter() - began
                began = time.perf_counter()
                answer = requests.post(f"{server.url}/serve_prediction", timeout=30, files={
                    "raw_data": ("one.csv", one_series), "params": ("p.yml", b"pipeline_id: 1\n")})
                assert answer.status_code == 200 and len(answer.json()) == 1, answer.text
                return health, time.perf_counter() - began

            rows = [phase("idle", [probe() for _ in range(probes)])]
            search = requests.post(f"{server.url}/train_model", headers={"Prefer": "respond-async"},
                                   files={**files, "params": ("p.yml", SEARCH)}, timeout=60).json()
            wait_until(lambda: requests.get(f"{server.url}/jobs/{search['jobId']}",
                                            timeout=10).json()["state"] == "running")
            time.sleep(5)  # the search's cluster is up and busy
            rows.append(phase("long job", [probe() for _ in range(probes)]))

            pool = ThreadPoolExecutor(waiting)
            clients = [pool.submit(requests.post, f"{server.url}/train_model", timeout=600,
                                   files={**files, "params": ("p.yml", FIXED)})
                       for _ in range(waiting)]
            wait_until(lambda: len(requests.get(f"{server.url}/jobs?state=queued&limit=500",
                                                timeout=10).json()) == waiting)
            rows.append(phase(f"long job + {waiting} waiting", [probe() for _ in range(probes)]))

            for job in requests.get(f"{server.url}/jobs?limit=500", timeout=10).json():
                if job["state"] in ("queued", "running"):
                    requests.delete(f"{server.url}/jobs/{job['jobId']}", timeout=10)
            answered = [c.result(timeout=120) for c in clients]
            pool.shutdown()
            cancelled = sum(a.status_code == 409 and a.json()["error"] == "cancelled"
                            for a in answered)
    idle_p50 = {route: rows[0][f"{route} p50 ms"] for route in ("health", "prediction")}
    for row in rows:
        for route in ("health", "prediction"):
            row[f"{route} p50 / idle"] = row[f"{route} p50 ms"] / idle_p50[route]
    worst = max(max(r["health max ms"], r["prediction max ms"]) for r in rows)
    note = (f"{machine()}. gunicorn from the Procfile (2 gevent workers); {probes} probes of each "
            f"route per phase, one at a time. Every waiting client got its answer when its job "
            f"was cancelled: {cancelled} of {waiting} (409 cancelled). Worst probe {worst:.0f} ms; "
            f"target: within {TARGET_S * 1000:.0f} ms.")
    columns = ["phase", "probes", "health p50 ms", "health p99 ms", "health max ms",
               "prediction p50 ms", "prediction p99 ms", "prediction max ms",
               "health p50 / idle", "prediction p50 / idle"]
    report(args.out, "overload", "API latency while trainings wait", rows, note, columns,
           figure=_figure(rows), smoke=args.smoke)
    print(json.dumps({"cancelled answers": cancelled, "waiting": waiting, "worst ms": worst}))


def phase(name: str, timings: list[tuple[float, float]]) -> dict:
    row = {"phase": name, "probes": len(timings)}
    for route, values in (("health", [t[0] for t in timings]), ("prediction", [t[1] for t in timings])):
        ms = sorted(v * 1000 for v in values)
        row.update({f"{route} p50 ms": statistics.median(ms),
                    f"{route} p99 ms": ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))],
                    f"{route} max ms": ms[-1]})
    print(f"{name}: {row}", flush=True)
    return row


def wait_until(condition, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the service did not get there in time")
        time.sleep(0.5)


def _figure(rows):
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.2))
    phases = [r["phase"] for r in rows]
    for offset, route in ((-0.2, "health"), (0.2, "prediction")):
        axis.bar([i + offset for i in range(len(rows))], [r[f"{route} p99 ms"] for r in rows],
                 width=0.4, label=f"{route} (p99)")
    axis.axhline(TARGET_S * 1000, color="grey", linestyle="--", linewidth=1, label="target")
    axis.set_xticks(range(len(rows)), phases)
    axis.set_ylabel("ms")
    axis.legend()
    return figure


if __name__ == "__main__":
    main()
