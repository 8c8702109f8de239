"""What serving a prediction over HTTP costs on top of the prediction itself.

One pipeline per feature engine is trained on GunPoint's train split with a fixed model (no
search) through the service's own training code and stored, signed, in a temporary model
directory; so is the ensemble a search job serves (the candidates of ``engine: auto`` weighed
by CAWPE, as many as ``ensemble_cost`` allows). Then, for 1 and 100 series of the test split sent as the same CSV bytes:

* in-process: what a Python caller pays, ``read_raw_data`` on the bytes then
  ``classifier.scores(raw)``;
* over HTTP: ``requests`` posting the multipart files ``raw_data`` and ``params`` to a real
  gunicorn started as the Procfile starts it (same model directory), answer decoded. The
  server's own share of each request is read from gunicorn's access log, whose format alone
  is extended (``GUNICORN_CMD_ARGS``) with the request's duration.

After a warm-up (which also loads the pipeline into the serving worker's cache), both are
measured alternately, in alternating order, so load from other work on the machine hits them
alike; each figure is the median of the repetitions. The ratio HTTP / in-process is the serving
overhead. The floor is an empty request to the same gunicorn (``GET /health``: Flask, routing,
a small JSON answer): what no prediction can go below. A second table times, in-process, each
step the request adds around the prediction.

    .venv/bin/python bench/serving.py [--smoke] [--out DIR] [--repeats N] [--engines ...]
"""
from __future__ import annotations

import io
import shlex
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from common import (ROOT, arguments, columns_yaml, csv_bytes, load_split, long_format, machine,
                    markdown_table, pyplot, report)

sys.path.insert(0, str(ROOT / "tests"))  # the real-server helpers the end-to-end tests use

SIZES = (1, 100)
ENSEMBLE = "ensemble"
ENGINES = ["tsfresh", "minirocket", "hydra", "quant", "multirocket", "rdst", "multirocket-hydra",
           ENSEMBLE]
SMOKE_ENGINES = ["tsfresh", "minirocket", ENSEMBLE]
ENGINE_PARAMS = {
    # tsfresh's `efficient` settings, as the README's figures; the smoke run takes `minimal`.
    "tsfresh": "  default_fc_parameters: {fc}\n",
    "multirocket-hydra": "  engine: [multirocket, hydra]\n",  # a pipeline id has no "+"
    ENSEMBLE: "  engine: auto\n  default_fc_parameters: {fc}\n",
}
MODEL = "model_training: {model: extra_trees, model_args: {n_estimators: 100, random_state: 0}}\n"
SECRET = "bench-serving"
# gunicorn's default access log format plus the seconds it spent on the request (the WSGI call:
# body read, route, answer written), given on top of gunicorn.conf.py as GUNICORN_CMD_ARGS.
ACCESS_LOG = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s'


def engine_available(engine: str) -> bool:
    from automl.errors import ApiError
    from automl.params import parse_training_params

    try:
        parse_training_params(f"extract_features:\n{_engine_params(engine)}".format(fc="minimal")
                              .encode())
        return True
    except ApiError:  # no such engine (yet): the parameter file refuses it
        return False


def _engine_params(engine: str) -> str:
    return ENGINE_PARAMS.get(engine, f"  engine: {engine}\n")


def train_and_store(engine: str, models, smoke: bool) -> dict:
    """Train through the service's training code; store under the engine's name. The
    ensemble is the one a search job serves before its search: CAWPE over every candidate."""
    from automl.params import parse_training_params
    from automl.parsing import read_labels, read_raw_data
    from automl.training import train

    X, y = load_split("GunPoint", "train")
    if smoke:
        X, y = X[:20], y[:20]
    raw, labels = long_format(X, y)
    params_yaml = (columns_yaml(False)
                   + _engine_params(engine).format(fc="minimal" if smoke else "efficient")
                   + (SEARCH if engine == ENSEMBLE else MODEL))
    params = parse_training_params(params_yaml.encode())
    columns = params.features.columns
    started = time.perf_counter()
    raw = read_raw_data(csv_bytes(raw), filename="raw.csv", columns=columns)
    labels = read_labels(csv_bytes(labels), filename="labels.csv", columns=columns)
    if engine == ENSEMBLE:
        classifier, summary = _ensemble(raw, labels, params)
    else:
        classifier, summary = train(raw, labels, params)
    summary["trainTime"] = round(time.perf_counter() - started, 3)
    models.save(classifier, summary, pipeline_id=engine)
    return summary


