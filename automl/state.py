"""The shared state of one service: its backend, pipelines and jobs, opened from settings.

The app and each training process open it the same way, so they always agree on where
pipelines live and how they are signed.
"""
from __future__ import annotations

from dataclasses import dataclass

from .backends import DirectoryBackend, RedisBackend
from .jobs import JobStore
from .store import ModelStore


class ConfigurationError(RuntimeError):
    pass


@dataclass(frozen=True)
class State:
    backend: object
    models: ModelStore
    jobs: JobStore


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
    models = ModelStore(backend, secret=secret.encode() if isinstance(secret, str) else secret)
    jobs = JobStore(backend, max_running=settings.get("MAX_CONCURRENT_TRAININGS", 1))
    return State(backend, models, jobs)
