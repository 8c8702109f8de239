"""Training jobs: typed records in a durable queue kept in the shared backend.

Per job the backend holds keys written by exactly one party each, so no update is lost
(:class:`Keys` names them all):

    jobs/<id>                 the record (:class:`Job`), changed only under the jobs lock
    jobs-active/<id>          present while the job is queued or running: what runners scan
    job-uploads/<id>-<name>   the uploaded files, until the job ends (written by the request,
                              streamed: a large upload is never held whole)
    job-progress/<id>         stage, generation, pipelines evaluated... (the training process)
    job-heartbeats/<id>       last sign of life (the training process)
    job-checkpoints/<id>/<p>  what the training has done so far, part by part (the training
                              process; ``checkpoints``), so that another start resumes it

A running job whose heartbeat stops (its process or machine went away) is put back in the
queue by any runner that notices, at most ``max_attempts`` starts in all, so no job stays
"running" for ever and none is lost to one dead process. The next start resumes from the
job's checkpoint within what is left of its budget (``spent_seconds`` counts the earlier
starts). One unreadable record affects only itself: it is listed as unreadable and skipped
by the runners.
"""
from __future__ import annotations

import io
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from enum import Enum

from .budget import Budget
from .errors import (ApiError, JobCancelled, JobFinished, JobNotFound, QueueFull,
                     TooManyRequests, WorkerLost)
from .uploads import STREAMED_FILES, TRAINING_FILES, Upload

log = logging.getLogger(__name__)

JOB_ID_MAX_CHARS = 64


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class Keys:
    """Every backend key of a job, in one place."""

    RECORDS, ACTIVE, UPLOADS = "jobs", "jobs-active", "job-uploads"
    PROGRESS, HEARTBEATS, CHECKPOINTS = "job-progress", "job-heartbeats", "job-checkpoints"
    LOCK = "jobs"

    @staticmethod
    def record(job_id: str) -> str:
        return f"{Keys.RECORDS}/{job_id}"

    @staticmethod
    def active(job_id: str) -> str:
        return f"{Keys.ACTIVE}/{job_id}"

    @staticmethod
    def upload(job_id: str, name: str, meta: bool = False) -> str:
        return f"{Keys.UPLOADS}/{job_id}-{name}{'.meta' if meta else ''}"

    @staticmethod
    def progress(job_id: str) -> str:
        return f"{Keys.PROGRESS}/{job_id}"

    @staticmethod
    def heartbeat(job_id: str) -> str:
        return f"{Keys.HEARTBEATS}/{job_id}"

    @staticmethod
    def checkpoints(job_id: str) -> str:
        """The folder of a job's checkpoint parts."""
        return f"{Keys.CHECKPOINTS}/{job_id}"

    @staticmethod
    def checkpoint(job_id: str, part: str) -> str:
        return f"{Keys.checkpoints(job_id)}/{part}"

    @staticmethod
    def transient(job_id: str) -> list[str]:
        """What a job needs only until it ends."""
        return [Keys.active(job_id), Keys.heartbeat(job_id),
                *(Keys.upload(job_id, name, meta) for name in TRAINING_FILES
                  for meta in (False, True))]


