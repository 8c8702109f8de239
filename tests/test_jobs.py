"""The job queue (``JobStore``) on each backend: what a user submitting trainings relies on.

Every test taking ``backend`` runs against a directory and a real redis-server. Two
``JobStore`` objects over the same shared state stand for two app instances (or gunicorn
workers); ``reopened`` gives the second one its own backend object, as another process has.
"""
from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import re
import threading
import time
import tracemalloc
import types

import pytest

import automl.jobs
from automl.backends import STREAM_CHUNK_BYTES, DirectoryBackend, RedisBackend
from automl.errors import (ApiError, JobCancelled, JobFinished, JobNotFound, QueueFull,
                           TooManyRequests, TrainingFailed)
from automl.jobs import JobState, JobStore, Keys, UnreadableJob
from automl.state import job_store
from automl.store import ModelStore
from automl.uploads import Upload

from conftest import stored_uploads

QUEUED, RUNNING, SUCCEEDED = JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED
FAILED, CANCELLED = JobState.FAILED, JobState.CANCELLED

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


def submit(store: JobStore, n: int = 1, budget_s: float = 60.0, by: str | None = None) -> list[str]:
    """Submit ``n`` jobs one after the other, returning their ids in submission order."""
    return [store.create(training_uploads(), f"p{i}", budget_s, submitted_by=by).job_id
            for i in range(n)]


def backdate_heartbeat(backend, job_id: str, seconds: float = 3600) -> None:
    backend.put(f"job-heartbeats/{job_id}", str(time.time() - seconds).encode())


def ids_of(page) -> list[str]:
    return [job.job_id for job in page[0]]


# -- submitting -------------------------------------------------------------------------------


def test_a_submitted_job_is_queued_with_its_settings_and_its_files_intact(backend):
    store = JobStore(backend)
    job = store.create(training_uploads(), "my-pipeline", 120.0, submitted_by="alice")

    assert job.state == QUEUED
    assert job.job_id.isalnum()
    seen = JobStore(reopened(backend)).get(job.job_id)  # any instance answers GET /jobs/<id>
    assert seen == job
    assert seen.pipeline_id == "my-pipeline" and seen.budget_seconds == 120.0
    assert seen.submitted_by == "alice" and seen.attempt == 0 and seen.version is None
    assert seen.created_at and seen.started_at is None and seen.finished_at is None
    assert seen.result is None and seen.error is None and seen.progress is None
    assert seen.cancel_requested is False
    assert seen.to_json()["jobId"] == job.job_id and seen.to_json()["state"] == "queued"

    stored = stored_uploads(JobStore(reopened(backend)), job.job_id)
    assert set(stored) == {"raw_data", "labels", "params"}
    for name, upload in training_uploads().items():
        assert stored[name] == upload, name


def test_each_job_keeps_its_own_files_and_gets_its_own_id(backend):
    store = JobStore(backend)
    first = store.create({"raw_data": Upload(b"first", "a.json", "application/json")}, None, 60)
    second = store.create({"raw_data": Upload(b"second", "b.csv", "text/csv")}, None, 60)
    assert first.job_id != second.job_id
    assert first.pipeline_id is None
    assert stored_uploads(store, first.job_id)["raw_data"].payload == b"first"
    assert stored_uploads(store, second.job_id)["raw_data"].filename == "b.csv"


PATTERN = memoryview(bytes(range(256)) * 1024)


class Endless(io.RawIOBase):
    """A readable file of ``size`` bytes made on the fly (none of them held), failing after
    ``fail_after`` bytes if given, as a client that drops its upload half-way."""

    def __init__(self, size: int, fail_after: int | None = None):
        self.size, self.fail_after, self.sent = size, fail_after, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise OSError("the client went away")
        n = min(len(buffer), self.size - self.sent, len(PATTERN))
        buffer[:n] = PATTERN[:n]
        self.sent += n
        return n


def test_a_large_upload_is_stored_and_read_back_a_part_at_a_time(backend):
    size = 24 * STREAM_CHUNK_BYTES + 12_345  # several Redis parts, the last one short
    tracemalloc.start()
    try:
        backend.put_stream("job-uploads/big", io.BufferedReader(Endless(size)))
        stored_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        read, digest = 0, hashlib.sha256()
        with backend.open_stream("job-uploads/big") as stream:
            while part := stream.read(1 << 20):
                read += len(part)
                digest.update(part)
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected = hashlib.sha256()
    source = io.BufferedReader(Endless(size))
    while part := source.read(1 << 20):
        expected.update(part)
    assert read == size and digest.hexdigest() == expected.hexdigest()
    # Neither side ever held the upload whole: a few parts at a time.
    assert stored_peak < size / 3 and read_peak < size / 3, (stored_peak, read_peak)