SEARCH = "model_training: {model: tpot, model_args: {max_time_mins: 5, random_state: 0}}\n"


def _ensemble(raw, labels, params):
    from automl.ensemble import select
    from automl.report import finished
    from automl.training import evaluate_candidates

    run = evaluate_candidates(raw, labels, params)
    ranked = run.ensemble_order()  # the baseline first, then by preference, as a job does
    selection = select(ranked, run.pool.y_cv, run.pool.folds, run.pool.scoring,
                       keep=run.within_prediction_cost)  # as a job bounds its prediction time
    classifier, summary = finished(run.pool, run.classifier, selection, time.perf_counter(), {})
    summary["bestEngine"] = run.baseline.engine
    return classifier, summary


def floor_ms(session, url: str, repeats: int) -> float:
    """Median milliseconds of an empty request (GET /health) on the same session."""
    for _ in range(5):
        session.get(f"{url}/health").raise_for_status()
    return statistics.median(timed(lambda: session.get(f"{url}/health").raise_for_status())[0]
                             for _ in range(repeats))


def test_payloads() -> dict[int, bytes]:
    X, y = load_split("GunPoint", "test")
    return {n: csv_bytes(long_format(X[:n], y[:n], first_id=1000)[0]) for n in SIZES}


def in_process(classifier, payload: bytes) -> dict:
    from automl.parsing import read_raw_data

    raw = read_raw_data(payload, filename="raw_data.csv",
                        columns=classifier.features_.input_columns())
    return classifier.scores(raw)


def multipart(pipeline_id: str, payload: bytes) -> dict:
    return {"raw_data": ("raw_data.csv", payload, "text/csv"),
            "params": ("params.yml", f"pipeline_id: {pipeline_id}\n".encode(), "application/yaml")}


def over_http(session, url: str, pipeline_id: str, payload: bytes) -> dict:
    answer = session.post(f"{url}/serve_prediction", files=multipart(pipeline_id, payload))
    answer.raise_for_status()
    return answer.json()


