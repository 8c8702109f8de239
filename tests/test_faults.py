"""Faults and abuse against real processes: gunicorn from the Procfile, redis-server, a store
on a disk of its own. Waiting clients, slow clients, a store that goes away, fills up or turns
read-only, a damaged artifact, a killed web worker: each time the service answers in its
JSON shape, keeps serving what it can, loses nothing and writes nothing half.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from servers import GunicornServer, redis_server

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data"
SECRET = "faults-secret"
FAST = (b"extract_features: {default_fc_parameters: minimal}\n"
        b"model_training: {model: random_forest, model_args: {n_estimators: 30, random_state: 0},"
        b" cv: 3}\n")
LONG = (b"extract_features: {default_fc_parameters: minimal}\n"
        b"model_training: {model: tpot, cv: 3, model_args: {generations: 100, population_size: 8,"
        b" max_time_mins: 2, n_jobs: 1}}\n")
ONE_SERIES = None  # the first test series, in the upload format


def uploads(params: bytes, raw: str = "data_train.json") -> dict:
    return {"raw_data": (raw, (DATA / raw).read_bytes()),
            "labels": ("label_train.json", (DATA / "label_train.json").read_bytes()),
            "params": ("params.yml", params)}


def one_series() -> bytes:
    table = json.loads((DATA / "data_test.json").read_bytes())
    first_id = table["example_id"]["0"]
    rows = [k for k, v in table["example_id"].items() if v == first_id]
    return json.dumps({c: {r: table[c][r] for r in rows} for c in table}).encode()


def train(server, params: bytes = FAST, **kwargs) -> requests.Response:
    return requests.post(f"{server.url}/train_model", files=uploads(params), timeout=180, **kwargs)


def predict(server, pipeline_id, raw: bytes | None = None, timeout=30) -> requests.Response:
    files = {"raw_data": ("data.json", raw or (DATA / "data_test.json").read_bytes()),
             "params": ("params.yml", f"pipeline_id: {pipeline_id}\n".encode())}
    return requests.post(f"{server.url}/serve_prediction", files=files, timeout=timeout)


def json_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"} and body["message"], body
    if code:
        assert body["error"] == code, body
    return body


def wait_job(server, job_id, until, timeout_s=120) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = requests.get(f"{server.url}/jobs/{job_id}", timeout=10).json()
        if until(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.25)


def cancel_everything(server) -> None:
    for job in requests.get(f"{server.url}/jobs?limit=500", timeout=10).json():
        if job["state"] in ("queued", "running"):
            requests.delete(f"{server.url}/jobs/{job['jobId']}", timeout=10)


# -- waiting clients and slow clients ------------------------------------------------------------


def test_many_waiting_trainings_do_not_starve_predictions_and_listings(tmp_path):
    server = GunicornServer(tmp_path / "gunicorn.log", env={
        "AUTOML_MODEL_DIR": str(tmp_path / "models"), "AUTOML_SECRET_KEY": SECRET,
        "AUTOML_MAX_QUEUED_JOBS": "40", "AUTOML_RATE_LIMIT": "off"})
    with server:
        pipeline_id = train(server).json()["modelId"]
        long_job = requests.post(f"{server.url}/train_model", files=uploads(LONG),
                                 headers={"Prefer": "respond-async"}, timeout=30).json()["jobId"]
        wait_job(server, long_job, lambda j: j["state"] == "running", 60)
        waiting = ThreadPoolExecutor(24)
        answers = [waiting.submit(train, server) for _ in range(24)]  # each waits for its job
        deadline = time.monotonic() + 30  # each is parsed and checked before it is queued
        while len(requests.get(f"{server.url}/jobs?state=queued", timeout=10).json()) < 24:
            assert time.monotonic() < deadline, "the 24 trainings were not all queued in 30 s"
            time.sleep(0.25)
        row = one_series()
        for _ in range(10):  # before the fix these timed out after 15 s: all threads waited
            assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
            assert requests.get(f"{server.url}/models", timeout=10).status_code == 200
            assert len(predict(server, pipeline_id, row, timeout=10).json()) == 1
        cancel_everything(server)
        for answer in answers:  # each waiting client learns its job was cancelled, in JSON
            json_error(answer.result(timeout=60), 409, "cancelled")
        waiting.shutdown()


PYARROW_LOCK_CHILD = """
import threading
real, taken = threading.Lock, []

class Spy:  # pyarrow's own locks, made at its import: which threads take them
    def __init__(self):
        self.lock = real()
    def __enter__(self):
        taken.append(threading.current_thread().name)
        return self.lock.__enter__()
    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)

threading.Lock = Spy
import pyarrow
threading.Lock = real
from automl import create_app
from automl.parsing import read_raw_data
create_app({"MODEL_DIR": %r, "SECRET_KEY": "x", "RUN_JOBS": False})
worker = threading.Thread(name="request", target=read_raw_data,
                          args=(b'{"example_id": {"0": "a"}, "measurement": {"0": 1.0}}',))
