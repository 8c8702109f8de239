"""The shared state of one service: its backend, pipelines and jobs, opened from settings.

The app and each training process open it the same way, so they always agree on where
pipelines live, how they are signed and what the queue's limits are.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from .audit import AuditLog
from .backends import DirectoryBackend, RedisBackend
from .config import ConfigurationError
from .errors import ApiError
from .jobs import JobStore
from .store import ModelStore

log = logging.getLogger(__name__)

SETTINGS_VARIABLE = "AUTOML_WORKER_SETTINGS"  # how a training process receives the settings
SETTINGS_FOR_WORKERS = ("MODEL_DIR", "REDIS_URL", "SECRET_KEY", "MAX_CONCURRENT_TRAININGS",
                        "MAX_QUEUED_JOBS", "JOB_ATTEMPTS", "JOB_STALE_SECONDS", "KEEP_VERSIONS",
                        "MAX_BUDGET_MINS", "FIXED_MODEL_BUDGET_MINS", "DASK_SCHEDULER_ADDRESS",
                        "AUDIT_MAX_EVENTS", "AUDIT_RETENTION_DAYS")


@dataclass(frozen=True)
class State:
    backend: object
    models: ModelStore
    jobs: JobStore
    audit: AuditLog

    def end_job(self, job_id: str, error: ApiError) -> bool:
        """Fail (or cancel) a job once, and remove the provisional version it left: a failed
        job leaves no pipeline behind that it made.

        The version goes first: a client that sees the job ended must not still find it.
        Only the job's own process (or the runner, once that process is dead) ends a running
        job, so nothing saves a version between the two steps."""
        job = self.jobs.get(job_id)
        if job.state.finished:
            return False
        self.discard_provisional(job)
        return self.jobs.fail(job_id, error)

    def cancel_job(self, job_id: str):
        """Cancel a job: a queued one ends now (with any version an earlier attempt left
        removed), a running one is asked to stop and ends itself."""
        job = self.jobs.cancel(job_id)
        if job.state.finished:
            self.discard_provisional(job)
        return job

    def discard_provisional(self, job) -> None:
        if job.version is not None and job.pipeline_id is not None:
            try:
                if self.models.metadata(job.pipeline_id, job.version).get("provisional"):
                    self.models.discard(job.pipeline_id, job.version)
            except ApiError:  # already gone, or unreadable: nothing to remove
                pass


def open_state(settings: dict) -> State:
    secret = settings.get("SECRET_KEY")
    if settings.get("REDIS_URL"):
        if not secret:
            # A key kept in Redis would sign for anyone who can write there: refuse.
            raise ConfigurationError("With a Redis store, set AUTOML_SECRET_KEY (the same on every "
                                     "instance) so stored pipelines can be signed and checked.")
        backend = RedisBackend(settings["REDIS_URL"])
    else:
        backend = DirectoryBackend(settings["MODEL_DIR"])
    models = ModelStore(backend, secret=secret.encode() if isinstance(secret, str) else secret,
                        keep_versions=int(settings.get("KEEP_VERSIONS", 10)))
    jobs = JobStore(backend, max_running=int(settings.get("MAX_CONCURRENT_TRAININGS", 1)),
                    max_queued=int(settings.get("MAX_QUEUED_JOBS", 20)),
                    stale_after_s=float(settings.get("JOB_STALE_SECONDS", 30.0)),
                    max_attempts=int(settings.get("JOB_ATTEMPTS", 2)))
    audit = AuditLog(backend, max_events=int(settings.get("AUDIT_MAX_EVENTS", 10_000)),
                     max_age_s=float(settings.get("AUDIT_RETENTION_DAYS", 90)) * 86_400)
    return State(backend, models, jobs, audit)