@dataclass
class Job:
    """One training job. ``to_json`` is what the API shows and the backend stores."""

    job_id: str
    state: JobState
    pipeline_id: str | None
    budget_seconds: float
    created_at: str
    submitted_by: str | None = None   # the name of the API key that submitted it
    started_at: str | None = None
    finished_at: str | None = None
    started_epoch: float | None = None
    deadline: float | None = None     # started_epoch + budget - spent_seconds: when
                                      # training should be done
    owner: str | None = None          # the runner (host:pid) that started its process
    attempt: int = 0                  # how many times it has been started
    spent_seconds: float = 0.0        # of its budget, what the earlier starts used
    version: int | None = None        # the version of pipeline_id it trains, once it has one
    cancel_requested: bool = False
    result: dict | None = None        # the training report, once succeeded
    error: dict | None = None         # ApiError.to_dict(), once failed or cancelled
    progress: dict | None = field(default=None, compare=False)  # kept under its own key

    _NAMES = {"job_id": "jobId", "state": "state", "pipeline_id": "pipelineId",
              "budget_seconds": "budgetSeconds", "created_at": "createdAt",
              "submitted_by": "submittedBy", "started_at": "startedAt",
              "finished_at": "finishedAt", "started_epoch": "startedEpoch",
              "deadline": "deadline", "owner": "owner", "attempt": "attempt",
              "spent_seconds": "spentSeconds",
              "version": "version", "cancel_requested": "cancelRequested",
              "result": "result", "error": "error",
              "progress": "progress"}

    @property
    def budget(self) -> Budget:
        return Budget(self.budget_seconds)

    def elapsed_seconds(self, now: float) -> float | None:
        """Of its budget, what it has used by ``now``: earlier starts included."""
        if self.started_epoch is None:
            return None
        return self.spent_seconds + now - self.started_epoch

    def hard_deadline(self) -> float | None:
        return self.budget.hard_deadline(self.deadline) if self.deadline else None

    def failure(self) -> ApiError | None:
        return ApiError.from_dict(self.error) if self.error else None

    def to_json(self, with_progress: bool = True) -> dict:
        data = {}
        for f in fields(self):
            if f.name == "progress" and not with_progress:
                continue
            value = getattr(self, f.name)
            data[self._NAMES[f.name]] = value.value if isinstance(value, JobState) else value
        return data

    @classmethod
    def from_json(cls, data) -> Job:
        """The job in a stored record; ``ValueError`` if the record is not one."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {json_name: name for name, json_name in cls._NAMES.items()}
        values = {known[k]: v for k, v in data.items() if k in known and k != "progress"}
        try:
            values["state"] = JobState(values["state"])
            job = cls(**values)
        except (KeyError, TypeError) as err:
            raise ValueError(f"missing or unexpected fields ({err})") from None
        if not isinstance(job.job_id, str) or not isinstance(job.budget_seconds, (int, float)):
            raise ValueError("jobId or budgetSeconds of the wrong type")
        return job


@dataclass(frozen=True)
class UnreadableJob:
    """A record that is not a job (damaged or written by something else): listed as such."""

    job_id: str
    reason: str

    def to_json(self, with_progress: bool = True) -> dict:
        return {"jobId": self.job_id, "state": None, "unreadable": True,
                "error": {"error": "record_unreadable", "status": 500,
                          "message": f"This job's record cannot be read ({self.reason})."}}


class JobUnreadable(ApiError):
    status = 500
    code = "record_unreadable"


_reported: set[str] = set()  # unreadable records already logged by this process


def _report_unreadable(job_id: str, reason: str) -> None:
    if job_id not in _reported:
        _reported.add(job_id)
        log.error("job %s: its record is unreadable (%s); skipping it", job_id, reason)


def valid_job_id(job_id: str) -> bool:
    return job_id.isascii() and job_id.isalnum() and 0 < len(job_id) <= JOB_ID_MAX_CHARS


class JobStore:
    def __init__(self, backend, max_running: int = 1, max_queued: int = 20,
                 stale_after_s: float = 30.0, max_attempts: int = 2,
                 before_unsuccessful_end: Callable[[Job], None] | None = None):
        """``before_unsuccessful_end(job)`` runs before a job is recorded as failed or
        cancelled, on every path that ends one (its process, the runner, a cancel, a
        requeue out of attempts): it removes what the job left, so a client that sees the
        job ended never still finds it."""
        self.backend = backend
        self.before_unsuccessful_end = before_unsuccessful_end
        self.max_running = max_running
        self.max_queued = max_queued
        self.stale_after_s = stale_after_s
        self.max_attempts = max_attempts

    # -- the request side ------------------------------------------------------------------

    def create(self, uploads: dict, pipeline_id: str | None, budget_s: float,
               submitted_by: str | None = None, max_per_submitter: int | None = None) -> Job:
        """Queue a job, unless the queue (or its submitter's share of it) is full (429)."""
        self._refuse_if_full(submitted_by, max_per_submitter)
        # A shared counter orders jobs as submitted, whatever the clocks; the random tail keeps
        # ids unguessable. Zero-padded, so sorting the ids sorts by submission.
        job_id = f"{self.backend.increment('jobs'):010d}{secrets.token_hex(4)}"
        job = Job(job_id, JobState.QUEUED, pipeline_id, float(budget_s), _now(),
                  submitted_by=submitted_by)
        try:
            for name, upload in uploads.items():
                envelope = {"filename": upload.filename, "content_type": upload.content_type}
                self.backend.put(Keys.upload(job_id, name, meta=True), json.dumps(envelope).encode())
                payload = upload.payload
                if hasattr(payload, "seek"):
                    payload.seek(0)  # the request's spooled file, read once by the parser
                else:
                    payload = io.BytesIO(payload)
                self.backend.put_stream(Keys.upload(job_id, name), payload)
            with self.backend.lock(Keys.LOCK):
                self._refuse_if_full(submitted_by, max_per_submitter)  # again, now serialised
                # The marker first: a crash in between leaves a marker without a job, which
                # is skipped, rather than a queued job no runner would ever see.
                self.backend.put(Keys.active(job_id), b"")
                self.backend.put(Keys.record(job_id), _dump(job.to_json(with_progress=False)))
        except BaseException:
            self.backend.delete(*Keys.transient(job_id), Keys.record(job_id))
            raise
        return job

    def get(self, job_id: str) -> Job:
        job = self._record(job_id)
        progress = self.backend.get(Keys.progress(job_id))
        try:
            job.progress = json.loads(progress) if progress else None
        except ValueError:
            job.progress = None
        return job

    def list(self, limit: int = 50, before: str | None = None, state: JobState | None = None,
             submitted_by: str | None = None) -> tuple[list[Job | UnreadableJob], str | None]:
        """Jobs newest first (only ``state``'s, only ``submitted_by``'s, if given): at most
        ``limit`` submitted before the job ``before``, and the id to pass as ``before`` for
        the next page (None on the last)."""
        ids = sorted((key.removeprefix(f"{Keys.RECORDS}/") for key in
                      self.backend.keys(Keys.RECORDS)), reverse=True)
        if before is not None:
            ids = [i for i in ids if i < before]
        page: list[Job | UnreadableJob] = []
        for job_id in ids:
            entry = self._entry(job_id)
            if entry is None or (state is not None and getattr(entry, "state", None) != state) \
                    or (submitted_by is not None
                        and getattr(entry, "submitted_by", None) != submitted_by):
                continue
            if len(page) == limit:  # one more exists: there is a next page
                return page, page[-1].job_id
            page.append(entry)
        return page, None

    def cancel(self, job_id: str) -> Job:
        with self.backend.lock(Keys.LOCK):
            job = self._record(job_id)
            if job.state == JobState.QUEUED:
                self._finish_locked(job, error=JobCancelled("Cancelled before it started."))
            elif job.state == JobState.RUNNING:
                job.cancel_requested = True  # its training process stops itself
                self._put(job)
            else:
                raise JobFinished(f"Job '{job_id}' already ended as {job.state.value}; "
                                  "there is nothing to cancel.")
        return self.get(job_id)

    def wait(self, job_id: str, poll_s: float = 0.5, keep_waiting=lambda: True) -> Job | None:
        """The job once it has ended; None if ``keep_waiting()`` said to stop first."""
        while True:
            job = self._record(job_id)
            if job.state.finished:
                return job
            if not keep_waiting():
                return None
            time.sleep(poll_s)

    # -- the runner side -------------------------------------------------------------------

    def claim(self, owner: str) -> Job | None:
        """The oldest queued job, now running under ``owner``, if the running limit allows."""
        with self.backend.lock(Keys.LOCK):
            active = self._active()
            if sum(job.state == JobState.RUNNING for job in active) >= self.max_running:
                return None
            queued = [job for job in active if job.state == JobState.QUEUED]
            if not queued:
                return None
            job = min(queued, key=lambda j: j.job_id)
            started = time.time()
            job.state, job.started_at, job.started_epoch = JobState.RUNNING, _now(), started
            job.owner, job.attempt = owner, job.attempt + 1
            # A resumed job has only what its earlier starts left of the budget.
            job.deadline = job.budget.deadline(started) - job.spent_seconds
            self.beat(job.job_id)
            self._put(job)
            return job

    @contextmanager
    def open_uploads(self, job_id: str) -> Iterator[dict[str, Upload]]:
        """The job's stored files, the data files as open files (closed on leaving) and the
        others as bytes; a file missing from the store is missing from the dict."""
        with ExitStack() as opened:
            found = {}
            for name in TRAINING_FILES:
                stream = self.backend.open_stream(Keys.upload(job_id, name))
                if stream is None:
                    continue
                opened.enter_context(stream)
                meta = json.loads(self.backend.get(Keys.upload(job_id, name, meta=True)) or b"{}")
                payload = stream if name in STREAMED_FILES else stream.read()
                found[name] = Upload(payload, meta.get("filename"), meta.get("content_type"))
            yield found

    def record_version(self, job_id: str, pipeline_id: str, version: int) -> None:
        """The pipeline version a running job trains, once its first model is stored."""
        with self.backend.lock(Keys.LOCK):
            job = self._record(job_id)
            job.pipeline_id, job.version = pipeline_id, version
            self._put(job)

    def beat(self, job_id: str) -> None:
        self.backend.put(Keys.heartbeat(job_id), str(time.time()).encode())

    def report_progress(self, job_id: str, progress: dict) -> None:
        self.backend.put(Keys.progress(job_id), _dump(progress))

    def succeed(self, job_id: str, result: dict) -> bool:
        """End a job with its report, once; False if it had already ended."""
        return self._finish(job_id, result=result)

    def fail(self, job_id: str, error: ApiError) -> bool:
        """End a job with ``error`` (cancelled if it is a ``JobCancelled``), once."""
        return self._finish(job_id, error=error)

    def requeue_abandoned(self) -> list[str]:
        """Running jobs whose process stopped beating (killed, or its machine gone): back in
        the queue for another start, or failed once they have had ``max_attempts``."""
        handled = []
        now = time.time()
        for job in self._active():
            if job.state != JobState.RUNNING:
                continue
            beat = _float(self.backend.get(Keys.heartbeat(job.job_id)))
            if now - beat > self.stale_after_s and self.requeue(
                    job.job_id, "its training process stopped (killed, or its machine went "
                                "away)", expected_beat=beat):
                handled.append(job.job_id)
        return handled

    def requeue(self, job_id: str, why: str, expected_beat: float | None = None) -> bool:
        """Put a running job back in the queue (or end it, if cancelled or out of attempts).

        ``expected_beat``: only if its heartbeat is still that one (it did not come back)."""
        with self.backend.lock(Keys.LOCK):
            try:
                job = self._record(job_id)
            except (JobNotFound, JobUnreadable):
                return False
            if job.state != JobState.RUNNING:
                return False
            if expected_beat is not None and \
                    _float(self.backend.get(Keys.heartbeat(job_id))) != expected_beat:
                return False
            if job.cancel_requested:
                self._finish_locked(job, error=JobCancelled("Cancelled while running."))
            elif job.attempt >= self.max_attempts:
                self._finish_locked(job, error=WorkerLost(
                    f"The training stopped before it finished ({why}), {job.attempt} times. "
                    "Pipelines already stored are untouched; submit it again, perhaps with "
                    "fewer series or a smaller feature set."))
            else:
                log.warning("job %s: %s; back in the queue (attempt %d of %d)", job_id, why,
                            job.attempt, self.max_attempts)
                # Its time ran until its last sign of life (or until now, if none).
                last_beat = _float(self.backend.get(Keys.heartbeat(job_id))) or time.time()
                job.spent_seconds += max(0.0, min(last_beat, time.time()) - job.started_epoch)
                job.state, job.owner, job.deadline, job.started_epoch = \
                    JobState.QUEUED, None, None, None
                self._put(job)
                self.backend.delete(Keys.heartbeat(job_id))
            return True

    def prune(self, max_age_s: float, max_records: int) -> list[str]:
        """Forget finished jobs older than ``max_age_s`` or beyond the newest ``max_records``."""
        ids = sorted((key.removeprefix(f"{Keys.RECORDS}/")
                      for key in self.backend.keys(Keys.RECORDS)), reverse=True)
        active = {key.removeprefix(f"{Keys.ACTIVE}/") for key in self.backend.keys(Keys.ACTIVE)}
        cutoff = datetime.now(timezone.utc).timestamp() - max_age_s
        pruned = []
        for rank, job_id in enumerate(ids):
            if job_id in active:
                continue
            entry = self._entry(job_id)
            finished = getattr(entry, "finished_at", None)
            too_old = finished is not None and _epoch(finished) < cutoff
            if rank >= max_records or too_old or isinstance(entry, UnreadableJob):
                with self.backend.lock(Keys.LOCK):
                    self.backend.delete(Keys.record(job_id), Keys.progress(job_id))
                    self._forget_transient(job_id)
                pruned.append(job_id)
        return pruned

    # -- internals -------------------------------------------------------------------------

    def _refuse_if_full(self, submitted_by, max_per_submitter) -> None:
        active = self._active()
        queued = sum(job.state == JobState.QUEUED for job in active)
        if queued >= self.max_queued:
            raise QueueFull(f"{queued} trainings are already waiting, the most this service "
                            "queues (AUTOML_MAX_QUEUED_JOBS). Retry later.",
                            retry_after_s=60)
        if max_per_submitter is not None and submitted_by is not None:
            mine = sum(job.submitted_by == submitted_by for job in active)
            if mine >= max_per_submitter:
                raise TooManyRequests(f"Key '{submitted_by}' already has {mine} trainings queued "
                                      f"or running, its limit. Wait for one to end, or cancel "
                                      "one (DELETE /jobs/<id>).", retry_after_s=60)

    def _finish(self, job_id: str, result: dict | None = None,
                error: ApiError | None = None) -> bool:
        with self.backend.lock(Keys.LOCK):
            job = self._record(job_id)
            if job.state.finished:
                return False
            self._finish_locked(job, result, error)
            return True

    def _finish_locked(self, job: Job, result: dict | None = None,
                       error: ApiError | None = None) -> None:
        if error is not None and self.before_unsuccessful_end is not None:
            self.before_unsuccessful_end(job)
        job.state = (JobState.SUCCEEDED if error is None else
                     JobState.CANCELLED if isinstance(error, JobCancelled) else JobState.FAILED)
        job.finished_at, job.result = _now(), result
        job.error = error.to_dict() if error is not None else None
        self._put(job)
        self._forget_transient(job.job_id)

    def _forget_transient(self, job_id: str) -> None:
        self.backend.delete(*Keys.transient(job_id),
                            *self.backend.keys(Keys.checkpoints(job_id)))

    def _put(self, job: Job) -> None:
        self.backend.put(Keys.record(job.job_id), _dump(job.to_json(with_progress=False)))

    def _record(self, job_id: str) -> Job:
        raw = self.backend.get(Keys.record(job_id)) if valid_job_id(job_id) else None
        if raw is None:
            raise JobNotFound(f"No job with id '{job_id[:JOB_ID_MAX_CHARS]}'. GET /jobs lists "
                              "them.")
        try:
            return Job.from_json(json.loads(raw))
        except ValueError as err:
            _report_unreadable(job_id, str(err))
            raise JobUnreadable(f"Job '{job_id}' has a record this service cannot read; the "
                                "operator's log says more.") from None

    def _entry(self, job_id: str) -> Job | UnreadableJob | None:
        """The job for a listing; None if it vanished meanwhile."""
        try:
            return self._record(job_id)
        except JobNotFound:
            return None
        except JobUnreadable:
            return UnreadableJob(job_id, "damaged or not a job")

    def _active(self) -> list[Job]:
        """Queued and running jobs, without reading the whole history."""
        found = []
        for key in self.backend.keys(Keys.ACTIVE):
            entry = self._entry(key.removeprefix(f"{Keys.ACTIVE}/"))
            if isinstance(entry, Job) and not entry.state.finished:
                found.append(entry)
        return found


def _dump(value: dict) -> bytes:
    return json.dumps(value, default=str).encode()


def _float(raw: bytes | None) -> float:
    try:
        return float(raw) if raw else 0.0
    except ValueError:
        return 0.0


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return 0.0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