worker.start(); worker.join()
print(",".join(taken))
"""


def test_no_request_thread_takes_the_lock_pyarrow_initialises_pandas_under(tmp_path):
    # Under gevent that lock is gevent's, which native threads cannot share: two request
    # threads meeting at it hung, and their trainings were never queued. The app takes it once,
    # in the main thread, before any request.
    taken = subprocess.run([sys.executable, "-c", PYARROW_LOCK_CHILD % str(tmp_path)],
                           capture_output=True, text=True, check=True,
                           cwd=DATA.parent).stdout.split()
    assert taken == ["MainThread"]


NUMBA_LOCK_CHILD = """
from gevent import monkey
monkey.patch_all()  # as gunicorn's gevent worker does, before the app is loaded
import _thread
from automl import create_app
from numba.core.compiler_lock import global_compiler_lock
create_app({"MODEL_DIR": %r, "SECRET_KEY": "x", "RUN_JOBS": False})
print(type(global_compiler_lock._lock) is type(monkey.get_original("_thread", "RLock")()))
"""


def test_under_gevent_numbas_compiler_lock_is_one_native_threads_can_share(tmp_path):
    # numba compiles or loads a function on its first call under that lock, in a request's
    # native thread; gevent's own lock may never wake a waiting thread.
    native = subprocess.run([sys.executable, "-c", NUMBA_LOCK_CHILD % str(tmp_path)],
                            capture_output=True, text=True, check=True,
                            cwd=DATA.parent).stdout.split()
    assert native == ["True"]


def _slow_upload(port: int, body_sent: bytes = b"--x\r\n") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /serve_prediction HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
                 b"Content-Type: multipart/form-data; boundary=x\r\n\r\n" + body_sent)
    return sock


def _answer(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def test_slow_uploads_hold_nothing_and_are_cut_off_with_408(tmp_path):
    server = GunicornServer(tmp_path / "gunicorn.log", env={
        "AUTOML_MODEL_DIR": str(tmp_path / "models"), "AUTOML_SECRET_KEY": SECRET,
        "AUTOML_UPLOAD_IDLE_SECONDS": "3", "AUTOML_UPLOAD_TIMEOUT_SECONDS": "6",
        "WEB_CONCURRENCY": "1", "AUTOML_RATE_LIMIT": "off"})
    with server:
        stalled = [_slow_upload(server.port) for _ in range(12)]
        trickling = _slow_upload(server.port)
        started = time.monotonic()
        probes = []
        while time.monotonic() - started < 2.5:  # all 12 stall meanwhile, on one worker
            probes.append(requests.get(f"{server.url}/health", timeout=5).status_code)
            trickling.sendall(b"a")
            time.sleep(0.1)
        assert probes and set(probes) == {200}
        for sock in stalled:  # cut off once they paused longer than the idle limit
            head, _, body = _answer(sock, 10).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), head
            assert json.loads(body)["error"] == "request_timeout"
            sock.close()
        while time.monotonic() - started < 7:  # a byte at a time: cut off at the total limit
            try:
                trickling.sendall(b"a")
            except OSError:
                break
            time.sleep(0.5)
        head, _, body = _answer(trickling, 10).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and b"AUTOML_UPLOAD_TIMEOUT_SECONDS" in body

        # What gunicorn itself refuses is JSON too.
        too_long = requests.get(f"{server.url}/{'a' * 5000}", timeout=10)
        assert json_error(too_long, 414)["error"] == "uri_too_long"
        big_header = requests.get(f"{server.url}/health", headers={"X-Big": "b" * 9000}, timeout=10)
        json_error(big_header, 431)


# -- the store -----------------------------------------------------------------------------------


def test_redis_restarting_mid_traffic_gives_503_then_the_service_recovers(tmp_path):
    with redis_server(tmp_path, persist=True) as redis, GunicornServer(
            tmp_path / "gunicorn.log", env={
                "REDIS_URL": redis.url, "AUTOML_SECRET_KEY": SECRET,
                "AUTOML_MODEL_DIR": str(tmp_path / "models"), "AUTOML_RATE_LIMIT": "off"}) as server:
        pipeline_id = train(server).json()["modelId"]
        expected = predict(server, pipeline_id).json()
        statuses, stop = [], threading.Event()

        def traffic():
            while not stop.is_set():
                for response in (requests.get(f"{server.url}/models", timeout=30),
                                 predict(server, pipeline_id)):
                    statuses.append(response.status_code)
                    if response.status_code != 200:
                        json_error(response, 503, "store_unavailable")
                        assert int(response.headers["Retry-After"]) > 0

        threads = [threading.Thread(target=traffic) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(1)
        redis.stop()
        time.sleep(3)
        redis.start()
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join(60)
        assert set(statuses) == {200, 503}, sorted(set(statuses))
        assert predict(server, pipeline_id).json() == expected  # no restart of the app
        assert train(server).status_code == 200


@contextmanager
def small_disk(path: Path, size_mb: int = 64):
    """A tmpfs of its own at ``path`` (needs root), so the store can fill it or lose write access."""
    path.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                       check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        pytest.skip(f"cannot mount a tmpfs here ({err})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".tmp-*"))


def test_a_full_or_read_only_store_refuses_writes_clearly_and_still_serves(tmp_path):
    with small_disk(tmp_path / "disk") as disk, GunicornServer(tmp_path / "gunicorn.log", env={
            "AUTOML_MODEL_DIR": str(disk / "models"), "AUTOML_SECRET_KEY": SECRET,
            # No file of the service open for writing: the disk can be remounted read-only.
            "AUTOML_RATE_LIMIT": "off", "AUTOML_RATE_LIMIT_STORAGE": "memory://"}) as server:
        pipeline_id = train(server).json()["modelId"]
        expected = predict(server, pipeline_id).json()
        listing = requests.get(f"{server.url}/models", timeout=10).json()

        filler = disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
        json_error(train(server), 507, "store_full")
        assert requests.get(f"{server.url}/models", timeout=10).json() == listing
        assert predict(server, pipeline_id).json() == expected
        assert requests.get(f"{server.url}/jobs", timeout=10).status_code == 200
        assert _leftovers(disk) == []
        filler.unlink()
        assert train(server).status_code == 200  # space again: it trains again

        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        try:
            json_error(train(server), 503, "store_read_only")
            assert predict(server, pipeline_id).json() == expected
            assert len(requests.get(f"{server.url}/models", timeout=10).json()) == 2
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        assert train(server).status_code == 200
        assert _leftovers(disk) == []
        assert "Traceback" not in server.log_tail(100_000)


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_artifact_is_refused_and_the_other_pipelines_served(tmp_path, damage):
    models = tmp_path / "models"
    with GunicornServer(tmp_path / "gunicorn.log", env={
            "AUTOML_MODEL_DIR": str(models), "AUTOML_SECRET_KEY": SECRET,
            "AUTOML_RATE_LIMIT": "off"}) as server:
        damaged = train(server, FAST + b"pipeline_id: damaged\n").json()["modelId"]
        kept = train(server, FAST + b"pipeline_id: kept\n").json()["modelId"]
        (artifact,) = (models / "artifacts").glob("damaged-*")
        payload = bytearray(artifact.read_bytes())
        if damage == "truncated":
            artifact.write_bytes(bytes(payload[: len(payload) // 2]))
        else:
            payload[len(payload) // 2] ^= 0xFF
            artifact.write_bytes(bytes(payload))
        for _ in range(4):  # whichever worker answers, none serves it
            body = json_error(predict(server, damaged), 500, "pipeline_unreadable")
            assert "signature" in body["message"]
            assert predict(server, kept).status_code == 200


def test_a_web_worker_killed_mid_request_loses_no_job(tmp_path):
    server = GunicornServer(tmp_path / "gunicorn.log", env={
        "AUTOML_MODEL_DIR": str(tmp_path / "models"), "AUTOML_SECRET_KEY": SECRET,
        "AUTOML_RATE_LIMIT": "off", "WEB_CONCURRENCY": "2"})
    with server:
        pipeline_id = train(server).json()["modelId"]
        job_id = requests.post(f"{server.url}/train_model", files=uploads(LONG.replace(
            b"max_time_mins: 2", b"max_time_mins: 0.75")), headers={"Prefer": "respond-async"},
            timeout=30).json()["jobId"]
        job = wait_job(server, job_id, lambda j: j["state"] == "running", 60)
        runner_worker = int(job["owner"].rsplit(":", 1)[1])
        in_flight = ThreadPoolExecutor(8)
        pending = [in_flight.submit(predict, server, pipeline_id) for _ in range(16)]
        os.kill(runner_worker, signal.SIGKILL)  # the worker whose runner started the training
        outcomes = []
        for future in pending:
            try:
                outcomes.append(future.result().status_code)
            except requests.ConnectionError:
                outcomes.append("dropped")  # a request the killed worker was serving
        in_flight.shutdown()
        assert 200 in outcomes and set(outcomes) <= {200, "dropped"}, outcomes
        for _ in range(10):  # the other worker, and the one gunicorn starts in its place, serve
            assert predict(server, pipeline_id).status_code == 200
        job = wait_job(server, job_id, lambda j: j["state"] in ("succeeded", "failed"), 150)
        assert job["state"] == "succeeded" and job["attempt"] == 1, job
        assert runner_worker not in server.pids()
