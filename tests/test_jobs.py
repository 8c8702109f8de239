"""The job queue (``JobStore``) on each backend: what a user submitting trainings relies on.

Every test taking ``backend`` runs against a directory and a real redis-server. Two
``JobStore`` objects over the same shared state stand for two app instances (or gunicorn
workers); ``reopened`` gives the second one its own backend object, as another process has.
"""
from __future__ import annotations

import json
import multiprocessing
import re
import threading
import time
import types

import pytest

import automl.jobs
from automl.backends import DirectoryBackend, RedisBackend
from automl.jobs import (CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobFinished, JobNotFound,
                         JobStore)
from automl.uploads import Upload

# Not valid UTF-8, with NUL and CR/LF bytes: what comes back must be the very same bytes.
RAW = bytes(range(256)) * 40 + b"\r\n\x00end"
LABELS = b'[{"example_id": 1, "label": 0}]\n'
PARAMS = b"model_training: {model: random_forest}\n"


def reopened(backend):
    """The same shared state as another process (or a restarted one) sees it."""
    if isinstance(backend, DirectoryBackend):
        return DirectoryBackend(backend.root)
    return RedisBackend(backend.url)


def training_uploads() -> dict[str, Upload]:
    return {"raw_data": Upload(RAW, "données brutes.json", "application/json"),
            "labels": Upload(LABELS, "label_train.json", "application/octet-stream"),
            "params": Upload(PARAMS, None, None)}  # a client may send neither


def submit(store: JobStore, n: int = 1, budget_s: float | None = None) -> list[str]:
    """Submit ``n`` jobs one after the other, returning their ids in submission order."""
    ids = []
    for i in range(n):
        ids.append(store.create(training_uploads(), f"p{i}", budget_s)["jobId"])
    return ids


def backdate_heartbeat(backend, job_id: str, seconds: float = 3600) -> None:
    backend.put(f"job-heartbeats/{job_id}", str(time.time() - seconds).encode())


# -- submitting -------------------------------------------------------------------------------


def test_a_submitted_job_is_queued_with_its_settings_and_its_files_intact(backend):
    store = JobStore(backend)
    job = store.create(training_uploads(), "my-pipeline", 120.0)

    assert job["state"] == QUEUED
    assert job["jobId"].isalnum()
    seen = JobStore(reopened(backend)).get(job["jobId"])  # any instance answers GET /jobs/<id>
    assert seen == job
    assert seen["pipelineId"] == "my-pipeline" and seen["budgetSeconds"] == 120.0
    assert seen["createdAt"] and seen["startedAt"] is None and seen["finishedAt"] is None
    assert seen["result"] is None and seen["error"] is None and seen["progress"] is None
    assert seen["cancelRequested"] is False

    stored = JobStore(reopened(backend)).uploads(job["jobId"])
    assert set(stored) == {"raw_data", "labels", "params"}
    for name, upload in training_uploads().items():
        assert stored[name].payload == upload.payload, name
        assert stored[name].filename == upload.filename, name
        assert stored[name].content_type == upload.content_type, name


def test_each_job_keeps_its_own_files_and_gets_its_own_id(backend):
    store = JobStore(backend)
    first = store.create({"raw_data": Upload(b"first", "a.json", "application/json")}, None, None)
    second = store.create({"raw_data": Upload(b"second", "b.csv", "text/csv")}, None, None)
    assert first["jobId"] != second["jobId"]
    assert first["pipelineId"] is None and first["budgetSeconds"] is None
    assert store.uploads(first["jobId"])["raw_data"].payload == b"first"
    assert store.uploads(second["jobId"])["raw_data"].filename == "b.csv"


# -- claiming: the running limit and the order -------------------------------------------------


def test_the_running_limit_holds_across_app_instances_and_the_oldest_job_runs_first(backend):
    instance_a = JobStore(backend, max_running=1)
    instance_b = JobStore(reopened(backend), max_running=1)
    first, second, third = submit(instance_a, 3)

    claimed = instance_b.claim("b")
    assert claimed["jobId"] == first and claimed["state"] == RUNNING and claimed["owner"] == "b"
    assert instance_a.claim("a") is None  # the one slot is taken, by the other instance
    assert instance_b.claim("b") is None
    assert [instance_a.get(i)["state"] for i in (first, second, third)] == [RUNNING, QUEUED, QUEUED]

    assert instance_a.finish(first, SUCCEEDED, result={"modelId": 1})
    claimed = instance_a.claim("a")
    assert claimed["jobId"] == second and claimed["owner"] == "a"
    assert instance_b.claim("b") is None

    assert instance_b.finish(second, FAILED, error={"error": "training_failed", "message": "x"})
    assert instance_b.claim("b")["jobId"] == third
    assert instance_a.claim("a") is None  # nothing left to run


