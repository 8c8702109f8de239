"""The service as a cluster of real processes: gunicorn instances sharing one Redis, training
processes, a Dask scheduler and its workers. Nothing is mocked: processes are killed with
SIGKILL, Redis is stopped, and what a user of the HTTP API then sees is checked.

One Redis and two gunicorn instances (A and B, each with one worker) serve most of the module;
each such test starts from an empty Redis with both instances up and no training running. The
tests that need an instance to themselves (a Redis of its own, a Dask scheduler) start their own.
"""
from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from servers import GunicornServer, dask_cluster, group_members, pids_matching, redis_server

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data"
SECRET = "cluster-secret"
FINISHED = ("succeeded", "failed", "cancelled")

# A fixed model: a few seconds.
FAST = (b"extract_features: {default_fc_parameters: minimal}\n"
        b"model_training: {model: random_forest, model_args: {n_estimators: 50, random_state: 0},"
        b" cv: 3}\n")
# Another fixed model, to replace a pipeline with one that scores differently.
OTHER = (b"extract_features: {default_fc_parameters: minimal}\n"
         b"model_training: {model: extra_trees, model_args: {n_estimators: 50, random_state: 1},"
         b" cv: 3}\n")
# A tiny search: the job's whole budget is one minute, extraction included.
TPOT = (b"extract_features: {default_fc_parameters: minimal}\n"
        b"model_training: {model: tpot, cv: 3, model_args: {generations: 2, population_size: 4,"
        b" max_time_mins: 1, random_state: 0, n_jobs: 2}}\n")


# -- the processes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """This module's own redis-server (no persistence): tests stop and start it."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def pair(store, tmp_path_factory):
    """Instances A and B on one Redis and one secret, each with a model directory of its own
    (which must stay empty: everything goes through Redis)."""
    root = tmp_path_factory.mktemp("instances")
    servers = [GunicornServer(root / f"gunicorn-{name}.log", env={
        "REDIS_URL": store.url, "AUTOML_SECRET_KEY": SECRET, "WEB_CONCURRENCY": "1",
        "AUTOML_JOB_STALE_SECONDS": "8",  # a lost training is noticed in seconds
        "AUTOML_MODEL_DIR": str(root / f"models-{name}")}) for name in "AB"]
    for server, name in zip(servers, "AB"):
        server.name, server.model_dir = name, root / f"models-{name}"
    try:
        with ThreadPoolExecutor(2) as pool:  # booting imports tsfresh and sklearn: ~7 s each
            list(pool.map(GunicornServer.start, servers))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def instances(pair, store):
    """A and B, both up, with an empty store and no training left from an earlier test."""
    if store.process.poll() is not None:  # an earlier test failed with Redis stopped
        store.start()
    for server in pair:
        if not server.running:  # an earlier test failed with it killed
            server.start()
    a = pair[0]
    deadline = time.monotonic() + 60
    while True:
        unfinished = [j["jobId"] for j in get(a, "/jobs") if j["state"] not in FINISHED]
        if not unfinished:
            break
        assert time.monotonic() < deadline, f"jobs still unfinished: {get(a, '/jobs')}"
        for job_id in unfinished:
            requests.delete(f"{a.url}/jobs/{job_id}", timeout=30)
        time.sleep(0.5)
    time.sleep(1.5)  # let each runner notice its jobs ended before their records go
    store.flush()
    yield pair


@pytest.fixture(scope="module")
def dask(tmp_path_factory):
    """A Dask scheduler and two single-threaded workers, as separate processes."""
    with dask_cluster(tmp_path_factory.mktemp("dask"), nworkers=2, nthreads=1) as cluster:
        yield cluster


# -- talking to the service ----------------------------------------------------------------

def get(server, route: str, status: int = 200):
    response = requests.get(f"{server.url}{route}", timeout=30)
    assert response.status_code == status, f"GET {route}: {response.status_code} {response.text}"
    return response.json()


def post_training(server, params: bytes, prefer_async: bool = False) -> requests.Response:
    files = {"raw_data": ("data_train.json", (DATA / "data_train.json").read_bytes()),
             "labels": ("label_train.json", (DATA / "label_train.json").read_bytes()),
             "params": ("params.yml", params)}
    headers = {"Prefer": "respond-async"} if prefer_async else {}
    return requests.post(f"{server.url}/train_model", files=files, headers=headers, timeout=300)


