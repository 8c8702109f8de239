"""The shared state of one service: its backend, pipelines and jobs, opened from settings.

The app and each training process open it the same way, so they always agree on where
pipelines live, how they are signed and what the queue's limits are.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

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
                        "MAX_BUDGET_MINS", "FIXED_MODEL_BUDGET_MINS", "JOB_MEMORY_MB",
                        "DASK_SCHEDULER_ADDRESS", "AUDIT_MAX_EVENTS", "AUDIT_RETENTION_DAYS")


@dataclass(frozen=True)
class State:
    backend: object
    models: ModelStore
    jobs: JobStore
    audit: AuditLog


def discard_provisional(models: ModelStore, job) -> None:
    """Remove the provisional version a job left: a failed or cancelled job leaves no
    pipeline behind that it made. The job store calls it before it marks the job ended."""
    if job.version is not None and job.pipeline_id is not None:
        try:
            if models.metadata(job.pipeline_id, job.version).get("provisional"):
                models.discard(job.pipeline_id, job.version)
        except ApiError:  # already gone, or unreadable: nothing to remove
            pass


def job_store(backend, models: ModelStore, **limits) -> JobStore:
    """The job store of a service whose pipelines are ``models``."""
    return JobStore(backend, before_unsuccessful_end=partial(discard_provisional, models),
                    **limits)


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
    jobs = job_store(backend, models,
                     max_running=int(settings.get("MAX_CONCURRENT_TRAININGS", 1)),
                     max_queued=int(settings.get("MAX_QUEUED_JOBS", 20)),
                     stale_after_s=float(settings.get("JOB_STALE_SECONDS", 30.0)),
                     max_attempts=int(settings.get("JOB_ATTEMPTS", 2)))
    audit = AuditLog(backend, max_events=int(settings.get("AUDIT_MAX_EVENTS", 10_000)),
                     max_age_s=float(settings.get("AUDIT_RETENTION_DAYS", 90)) * 86_400)
    return State(backend, models, jobs, audit)