def test_a_higher_limit_runs_that_many_jobs_at_once_and_no_more(backend):
    store = JobStore(backend, max_running=2)
    ids = submit(store, 3)
    assert store.claim("a")["jobId"] == ids[0]
    assert JobStore(reopened(backend), max_running=2).claim("b")["jobId"] == ids[1]
    assert store.claim("a") is None
    assert store.get(ids[2])["state"] == QUEUED


def test_instances_claiming_at_the_same_moment_never_exceed_the_limit(backend):
    ids = submit(JobStore(backend), 5)
    stores = [JobStore(reopened(backend), max_running=2) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    claimed: list[dict | None] = [None] * len(stores)

    def claim(i):
        barrier.wait()
        claimed[i] = stores[i].claim(f"owner-{i}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = [job["jobId"] for job in claimed if job is not None]
    assert sorted(won) == ids[:2]  # exactly two, the two oldest, each once
    states = [job["state"] for job in JobStore(backend).list()]
    assert states.count(RUNNING) == 2 and states.count(QUEUED) == 3


def test_nothing_to_claim_when_the_queue_is_empty(backend):
    assert JobStore(backend, max_running=5).claim("a") is None


def test_jobs_submitted_within_one_millisecond_still_run_in_submission_order(backend, monkeypatch):
    # As happens on Redis when a client submits in a loop: creating a job takes well under 1 ms.
    frozen_ns = time.time_ns()
    monkeypatch.setattr(automl.jobs, "time", types.SimpleNamespace(
        time_ns=lambda: frozen_ns, time=time.time, sleep=time.sleep))
    store = JobStore(backend, max_running=100)
    ids = [store.create({}, None, None)["jobId"] for _ in range(10)]
    assert [job["jobId"] for job in store.list()] == ids[::-1]
    assert [store.claim("a")["jobId"] for _ in ids] == ids


# -- claiming: start time and deadline ---------------------------------------------------------


def test_claiming_records_the_start_and_a_deadline_from_the_budget(backend):
    store = JobStore(backend, max_running=2)
    with_budget, without_budget = submit(store, 1, budget_s=90.0) + submit(store, 1)

    before = time.time()
    job = store.claim("a")
    after = time.time()
    assert job["jobId"] == with_budget
    assert before <= job["startedEpoch"] <= after
    assert job["deadline"] == job["startedEpoch"] + 90.0
    assert job["startedAt"] is not None
    stored = JobStore(reopened(backend)).get(with_budget)  # what the other instances see
    assert stored["deadline"] == job["deadline"] and stored["startedEpoch"] == job["startedEpoch"]
    assert stored["owner"] == "a"

    job = store.claim("a")
    assert job["jobId"] == without_budget
    assert job["startedEpoch"] >= before and job["deadline"] is None
    assert store.get(without_budget)["deadline"] is None


# -- cancelling --------------------------------------------------------------------------------


def test_cancelling_a_queued_job_ends_it_at_once_and_it_never_runs(backend):
    store = JobStore(backend, max_running=5)
    doomed, kept = submit(store, 2)

    cancelled = JobStore(reopened(backend)).cancel(doomed)
    assert cancelled["state"] == CANCELLED and cancelled["finishedAt"] is not None
    assert cancelled["error"]["error"] == "cancelled"
    assert store.get(doomed)["state"] == CANCELLED
    assert store.uploads(doomed) == {}  # the files are not kept for a job that will not run

    assert store.claim("a")["jobId"] == kept
    assert store.claim("a") is None  # the cancelled job is never picked up
    assert store.get(doomed)["state"] == CANCELLED and store.get(doomed)["startedAt"] is None


def test_cancelling_a_running_job_asks_its_runner_to_stop_it(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("runner")

    answer = JobStore(reopened(backend)).cancel(job_id)
    assert answer["state"] == RUNNING and answer["cancelRequested"] is True
    seen = store.get(job_id)  # the runner, polling, sees the request
    assert seen["state"] == RUNNING and seen["cancelRequested"] is True
    assert seen["owner"] == "runner"
    assert store.cancel(job_id)["state"] == RUNNING  # asking twice is harmless

    assert store.finish(job_id, CANCELLED, error={"error": "cancelled", "message": "stopped"})
    assert store.get(job_id)["state"] == CANCELLED


@pytest.mark.parametrize("outcome", [SUCCEEDED, FAILED, CANCELLED])
def test_cancelling_a_finished_job_is_a_409_and_changes_nothing(backend, outcome):
    store = JobStore(backend)
    (job_id,) = submit(store)
    if outcome == CANCELLED:
        store.cancel(job_id)
    else:
        store.claim("a")
        failure = {"error": "training_failed", "message": "x"}
        store.finish(job_id, outcome, result={"modelId": 3} if outcome == SUCCEEDED else None,
                     error=failure if outcome == FAILED else None)
    before = store.get(job_id)

    with pytest.raises(JobFinished) as raised:
        JobStore(reopened(backend)).cancel(job_id)
    assert raised.value.status == 409 and raised.value.code == "job_finished"
    assert outcome in raised.value.message
    assert store.get(job_id) == before


# -- finishing ---------------------------------------------------------------------------------


def test_a_job_ends_once_and_its_first_outcome_stands(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("a")
    result = {"modelId": 7, "mean_cv_roc_auc": 0.93}

    assert store.finish(job_id, SUCCEEDED, result=result) is True
    first = store.get(job_id)
    other = JobStore(reopened(backend))
    assert other.finish(job_id, FAILED, error={"error": "worker_lost", "message": "late"}) is False
    assert store.finish(job_id, CANCELLED) is False

    final = store.get(job_id)
    assert final == first
    assert final["state"] == SUCCEEDED and final["result"] == result and final["error"] is None
    assert final["finishedAt"] is not None


def test_finishing_deletes_the_uploads_but_keeps_the_result_and_frees_the_slot(backend):
    store = JobStore(backend, max_running=1)
    done, waiting = submit(store, 2)
    store.claim("a")
    store.report_progress(done, {"stage": "search", "generation": 3})

    store.finish(done, SUCCEEDED, result={"modelId": 1})
    restarted = JobStore(reopened(backend), max_running=1)
    assert restarted.uploads(done) == {}
    assert restarted.get(done)["result"] == {"modelId": 1}
    assert restarted.get(done)["progress"] == {"stage": "search", "generation": 3}
    assert set(restarted.uploads(waiting)) == {"raw_data", "labels", "params"}  # others untouched
    assert restarted.claim("b")["jobId"] == waiting


def test_waiting_returns_the_job_once_another_instance_ends_it(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("a")
    finisher = threading.Timer(0.1, JobStore(reopened(backend)).finish, args=(job_id, SUCCEEDED),
                               kwargs={"result": {"modelId": 2}})
    finisher.start()
    try:
        ended = store.wait(job_id, poll_s=0.01)
    finally:
        finisher.join(5)
    assert ended["state"] == SUCCEEDED and ended["result"] == {"modelId": 2}


# -- abandoned jobs ----------------------------------------------------------------------------


def test_a_running_job_whose_runner_went_silent_fails_with_a_resubmit_message(backend):
    store = JobStore(backend, max_running=5)
    silent, alive, queued = submit(store, 3)
    store.claim("dead-runner")
    store.claim("live-runner")
    backdate_heartbeat(backend, silent)
    # the live runner keeps beating: an old beat followed by a fresh one is fresh
    backdate_heartbeat(backend, alive)
    store.beat(alive)

    checker = JobStore(reopened(backend), max_running=5)  # any instance may notice
    assert checker.fail_abandoned() == [silent]

    failed = store.get(silent)
    assert failed["state"] == FAILED and failed["finishedAt"] is not None
    assert failed["error"]["error"] == "worker_lost"
    assert re.search(r"submit .*again", failed["error"]["message"])
    assert store.uploads(silent) == {}
    assert store.get(alive)["state"] == RUNNING and store.get(alive)["error"] is None
    assert store.get(queued)["state"] == QUEUED
    # the runner coming back late cannot overwrite the failure
    assert store.finish(silent, SUCCEEDED, result={"modelId": 1}) is False
    assert store.get(silent)["state"] == FAILED
    assert checker.fail_abandoned() == []  # nothing more to do


def test_a_short_stale_limit_fails_a_job_soon_after_its_last_heartbeat(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("a")
    assert JobStore(reopened(backend), stale_after_s=5).fail_abandoned() == []  # fresh: untouched
    time.sleep(0.05)
    assert JobStore(reopened(backend), stale_after_s=0.01).fail_abandoned() == [job_id]
    assert store.get(job_id)["error"]["error"] == "worker_lost"


def test_queued_jobs_are_never_failed_as_abandoned(backend):
    store = JobStore(backend, stale_after_s=0.0)
    ids = submit(store, 2)
    time.sleep(0.01)
    assert store.fail_abandoned() == []
    assert [store.get(i)["state"] for i in ids] == [QUEUED, QUEUED]


# -- progress and listing ----------------------------------------------------------------------


def test_progress_reported_by_the_training_shows_in_the_job(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("a")
    assert store.get(job_id)["progress"] is None

    training = JobStore(reopened(backend))  # the training process writes, the API reads
    training.report_progress(job_id, {"stage": "baseline", "pipelinesEvaluated": 0})
    assert store.get(job_id)["progress"] == {"stage": "baseline", "pipelinesEvaluated": 0}
    training.report_progress(job_id, {"stage": "search", "generation": 2, "pipelinesEvaluated": 17})
    assert store.get(job_id)["progress"] == {"stage": "search", "generation": 2,
                                             "pipelinesEvaluated": 17}
    assert store.get(job_id)["state"] == RUNNING


def test_the_list_holds_every_job_newest_first(backend):
    store = JobStore(backend, max_running=5)
    assert store.list() == []
    ids = submit(store, 4)
    store.claim("a")
    store.finish(ids[0], SUCCEEDED, result={"modelId": 1})
    store.claim("a")
    store.cancel(ids[2])

    listed = JobStore(reopened(backend)).list()
    assert [job["jobId"] for job in listed] == ids[::-1]
    assert [job["state"] for job in listed] == [QUEUED, CANCELLED, RUNNING, SUCCEEDED]
    assert listed[-1]["result"] == {"modelId": 1}


# -- unknown ids -------------------------------------------------------------------------------


BAD_IDS = ["nope", "../x", "", "..", "a/b", " ", "x\x00", "jobs/../x"]


@pytest.mark.parametrize("job_id", BAD_IDS)
@pytest.mark.parametrize("operation", ["get", "cancel", "finish", "wait"])
def test_unknown_or_malformed_ids_are_a_404(backend, job_id, operation):
    store = JobStore(backend)
    submit(store)  # a queue that is not empty
    # a record planted outside jobs/ must not be reachable through a crafted id
    backend.put("x", json.dumps({"jobId": "x", "state": QUEUED}).encode())
    call = {"get": lambda: store.get(job_id), "cancel": lambda: store.cancel(job_id),
            "finish": lambda: store.finish(job_id, FAILED),
            "wait": lambda: store.wait(job_id, poll_s=0.01)}[operation]
    with pytest.raises(JobNotFound) as raised:
        call()
    assert raised.value.status == 404 and raised.value.code == "job_not_found"
    assert [job["state"] for job in store.list()] == [QUEUED]


def test_an_overlong_id_is_a_404_not_a_server_error(backend):
    store = JobStore(backend)
    for operation in (store.get, store.cancel):
        with pytest.raises(JobNotFound):
            operation("a" * 256)


# -- many processes at once --------------------------------------------------------------------


def _claim_until_empty(backend, owner, start, results):
    store = JobStore(reopened(backend), max_running=1000)
    claimed = []
    start.wait(10)
    while (job := store.claim(owner)) is not None:
        claimed.append(job["jobId"])
        store.report_progress(job["jobId"], {"stage": "search"})
        store.finish(job["jobId"], SUCCEEDED, result={"by": owner})
    results.put((owner, claimed))


def test_processes_claiming_at_once_never_run_a_job_twice(backend):
    ids = submit(JobStore(backend), 12)
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    owners = [f"process-{n}" for n in range(3)]
    workers = [ctx.Process(target=_claim_until_empty, args=(backend, owner, start, results))
               for owner in owners]
    for p in workers:
        p.start()
    start.set()
    reports = dict(results.get(timeout=60) for _ in workers)  # drained before joining
    for p in workers:
        p.join(30)
    assert [p.exitcode for p in workers] == [0, 0, 0]

    claims = [job_id for owner in owners for job_id in reports[owner]]
    assert sorted(claims) == sorted(ids)  # every job claimed, and exactly once
    store = JobStore(reopened(backend))
    for owner in owners:
        for job_id in reports[owner]:
            job = store.get(job_id)
            assert job["state"] == SUCCEEDED and job["owner"] == owner
            assert job["result"] == {"by": owner}