def train(server, params: bytes) -> dict:
    """A synchronous training: the report."""
    response = post_training(server, params)
    assert response.status_code == 200, \
        f"training answered {response.status_code} {response.text}\n{server.log_tail()}"
    return response.json()


def submit(server, params: bytes) -> str:
    """An asynchronous training: the job id."""
    response = post_training(server, params, prefer_async=True)
    assert response.status_code == 202, f"training answered {response.status_code} {response.text}"
    job_id = response.json()["jobId"]
    assert response.headers["Location"] == f"/jobs/{job_id}"
    return job_id


def predict(server, pipeline_id) -> requests.Response:
    files = {"raw_data": ("data_test.json", (DATA / "data_test.json").read_bytes()),
             "params": ("params.yml", f"pipeline_id: {pipeline_id}\n".encode())}
    return requests.post(f"{server.url}/serve_prediction", files=files, timeout=60)


def scores(server, pipeline_id) -> dict:
    response = predict(server, pipeline_id)
    assert response.status_code == 200, f"prediction answered {response.status_code} {response.text}"
    assert len(response.json()) == 150
    return response.json()


def wait_job(server, job_id: str, until, timeout_s: float) -> dict:
    """Poll GET /jobs/<id> until ``until(job)``; the job as it then was."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = get(server, f"/jobs/{job_id}")
        if until(job):
            return job
        assert time.monotonic() < deadline, f"after {timeout_s} s the job is still {job}"
        time.sleep(0.25)


def progress(job: dict) -> dict:
    return job.get("progress") or {}


def searching(job: dict) -> bool:
    """The search has its Dask cluster (TPOT's workers are up) — or the job is over."""
    return job["state"] in FINISHED or "searchSeconds" in progress(job)


def training_process(job_id: str, timeout_s: float = 10) -> int:
    """The pid of ``python -m automl.worker <job_id>``: it leads its own process group."""
    deadline = time.monotonic() + timeout_s
    while True:
        leaders = [pid for pid in pids_matching(f"automl.worker {job_id}") if _pgid(pid) == pid]
        if leaders:
            assert len(leaders) == 1, leaders
            return leaders[0]
        assert time.monotonic() < deadline, f"no training process for job {job_id}"
        time.sleep(0.1)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def gone(pgid: int, job_id: str, timeout_s: float) -> list[int]:
    """Wait for the training's processes (its group, its Dask workers included) to end;
    those still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = sorted(set(group_members(pgid)) | set(pids_matching(f"automl.worker {job_id}")))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def owner_pid(job: dict) -> int:
    return int(job["owner"].rsplit(":", 1)[1])


# -- the tests -----------------------------------------------------------------------------

def test_two_instances_serve_the_same_pipelines_and_jobs_through_redis(instances):
    a, b = instances
    report = train(a, FAST)
    pipeline_id = str(report["modelId"])

    listed = get(b, "/models")
    assert list(listed) == [pipeline_id]
    assert listed[pipeline_id]["createdAt"] == report["createdAt"]
    assert listed[pipeline_id]["modelType"] == report["modelType"]
    from_a = scores(a, pipeline_id)
    assert scores(b, pipeline_id) == from_a

    job = get(b, f"/jobs/{report['jobId']}")
    assert job["state"] == "succeeded" and job["result"] == report
    assert owner_pid(job) in a.pids() + b.pids()  # a runner of one of the instances ran it

    # Replaced through B: A's in-process copy of the old pipeline must not be served any more.
    replaced = train(b, OTHER + f"pipeline_id: {pipeline_id}\n".encode())
    assert str(replaced["modelId"]) == pipeline_id and "ExtraTrees" in replaced["modelType"]
    seen_by_a = get(a, f"/models/{pipeline_id}")
    assert seen_by_a["jobId"] == replaced["jobId"] and seen_by_a["modelType"] == replaced["modelType"]
    new_from_a = scores(a, pipeline_id)
    assert new_from_a != from_a
    assert new_from_a == scores(b, pipeline_id)

    for server in (a, b):  # nothing went through either instance's disk
        assert not server.model_dir.exists() or not any(server.model_dir.rglob("*")), \
            sorted(server.model_dir.rglob("*"))


def test_a_killed_training_process_fails_its_job_at_once_and_spares_stored_pipelines(instances):
    a, b = instances
    kept = train(a, FAST + b"pipeline_id: kept\n")
    before = scores(a, "kept")

    # A search retraining the same id, killed as soon as it runs.
    job_id = submit(a, TPOT + b"pipeline_id: kept\n")
    wait_job(a, job_id, lambda j: j["state"] != "queued", 60)
    victim = training_process(job_id)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()

    job = wait_job(b, job_id, lambda j: j["state"] != "running", 10)
    assert job["state"] == "failed", job
    # SIGKILL is what the kernel's out-of-memory killer sends: the error says so.
    assert (job["error"] or {}).get("error") == "out_of_memory", job
    assert job["error"]["status"] == 413 and "signal 9" in job["error"]["message"]
    print(f"failed {time.monotonic() - killed_at:.1f} s after the kill")
    assert gone(victim, job_id, 5) == []

    listed = get(b, "/models")
    assert listed["kept"]["jobId"] == kept["jobId"] and listed["kept"]["provisional"] is False
    assert scores(b, "kept") == before
    assert scores(a, "kept") == before


def test_a_killed_instance_s_training_runs_on_and_its_job_is_not_lost(instances):
    a, b = instances
    first = train(a, FAST)

    job_id = submit(a, TPOT)
    job = wait_job(a, job_id, searching, 90)
    assert job["state"] == "running", job
    owner = owner_pid(job)
    victim, survivor = (a, b) if owner in a.pids() else (b, a)
    assert owner in victim.pids(), (job["owner"], a.pids(), b.pids())
    training = training_process(job_id)

    victim.kill9()  # master and worker at once: no shutdown code runs
    # The training owns its job: it runs on without the instance that started it.
    job = wait_job(survivor, job_id, lambda j: j["state"] in FINISHED, 120)
    assert job["state"] == "succeeded" and job["attempt"] == 1, job
    assert gone(training, job_id, 5) == []

    victim.start()
    models = get(survivor, "/models")
    assert {str(first["modelId"]), str(job["result"]["modelId"])} <= set(models)
    assert get(victim, "/models") == models
    assert get(victim, "/jobs") == get(survivor, "/jobs")
    for pipeline_id in models:
        assert scores(victim, pipeline_id) == scores(survivor, pipeline_id)


# A search long enough to be killed in its middle: three generations in a minute.
LONG_TPOT = (b"extract_features: {default_fc_parameters: minimal}\n"
             b"model_training: {model: tpot, cv: 3, model_args: {generations: 3, "
             b"population_size: 4, max_time_mins: 1, random_state: 0, n_jobs: 2}}\n")


def test_a_job_whose_machine_died_resumes_on_another_instance_where_it_stopped(instances):
    a, b = instances
    job_id = submit(a, LONG_TPOT)
    # Killed once the search has checkpointed its first generation.
    job = wait_job(a, job_id, lambda j: j["state"] in FINISHED
                   or "search" in progress(j).get("checkpointed", []), 120)
    assert job["state"] == "running", job
    served = get(a, f"/models/{progress(job)['pipelineId']}")
    owner = owner_pid(job)
    victim, survivor = (a, b) if owner in a.pids() else (b, a)
    training = training_process(job_id)

    # The instance and its training both gone, as when their machine dies.
    victim.kill9()
    os.killpg(training, signal.SIGKILL)
    killed_at = time.monotonic()
    job = wait_job(survivor, job_id, lambda j: progress(j).get("attempt") == 2, 30)
    print(f"{victim.name} and its training killed; resumed after "
          f"{time.monotonic() - killed_at:.1f} s, {job['spentSeconds']:.1f} s of the budget "
          "spent")
    assert owner_pid(job) in survivor.pids(), job
    assert progress(job)["resumed"] is True and job["spentSeconds"] > 5
    job = wait_job(survivor, job_id, lambda j: j["state"] in FINISHED, 150)
    assert job["state"] == "succeeded", job
    report = job["result"]
    print(f"resumed: {report['resumed']}; stages {report['stageSeconds']}")
    # It took up the candidates and the search's population rather than starting over...
    assert report["resumed"]["candidatesRestored"], report["resumed"]
    assert report["resumed"]["searchGenerationsRestored"] >= 1, report["resumed"]
    assert report["search"]["generations"] >= 2, report["search"]
    # ...and serves a model at least as good as the one served before the kill.
    assert report["modelId"] == served["modelId"] and report["provisional"] is False
    assert report["mean_cv_score"] >= served["mean_cv_score"], (report, served)
    assert len(scores(survivor, report["modelId"])) == 150
    victim.start()


def test_cancelling_a_running_search_stops_it_with_all_its_processes(instances):
    a, b = instances
    job_id = submit(a, TPOT)
    job = wait_job(a, job_id, searching, 90)
    assert job["state"] == "running", job
    training = training_process(job_id)
    print(f"training group before the cancel: {group_members(training)}")

    response = requests.delete(f"{b.url}/jobs/{job_id}", timeout=30)
    assert response.status_code == 202, response.text
    cancelled_at = time.monotonic()
    job = wait_job(a, job_id, lambda j: j["state"] != "running", 15)
    assert job["state"] == "cancelled", job
    print(f"cancelled after {time.monotonic() - cancelled_at:.1f} s")
    assert gone(training, job_id, 3) == []
    assert requests.delete(f"{a.url}/jobs/{job_id}", timeout=30).status_code == 409


def test_a_search_serves_its_baseline_while_it_runs_then_its_best_pipeline(instances):
    a, b = instances
    job_id = submit(a, TPOT)
    job = wait_job(b, job_id, lambda j: j["state"] in FINISHED
                   or progress(j).get("provisionalServed"), 90)
    assert job["state"] == "running" and progress(job)["provisionalServed"] is True, job
    pipeline_id = str(progress(job)["pipelineId"])

    meta = get(b, f"/models/{pipeline_id}")
    assert meta["provisional"] is True and meta["jobId"] == job_id, meta
    assert len(scores(a, pipeline_id)) == 150
    assert get(a, f"/jobs/{job_id}")["state"] == "running"  # it was served mid-search

    job = wait_job(a, job_id, lambda j: j["state"] in FINISHED, 150)
    assert job["state"] == "succeeded", job
    assert str(job["result"]["modelId"]) == pipeline_id and job["result"]["provisional"] is False
    assert get(b, f"/models/{pipeline_id}")["provisional"] is False
    assert len(scores(b, pipeline_id)) == 150


def test_without_redis_the_store_routes_answer_503_then_recover_on_their_own(instances, store):
    a, b = instances
    pipeline_id = train(a, FAST)["modelId"]
    scores(a, pipeline_id)  # in A's in-process cache, yet the store decides

    store.stop()
    try:
        for response in (requests.get(f"{a.url}/models", timeout=30), predict(a, pipeline_id)):
            assert response.status_code == 503, (response.request.url, response.text)
            body = response.json()
            assert body["error"] == "store_unavailable" and body["message"], body
    finally:
        store.start()  # same port, empty: the test Redis keeps nothing

    response = requests.get(f"{a.url}/models", timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {}
    assert get(b, "/models") == {}
    # Training and serving work again too, still without restarting gunicorn.
    pipeline_id = train(b, FAST)["modelId"]
    assert len(scores(a, pipeline_id)) == 150


def test_an_instance_still_trains_after_redis_came_back_empty_during_a_training(tmp_path):
    """Redis restarted without its data (no persistence, a failover) while a training ran: that
    job is lost with the rest, but the instance must go on taking trainings."""
    with redis_server(tmp_path) as lone_redis, GunicornServer(tmp_path / "gunicorn.log", env={
            "REDIS_URL": lone_redis.url, "AUTOML_SECRET_KEY": SECRET, "WEB_CONCURRENCY": "1",
            "AUTOML_MODEL_DIR": str(tmp_path / "models")}) as server:
        lost = submit(server, FAST)
        wait_job(server, lost, lambda j: j["state"] != "queued", 60)
        lone_redis.stop()
        lone_redis.start()
        get(server, f"/jobs/{lost}", status=404)

        job_id = submit(server, FAST)
        job = wait_job(server, job_id, lambda j: j["state"] in FINISHED, 30)  # ~5 s when healthy
        assert job["state"] == "succeeded", job
        assert len(scores(server, job["result"]["modelId"])) == 150


def test_a_search_runs_on_the_dask_cluster_it_is_pointed_at(dask, tmp_path):
    def seen_by_scheduler():
        return client.run_on_scheduler(lambda dask_scheduler: {
            "transitions": dask_scheduler.transition_counter,
            "prefixes": sorted(dask_scheduler.task_prefixes)})

    from distributed import Client

    server = GunicornServer(tmp_path / "gunicorn.log", env={
        "AUTOML_MODEL_DIR": str(tmp_path / "models"), "AUTOML_SECRET_KEY": SECRET,
        "WEB_CONCURRENCY": "1", "DASK_SCHEDULER_ADDRESS": dask.address})
    with Client(dask.address, timeout=30) as client, server:
        before = seen_by_scheduler()
        train(server, FAST)  # a fixed model: only feature extraction goes to the cluster
        extraction = seen_by_scheduler()
        report = train(server, TPOT)
        search = seen_by_scheduler()
    print(f"scheduler: {before} -> {extraction} -> {search}")
    assert extraction["transitions"] > before["transitions"], (before, extraction)
    assert report["search"]["pipelinesEvaluated"] >= 1, report["search"]
    assert search["transitions"] > extraction["transitions"], (extraction, search)
    # Tasks of a kind feature extraction never submits: the search's evaluations.
    assert set(search["prefixes"]) - set(extraction["prefixes"]), (extraction, search)


def test_kernel_features_and_cv_run_on_both_dask_workers_and_train_the_same_model(dask):
    """With a scheduler's address, a kernel engine's transform and the candidates'
    cross-validation run as tasks on the cluster's workers, and the job ends with the very
    model a local run makes."""
    import numpy as np
    import pandas as pd
    from distributed import Client, get_task_stream

    from automl.kernels import KernelFeatures
    from automl.params import parse_training_params
    from automl.training import train as train_here

    from test_engines import _series

    raw, y = _series(300, lengths=(40, 36), channels=("a", "b"))
    local = KernelFeatures(kind="multirocket", column_kind="channel", column_sort="time")
    expected = local.fit_transform(raw, y)
    on_cluster = KernelFeatures(kind="multirocket", column_kind="channel", column_sort="time")
    with Client(dask.address, timeout=30) as client, get_task_stream(client=client) as stream:
        features = on_cluster.fit_transform(raw, y, dask_address=dask.address)
    transforms = [t for t in stream.data if t["key"].startswith("_transform_panel")]
    print(f"{len(transforms)} transform tasks on {sorted({t['worker'] for t in transforms})}")
    assert len({t["worker"] for t in transforms}) == 2, transforms
    pd.testing.assert_frame_equal(features, expected)
    some = raw[raw["example_id"].isin(y.index[:5])]
    pd.testing.assert_frame_equal(on_cluster.transform(some), local.transform(some))

    params = parse_training_params(b"""
extract_features: {engine: minirocket, column_kind: channel, column_sort: time}
model_training: {model: extra_trees, model_args: {n_estimators: 50, random_state: 0}, cv: 3}
""")
    here, report_here = train_here(raw, y, params)
    with Client(dask.address, timeout=30) as client, get_task_stream(client=client) as stream:
        there, report_there = train_here(raw, y, params, dask_address=dask.address)
    ran = {t["key"].split("-", 1)[0] for t in stream.data}
    assert {"_transform_panel", "fold_outcome"} <= ran, ran  # extraction and CV
    assert report_there["mean_cv_score"] == report_here["mean_cv_score"]
    assert np.array_equal(there.predict_proba(raw).to_numpy(), here.predict_proba(raw).to_numpy())


def test_a_rollback_on_one_instance_is_what_the_other_serves_next(instances):
    a, b = instances
    train(a, FAST + b"pipeline_id: r\n")
    first = scores(a, "r")
    assert scores(b, "r") == first  # now in both instances' caches
    train(b, OTHER + b"pipeline_id: r\n")
    second = scores(a, "r")
    assert second != first
    rolled = requests.post(f"{b.url}/models/r/rollback", timeout=30)
    assert rolled.status_code == 200 and rolled.json()["version"] == 1, rolled.text
    assert scores(a, "r") == first  # the very next request on the other instance
    assert [v["current"] for v in get(a, "/models/r/versions")] == [True, False]