def timed(call, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = call(*args)
    return (time.perf_counter() - started) * 1000, result


def served_ms(server, since: int) -> list[float]:
    """gunicorn's time per POST /serve_prediction logged after byte ``since`` (last field, s)."""
    lines = server.log.read_bytes()[since:].decode(errors="replace").splitlines()
    found = []
    for line in lines:
        if '"POST /serve_prediction ' in line:
            try:
                found.append(float(line.rsplit(" ", 1)[1]) * 1000)
            except ValueError:  # not the format this script gave gunicorn
                return []
    return found


def measure(classifier, session, server, pipeline_id, payloads, repeats, warmup) -> list[dict]:
    for _ in range(warmup):  # imports, caches, the serving worker's copy of the pipeline
        for payload in payloads.values():
            in_process(classifier, payload)
            over_http(session, server.url, pipeline_id, payload)
    time.sleep(0.3)  # gunicorn logs a request after answering it: let the warm-up's land first
    log_start = server.log.stat().st_size
    times = {(n, way): [] for n in payloads for way in ("in", "http")}
    order = []
    for rep in range(repeats):
        for n, payload in payloads.items():
            ways = ("in", "http") if rep % 2 == 0 else ("http", "in")
            for way in ways:
                if way == "in":
                    ms, local = timed(in_process, classifier, payload)
                else:
                    ms, remote = timed(over_http, session, server.url, pipeline_id, payload)
                    order.append(n)
                times[n, way].append(ms)
            if remote != {str(k): v for k, v in local.items()}:
                raise AssertionError(f"HTTP and in-process scores differ for {n} series")
    time.sleep(0.3)  # let the last access log line land
    server_ms = served_ms(server, log_start)
    by_size = ({n: [ms for m, ms in zip(order, server_ms) if m == n] for n in payloads}
               if len(server_ms) == len(order) else {})  # else leave those columns empty
    rows = []
    for n in payloads:
        inproc, http = statistics.median(times[n, "in"]), statistics.median(times[n, "http"])
        served = by_size.get(n)
        server_side = statistics.median(served) if served else None
        rest = (statistics.median(h - s for h, s in zip(times[n, "http"], served))
                if served else None)
        rows.append({"engine": pipeline_id, "series": n, "in-process ms": inproc,
                     "HTTP ms": http, "ratio": http / inproc,
                     "in gunicorn ms": server_side,
                     "transport + client ms": rest,
                     "HTTP p90 ms": _quantile(times[n, "http"], 0.9),
                     "upload KiB": len(payloads[n]) / 1024})
    return rows


def request_steps(app, engine: str, payload: bytes, repeats: int) -> dict:
    """In-process medians of what the route does around the prediction, for one payload."""
    import requests
    from flask import jsonify
    from werkzeug.wrappers import Request

    from automl.params import parse_prediction_params
    from automl.parsing import read_raw_data
    from automl.store import ModelStore
    from automl.uploads import require_files

    state = app.extensions["state"]
    body = requests.Request("POST", "http://bench/serve_prediction",
                            files=multipart(engine, payload)).prepare()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/serve_prediction",
               "CONTENT_TYPE": body.headers["Content-Type"],
               "CONTENT_LENGTH": str(len(body.body)), "wsgi.input": None}
    classifier = state.models.get(engine)
    scores = in_process(classifier, payload)

    def parse_multipart():
        return require_files(Request({**environ, "wsgi.input": io.BytesIO(body.body)}),
                             ("raw_data", "params"))

    def encode_answer():
        with app.app_context():
            return jsonify(scores).get_data()

    steps = {
        # In both ways: the CSV into a frame (the in-process column includes it too).
        "read_raw_data (both ways)": lambda: read_raw_data(
            payload, filename="raw_data.csv", columns=classifier.features_.input_columns()),
        "multipart": parse_multipart,
        "params YAML": lambda: parse_prediction_params(f"pipeline_id: {engine}\n".encode()),
        "store check (cached)": lambda: state.models.get(engine),
        "JSON answer": encode_answer,
        # What a worker pays once per pipeline version: read, HMAC check, unpickle.
        "store load (first request)": lambda: ModelStore(state.backend, SECRET.encode()).get(engine),
    }
    return {name: statistics.median(timed(step)[0] for _ in range(repeats))
            for name, step in steps.items()}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def figure(rows: list[dict]):
    plt = pyplot()
    labels = [f"{r['engine']}\n{r['series']} series" for r in rows]
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(rows), 4))
    width = 0.38
    xs = range(len(rows))
    ax.bar([x - width / 2 for x in xs], [r["in-process ms"] for r in rows], width,
           label="in-process (parse + scores)")
    bars = ax.bar([x + width / 2 for x in xs], [r["HTTP ms"] for r in rows], width,
                  label="HTTP (gunicorn + requests)")
    for bar, row in zip(bars, rows):
        ax.annotate(f"{row['ratio']:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), labels)
    ax.set_yscale("log")
    ax.set_ylabel("median latency, ms (log scale)")
    ax.set_title("Prediction latency: in-process vs over HTTP")
    ax.legend(fontsize=8)
    return fig


def main() -> None:
    args = arguments(__doc__.splitlines()[0],
                     repeats=(int, 30, "measured repetitions per size (after the warm-up)"),
                     engines=(str, list(ENGINES), "feature engines to train and serve, and "
                                                  "the ensemble"))
    import requests

    from automl import create_app
    from servers import GunicornServer

    smoke = args.smoke
    repeats, warmup = (3, 2) if smoke else (args.repeats, 5)
    wanted = SMOKE_ENGINES if smoke and args.engines == ENGINES else args.engines
    engines = [e for e in wanted if engine_available(e)]
    skipped = sorted(set(wanted) - set(engines))
    payloads = test_payloads()
    rows, steps, trained = [], [], {}
    with tempfile.TemporaryDirectory() as state_dir:
        model_dir = f"{state_dir}/models"
        app = create_app({"MODEL_DIR": model_dir, "SECRET_KEY": SECRET, "RUN_JOBS": False})
        models = app.extensions["state"].models
        server = GunicornServer(Path(state_dir) / "gunicorn.log", env={
            "AUTOML_MODEL_DIR": model_dir, "AUTOML_SECRET_KEY": SECRET,
            "GUNICORN_CMD_ARGS": f"--access-logformat {shlex.quote(ACCESS_LOG)}",
            **({"WEB_CONCURRENCY": "1"} if smoke else {})})  # smoke: boot one worker, not two
        with ThreadPoolExecutor(1) as pool:
            booting = pool.submit(server.start)  # gunicorn imports while the pipelines train
            try:
                for engine in engines:
                    trained[engine] = train_and_store(engine, models, smoke)
                    print(f"trained {engine}: {trained[engine]['trainShape']} in "
                          f"{trained[engine]['trainTime']:.1f} s", flush=True)
                booting.result()
                with requests.Session() as session:
                    floor = floor_ms(session, server.url, max(repeats, 10))
                    for engine in engines:
                        rows += measure(models.get(engine), session, server, engine, payloads,
                                        repeats, warmup)
            finally:
                wait([booting])
                server.stop()
        for engine in engines:
            costs = request_steps(app, engine, payloads[max(SIZES)], 5 if smoke else 20)
            steps.append({"engine": engine, **costs})
    shapes = "; ".join(f"{e}: {s['trainShape'][1]} features" for e, s in trained.items())
    one = {row["engine"]: row["HTTP ms"] for row in rows if row["series"] == 1}
    for row in rows:
        row["x floor"] = row["HTTP ms"] / floor if row["series"] == 1 else None
    best = (trained.get(ENSEMBLE, {}).get("bestEngine") or "").replace("+", "-")  # row names
    members = [m["engine"] for m in (trained.get(ENSEMBLE, {}).get("ensemble") or {}).get(
        "members", [])]
    ensemble_line = (f"The ensemble ({len(members)} members: {', '.join(members)}) answers one "
                     f"series over HTTP in {one[ENSEMBLE]:.1f} ms, "
                     f"{one[ENSEMBLE] / one[best]:.2f}x the {best} engine's alone "
                     f"({one[best]:.1f} ms), the engine `auto` chose on its own."
                     if ENSEMBLE in one and best in one else "")
    workers = "one worker" if smoke else "default workers"
    not_measured = (f"Not measured: {', '.join(skipped)} (engine not available).\n"
                    if skipped else "")
    note = f"""
Median of {repeats} repetitions after {warmup} warm-up rounds, in-process and HTTP alternating.
GunPoint (aeon's copy): trained on the train split with ExtraTrees (100 trees), a fixed model,
no search ({shapes}); predictions for the first 1 and 100 series of the test split, sent as
CSV (example_id, time, measurement). *In-process* is `read_raw_data` on the CSV bytes plus
`classifier.scores(raw)`; *HTTP* is `requests` (one keep-alive session) posting the multipart
files to gunicorn started from the Procfile ({workers} and threads, job runner on) on the
same machine, answer decoded. *In gunicorn* is the server's time per request from its access
log (the WSGI call: body read, route, answer written; the log format is the only setting
changed); *transport + client* is the rest: HTTP framing, loopback, waking processes,
`requests`. The ratio is HTTP / in-process; the target is at most 1.3x for 100 series.
The floor, an empty request (`GET /health`) on the same session, took {floor:.2f} ms (median
of {max(repeats, 10)}); *x floor* is a one-series prediction's HTTP time over it.
{ensemble_line}
{not_measured}
What the route does around the prediction, in ms, timed in-process for the {max(SIZES)}-series
upload ({len(payloads[max(SIZES)]) / 1024:.0f} KiB). *Store load* (read, HMAC check, unpickle)
is paid once per worker and pipeline version; every later request only reads the record to
check the cached copy is current:

{markdown_table(steps)}

Machine: {machine()}
"""
    report(args.out, "serving", "Serving overhead: HTTP vs in-process prediction", rows, note,
           columns=["engine", "series", "in-process ms", "HTTP ms", "ratio", "x floor",
                    "in gunicorn ms", "transport + client ms", "HTTP p90 ms", "upload KiB"],
           figure=figure(rows), smoke=smoke)


if __name__ == "__main__":
    main()