def test_an_upload_cut_off_half_way_leaves_the_stored_value_whole(backend):
    backend.put_stream("job-uploads/x", io.BytesIO(b"before"))
    with pytest.raises(OSError):
        backend.put_stream("job-uploads/x", io.BufferedReader(
            Endless(3 * STREAM_CHUNK_BYTES, fail_after=STREAM_CHUNK_BYTES)))
    with backend.open_stream("job-uploads/x") as stream:
        assert stream.read() == b"before"
    assert backend.keys("job-uploads") == ["job-uploads/x"]  # no staging copy left behind
    backend.put_stream("job-uploads/empty", io.BytesIO(b""))
    with backend.open_stream("job-uploads/empty") as stream:
        assert stream.read() == b""
    assert backend.open_stream("job-uploads/missing") is None


def test_a_full_queue_refuses_with_429_and_retry_after_and_keeps_nothing(backend):
    store = JobStore(backend, max_queued=2)
    submit(store, 2)
    with pytest.raises(QueueFull) as refused:
        JobStore(reopened(backend), max_queued=2).create(training_uploads(), "late", 60)
    assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) > 0
    assert "AUTOML_MAX_QUEUED_JOBS" in refused.value.message
    assert len(store.list()[0]) == 2
    assert len(backend.keys(Keys.UPLOADS)) == 2 * 6  # only the two queued jobs' files
    store.claim("a")  # one starts: a place in the queue is free again
    assert store.create(training_uploads(), "now", 60).state == QUEUED


def test_one_submitter_cannot_take_the_whole_queue(backend):
    store = JobStore(backend, max_queued=10)
    submit(store, 2, by="alice")
    with pytest.raises(TooManyRequests) as refused:
        store.create(training_uploads(), "x", 60, submitted_by="alice", max_per_submitter=2)
    assert "alice" in refused.value.message and refused.value.headers["Retry-After"]
    assert store.create(training_uploads(), "x", 60, submitted_by="bob",
                        max_per_submitter=2).state == QUEUED


# -- claiming: the running limit and the order -------------------------------------------------


def test_the_running_limit_holds_across_app_instances_and_the_oldest_job_runs_first(backend):
    instance_a = JobStore(backend, max_running=1)
    instance_b = JobStore(reopened(backend), max_running=1)
    first, second, third = submit(instance_a, 3)

    claimed = instance_b.claim("b")
    assert claimed.job_id == first and claimed.state == RUNNING and claimed.owner == "b"
    assert claimed.attempt == 1
    assert instance_a.claim("a") is None  # the one slot is taken, by the other instance
    assert instance_b.claim("b") is None
    assert [instance_a.get(i).state for i in (first, second, third)] == [RUNNING, QUEUED, QUEUED]

    assert instance_a.succeed(first, {"modelId": 1})
    claimed = instance_a.claim("a")
    assert claimed.job_id == second and claimed.owner == "a"
    assert instance_b.claim("b") is None

    assert instance_b.fail(second, TrainingFailed("x"))
    assert instance_b.claim("b").job_id == third
    assert instance_a.claim("a") is None  # nothing left to run


def test_a_higher_limit_runs_that_many_jobs_at_once_and_no_more(backend):
    store = JobStore(backend, max_running=2)
    ids = submit(store, 3)
    assert store.claim("a").job_id == ids[0]
    assert JobStore(reopened(backend), max_running=2).claim("b").job_id == ids[1]
    assert store.claim("a") is None
    assert store.get(ids[2]).state == QUEUED


def test_instances_claiming_at_the_same_moment_never_exceed_the_limit(backend):
    ids = submit(JobStore(backend), 5)
    stores = [JobStore(reopened(backend), max_running=2) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    claimed = [None] * len(stores)

    def claim(i):
        barrier.wait()
        claimed[i] = stores[i].claim(f"owner-{i}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = [job.job_id for job in claimed if job is not None]
    assert sorted(won) == ids[:2]  # exactly two, the two oldest, each once
    states = [job.state for job in JobStore(backend).list()[0]]
    assert states.count(RUNNING) == 2 and states.count(QUEUED) == 3


def test_nothing_to_claim_when_the_queue_is_empty(backend):
    assert JobStore(backend, max_running=5).claim("a") is None


def test_jobs_submitted_within_one_millisecond_still_run_in_submission_order(backend, monkeypatch):
    # As happens on Redis when a client submits in a loop: creating a job takes well under 1 ms.
    frozen_ns = time.time_ns()
    monkeypatch.setattr(automl.jobs, "time", types.SimpleNamespace(
        time_ns=lambda: frozen_ns, time=time.time, sleep=time.sleep))
    store = JobStore(backend, max_running=100)
    ids = [store.create({}, None, 60).job_id for _ in range(10)]
    assert ids_of(store.list()) == ids[::-1]
    assert [store.claim("a").job_id for _ in ids] == ids


def test_claiming_records_the_start_and_a_deadline_from_the_budget(backend):
    store = JobStore(backend, max_running=2)
    (job_id,) = submit(store, 1, budget_s=90.0)

    before = time.time()
    job = store.claim("a")
    after = time.time()
    assert job.job_id == job_id
    assert before <= job.started_epoch <= after
    assert job.deadline == job.started_epoch + 90.0
    assert job.hard_deadline() == job.deadline + 15.0  # the margin: max(15 s, 10 %)
    assert job.started_at is not None
    stored = JobStore(reopened(backend)).get(job_id)  # what the other instances see
    assert stored.deadline == job.deadline and stored.started_epoch == job.started_epoch
    assert stored.owner == "a"


# -- cancelling --------------------------------------------------------------------------------


def test_cancelling_a_queued_job_ends_it_at_once_and_it_never_runs(backend):
    store = JobStore(backend, max_running=5)
    doomed, kept = submit(store, 2)

    cancelled = JobStore(reopened(backend)).cancel(doomed)
    assert cancelled.state == CANCELLED and cancelled.finished_at is not None
    assert cancelled.error["error"] == "cancelled" and cancelled.error["status"] == 409
    assert isinstance(cancelled.failure(), JobCancelled)
    assert stored_uploads(store, doomed) == {}  # the files are not kept for a job that will not run

    assert store.claim("a").job_id == kept
    assert store.claim("a") is None  # the cancelled job is never picked up
    assert store.get(doomed).state == CANCELLED and store.get(doomed).started_at is None


def test_cancelling_a_running_job_asks_its_process_to_stop(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("runner")

    answer = JobStore(reopened(backend)).cancel(job_id)
    assert answer.state == RUNNING and answer.cancel_requested is True
    seen = store.get(job_id)  # the training process, polling, sees the request
    assert seen.state == RUNNING and seen.cancel_requested is True
    assert store.cancel(job_id).state == RUNNING  # asking twice is harmless

    assert store.fail(job_id, JobCancelled("Cancelled while running."))
    assert store.get(job_id).state == CANCELLED


@pytest.mark.parametrize("outcome", [SUCCEEDED, FAILED, CANCELLED])
def test_cancelling_a_finished_job_is_a_409_and_changes_nothing(backend, outcome):
    store = JobStore(backend)
    (job_id,) = submit(store)
    if outcome == CANCELLED:
        store.cancel(job_id)
    else:
        store.claim("a")
        if outcome == SUCCEEDED:
            store.succeed(job_id, {"modelId": 3})
        else:
            store.fail(job_id, TrainingFailed("x"))
    before = store.get(job_id)

    with pytest.raises(JobFinished) as raised:
        JobStore(reopened(backend)).cancel(job_id)
    assert raised.value.status == 409 and raised.value.code == "job_finished"
    assert outcome.value in raised.value.message
    assert store.get(job_id) == before


# -- finishing ---------------------------------------------------------------------------------


def test_a_job_ends_once_and_its_first_outcome_stands(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("a")
    result = {"modelId": 7, "mean_cv_roc_auc": 0.93}

    assert store.succeed(job_id, result) is True
    first = store.get(job_id)
    other = JobStore(reopened(backend))
    assert other.fail(job_id, TrainingFailed("late")) is False
    assert store.fail(job_id, JobCancelled("late")) is False

    final = store.get(job_id)
    assert final == first
    assert final.state == SUCCEEDED and final.result == result and final.error is None
    assert final.finished_at is not None


def test_a_failure_is_stored_as_the_error_it_was_and_raised_again_as_such(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("a")
    store.fail(job_id, TrainingFailed("One class only."))
    failure = JobStore(reopened(backend)).get(job_id).failure()
    assert type(failure) is TrainingFailed and failure.status == 400
    assert failure.message == "One class only."


def test_finishing_deletes_the_uploads_but_keeps_the_result_and_frees_the_slot(backend):
    store = JobStore(backend, max_running=1)
    done, waiting = submit(store, 2)
    store.claim("a")
    store.report_progress(done, {"stage": "search", "generation": 3})

    store.succeed(done, {"modelId": 1})
    restarted = JobStore(reopened(backend), max_running=1)
    assert stored_uploads(restarted, done) == {}
    assert restarted.get(done).result == {"modelId": 1}
    assert restarted.get(done).progress == {"stage": "search", "generation": 3}
    assert set(stored_uploads(restarted, waiting)) == {"raw_data", "labels", "params"}  # others untouched
    assert restarted.claim("b").job_id == waiting


def test_waiting_returns_the_job_once_another_instance_ends_it(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("a")
    finisher = threading.Timer(0.1, JobStore(reopened(backend)).succeed,
                               args=(job_id, {"modelId": 2}))
    finisher.start()
    try:
        ended = store.wait(job_id, poll_s=0.01)
    finally:
        finisher.join(5)
    assert ended.state == SUCCEEDED and ended.result == {"modelId": 2}


def test_a_waiter_can_give_up_and_the_job_goes_on(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    asked = []
    assert store.wait(job_id, poll_s=0.01, keep_waiting=lambda: asked.append(1) or len(asked) < 3) is None
    assert len(asked) == 3 and store.get(job_id).state == QUEUED


# -- abandoned jobs ----------------------------------------------------------------------------


def test_a_running_job_whose_process_went_silent_is_queued_again_then_failed(backend):
    store = JobStore(backend, max_running=5, max_attempts=2)
    silent, alive, queued = submit(store, 3)
    store.claim("dead-runner")
    store.claim("live-runner")
    backdate_heartbeat(backend, silent)
    # the live process keeps beating: an old beat followed by a fresh one is fresh
    backdate_heartbeat(backend, alive)
    store.beat(alive)

    checker = JobStore(reopened(backend), max_running=5, max_attempts=2)  # any instance
    assert checker.requeue_abandoned() == [silent]
    again = store.get(silent)
    assert again.state == QUEUED and again.attempt == 1 and again.owner is None
    assert set(stored_uploads(store, silent)) == {"raw_data", "labels", "params"}  # kept for the rerun
    assert store.get(alive).state == RUNNING and store.get(queued).state == QUEUED

    assert store.claim("runner-2").job_id == silent  # the oldest queued job: it runs again
    assert store.get(silent).attempt == 2
    backdate_heartbeat(backend, silent)
    assert checker.requeue_abandoned() == [silent]
    failed = store.get(silent)
    assert failed.state == FAILED and failed.error["error"] == "worker_lost"
    assert re.search(r"submit .*again", failed.error["message"]) and "2 times" in failed.error["message"]
    assert stored_uploads(store, silent) == {}
    # the process coming back late cannot overwrite the failure
    assert store.succeed(silent, {"modelId": 1}) is False
    assert checker.requeue_abandoned() == []  # nothing more to do


def test_a_silent_job_that_was_being_cancelled_ends_cancelled(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("a")
    store.cancel(job_id)
    backdate_heartbeat(backend, job_id)
    assert store.requeue_abandoned() == [job_id]
    assert store.get(job_id).state == CANCELLED


class WatchingEnds:
    """A backend that notes which pipelines another instance lists at the moment a job's
    record is written as ended: what a client polling that job would find then."""

    def __init__(self, backend):
        self._backend = backend
        self.listed_when_ended: list[list[str]] = []
        self._other_instance = ModelStore(reopened(backend))

    def put(self, key, value):
        self._backend.put(key, value)
        if key.startswith(f"{Keys.RECORDS}/") and \
                json.loads(value)["state"] in ("failed", "cancelled"):
            self.listed_when_ended.append(list(self._other_instance.list()))

    def __getattr__(self, name):
        return getattr(self._backend, name)


def running_job_serving_a_baseline(backend, **limits) -> tuple[JobStore, WatchingEnds, str]:
    """A claimed job whose first model (its provisional baseline) is stored and served,
    in a job store built as the service builds it."""
    watched = WatchingEnds(backend)
    models = ModelStore(watched)
    jobs = job_store(watched, models, **limits)
    (job_id,) = submit(jobs)
    jobs.claim("a")
    pipeline_id, version = models.save("baseline", {}, provisional=True, job_id=job_id)
    jobs.record_version(job_id, pipeline_id, version)
    return jobs, watched, job_id


END_A_RUNNING_JOB = {
    "its process fails it": lambda jobs, job_id: jobs.fail(job_id, TrainingFailed("boom")),
    "its process stops on a cancel": lambda jobs, job_id: (
        jobs.cancel(job_id), jobs.fail(job_id, JobCancelled("Cancelled while running."))),
    "it went silent while being cancelled": lambda jobs, job_id: (
        jobs.cancel(job_id), backdate_heartbeat(jobs.backend, job_id),
        jobs.requeue_abandoned()),
    "it went silent on its last attempt": lambda jobs, job_id: (
        backdate_heartbeat(jobs.backend, job_id), jobs.requeue_abandoned()),
    "its server shut down on its last attempt": lambda jobs, job_id: jobs.requeue(
        job_id, "the server running it shut down"),
}


@pytest.mark.parametrize("how", END_A_RUNNING_JOB)
def test_a_job_reads_as_ended_only_once_its_provisional_model_is_gone(backend, how):
    jobs, watched, job_id = running_job_serving_a_baseline(backend, max_attempts=1)
    END_A_RUNNING_JOB[how](jobs, job_id)
    assert jobs.get(job_id).state in (FAILED, CANCELLED)
    assert watched.listed_when_ended == [[]]
    assert list(ModelStore(reopened(backend)).list()) == []
    assert jobs.fail(job_id, ApiError("late")) is False  # the first outcome stands


def test_cancelling_a_requeued_job_removes_the_baseline_its_first_attempt_served(backend):
    jobs, watched, job_id = running_job_serving_a_baseline(backend)
    backdate_heartbeat(backend, job_id)
    assert jobs.requeue_abandoned() == [job_id]  # its process went silent
    assert jobs.get(job_id).state == QUEUED and list(ModelStore(backend).list()) == ["1"]
    assert jobs.cancel(job_id).state == CANCELLED
    assert watched.listed_when_ended == [[]]


def test_a_succeeding_job_keeps_the_version_it_made(backend):
    jobs, watched, job_id = running_job_serving_a_baseline(backend)
    assert jobs.succeed(job_id, {"accuracy": 1.0}) is True
    assert list(ModelStore(reopened(backend)).list()) == ["1"]


def test_a_short_stale_limit_requeues_a_job_soon_after_its_last_heartbeat(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("a")
    assert JobStore(reopened(backend), stale_after_s=5).requeue_abandoned() == []  # fresh
    time.sleep(0.05)
    assert JobStore(reopened(backend), stale_after_s=0.01).requeue_abandoned() == [job_id]
    assert store.get(job_id).state == QUEUED


def test_queued_jobs_are_never_taken_for_abandoned(backend):
    store = JobStore(backend, stale_after_s=0.0)
    ids = submit(store, 2)
    time.sleep(0.01)
    assert store.requeue_abandoned() == []
    assert [store.get(i).state for i in ids] == [QUEUED, QUEUED]


# -- progress, listing, retention ---------------------------------------------------------------


def test_progress_reported_by_the_training_shows_in_the_job(backend):
    store = JobStore(backend)
    (job_id,) = submit(store)
    store.claim("a")
    assert store.get(job_id).progress is None

    training = JobStore(reopened(backend))  # the training process writes, the API reads
    training.report_progress(job_id, {"stage": "baseline", "pipelinesEvaluated": 0})
    assert store.get(job_id).progress == {"stage": "baseline", "pipelinesEvaluated": 0}
    training.record_version(job_id, "7", 3)
    assert store.get(job_id).pipeline_id == "7" and store.get(job_id).version == 3
    assert store.get(job_id).state == RUNNING


def test_the_list_holds_every_job_newest_first_a_page_at_a_time(backend):
    store = JobStore(backend, max_running=5)
    assert store.list() == ([], None)
    ids = submit(store, 5)
    store.claim("a")
    store.succeed(ids[0], {"modelId": 1})
    store.cancel(ids[2])

    listed, after = JobStore(reopened(backend)).list()
    assert [job.job_id for job in listed] == ids[::-1] and after is None
    assert [job.state for job in listed] == [QUEUED, QUEUED, CANCELLED, QUEUED, SUCCEEDED]
    assert listed[-1].result == {"modelId": 1}

    first, after = store.list(limit=2)
    assert [j.job_id for j in first] == ids[:2:-1] and after == ids[3]
    second, after = store.list(limit=2, before=after)
    assert [j.job_id for j in second] == [ids[2], ids[1]] and after == ids[1]
    third, after = store.list(limit=2, before=after)
    assert [j.job_id for j in third] == [ids[0]] and after is None
    assert ids_of(store.list(state=QUEUED)) == [ids[4], ids[3], ids[1]]


def test_one_unreadable_record_is_listed_as_such_and_stops_nothing_else(backend):
    store = JobStore(backend, max_running=5)
    good, bad, later = submit(store, 3)
    backend.put(Keys.record(bad), b"{not json")

    listed, _ = store.list()
    assert [j.job_id for j in listed] == [later, bad, good]
    assert isinstance(listed[1], UnreadableJob) and listed[1].to_json()["unreadable"] is True
    with pytest.raises(ApiError) as raised:
        store.get(bad)
    assert raised.value.status == 500 and raised.value.code == "record_unreadable"
    # the queue still runs the readable jobs
    assert [store.claim("a").job_id, store.claim("a").job_id] == [good, later]
    backend.put(Keys.record(later), json.dumps({"jobId": later, "state": "exploded"}).encode())
    assert store.requeue_abandoned() == [] and store.claim("a") is None


def test_old_and_surplus_finished_jobs_are_forgotten(backend):
    store = JobStore(backend, max_running=5)
    ids = submit(store, 4)
    for job_id in ids[:3]:
        store.claim("a")
        store.succeed(job_id, {"modelId": 1})
    assert store.prune(max_age_s=3600, max_records=10) == []
    assert sorted(store.prune(max_age_s=3600, max_records=2)) == sorted(ids[:2])
    assert ids_of(store.list()) == [ids[3], ids[2]]  # the queued one stays, whatever its rank
    time.sleep(0.01)
    assert store.prune(max_age_s=0.0, max_records=10) == [ids[2]]
    assert backend.get(Keys.progress(ids[2])) is None
    assert ids_of(store.list()) == [ids[3]]


# -- unknown ids -------------------------------------------------------------------------------


BAD_IDS = ["nope", "../x", "", "..", "a/b", " ", "x\x00", "jobs/../x"]


@pytest.mark.parametrize("job_id", BAD_IDS)
@pytest.mark.parametrize("operation", ["get", "cancel", "succeed", "wait"])
def test_unknown_or_malformed_ids_are_a_404(backend, job_id, operation):
    store = JobStore(backend)
    submit(store)  # a queue that is not empty
    # a record planted outside jobs/ must not be reachable through a crafted id
    backend.put("x", json.dumps({"jobId": "x", "state": "queued"}).encode())
    call = {"get": lambda: store.get(job_id), "cancel": lambda: store.cancel(job_id),
            "succeed": lambda: store.succeed(job_id, {}),
            "wait": lambda: store.wait(job_id, poll_s=0.01)}[operation]
    with pytest.raises(JobNotFound) as raised:
        call()
    assert raised.value.status == 404 and raised.value.code == "job_not_found"
    assert [job.state for job in store.list()[0]] == [QUEUED]


def test_an_overlong_id_is_a_404_not_a_server_error(backend):
    store = JobStore(backend)
    for operation in (store.get, store.cancel):
        with pytest.raises(JobNotFound) as raised:
            operation("a" * 256)
        assert len(raised.value.message) < 200


# -- many processes at once --------------------------------------------------------------------


def _claim_until_empty(backend, owner, start, results):
    store = JobStore(reopened(backend), max_running=1000)
    claimed = []
    start.wait(10)
    while (job := store.claim(owner)) is not None:
        claimed.append(job.job_id)
        store.report_progress(job.job_id, {"stage": "search"})
        store.succeed(job.job_id, {"by": owner})
    results.put((owner, claimed))


def test_processes_claiming_at_once_never_run_a_job_twice(backend):
    ids = submit(JobStore(backend, max_queued=100), 12)
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
            assert job.state == SUCCEEDED and job.owner == owner
            assert job.result == {"by": owner}
