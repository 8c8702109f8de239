"""Settings, with their defaults, overridable from the environment (12-factor, as on Cloud Foundry).

Every setting that is a number has a range; a value outside it (or no number at all) stops
the service at start with a message naming the variable, rather than misbehaving later.
"""
from __future__ import annotations

import json
import os
from urllib.parse import quote

from .compute import default_job_memory_mb


class ConfigurationError(RuntimeError):
    """The service cannot start as configured; the message says what to change."""


# variable -> (setting, default, minimum, maximum, type)
NUMBERS = {
    # Flask answers 413 above this many MB per request.
    "MAX_UPLOAD_MB": ("MAX_UPLOAD_MB", 100.0, 0.01, 100_000.0, float),
    # Trainings running at once across every instance sharing the store; the rest queue.
    "AUTOML_MAX_CONCURRENT_TRAININGS": ("MAX_CONCURRENT_TRAININGS", 1, 1, 1_000, int),
    # Trainings waiting in the queue at most (429 beyond): their uploads are kept in the store.
    "AUTOML_MAX_QUEUED_JOBS": ("MAX_QUEUED_JOBS", 20, 1, 100_000, int),
    # The longest budget (max_time_mins) a parameter file may ask for.
    "AUTOML_MAX_BUDGET_MINS": ("MAX_BUDGET_MINS", 60.0, 0.1, 100_000.0, float),
    # The budget of a fixed-model job that does not set model_training.max_time_mins.
    "AUTOML_FIXED_MODEL_BUDGET_MINS": ("FIXED_MODEL_BUDGET_MINS", 10.0, 0.1, 100_000.0, float),
    # How many times a job is started in all when its training process keeps disappearing.
    "AUTOML_JOB_ATTEMPTS": ("JOB_ATTEMPTS", 2, 1, 10, int),
    # A running job whose heartbeat is older than this is taken to have lost its process.
    "AUTOML_JOB_STALE_SECONDS": ("JOB_STALE_SECONDS", 30.0, 2.0, 3_600.0, float),
    # Finished jobs are forgotten after this many days, and beyond this many records.
    "AUTOML_JOB_RETENTION_DAYS": ("JOB_RETENTION_DAYS", 7.0, 0.0, 36_500.0, float),
    "AUTOML_MAX_JOB_RECORDS": ("MAX_JOB_RECORDS", 1_000, 1, 10_000_000, int),
    # The audit trail keeps this many events, none older than this many days.
    "AUTOML_AUDIT_MAX_EVENTS": ("AUDIT_MAX_EVENTS", 10_000, 1, 10_000_000, int),
    "AUTOML_AUDIT_RETENTION_DAYS": ("AUDIT_RETENTION_DAYS", 90.0, 0.0, 36_500.0, float),
    # Finished versions kept per pipeline (the current one is always kept).
    "AUTOML_KEEP_VERSIONS": ("KEEP_VERSIONS", 10, 1, 10_000, int),
    # Trainings one key may have queued or running; a key's "max_trainings" overrides it.
    "AUTOML_MAX_TRAININGS_PER_KEY": ("MAX_TRAININGS_PER_KEY", 4, 1, 100_000, int),
    # Memory one training may use, in MiB: engines are narrowed (fewer kernels) or skipped to
    # stay within it, and an upload that cannot fit is refused at submission. 0: the
    # instance's memory (its container limit) divided by AUTOML_MAX_CONCURRENT_TRAININGS.
    "AUTOML_JOB_MEMORY_MB": ("JOB_MEMORY_MB", 0, 0, 100_000_000, int),
    # Series one prediction request may hold (413 beyond).
    "AUTOML_MAX_PREDICTION_SERIES": ("MAX_PREDICTION_SERIES", 10_000, 1, 10_000_000, int),
    # A synchronous POST /train_model waits at most this long, then answers 202 with its job.
    "AUTOML_MAX_SYNC_WAIT_MINS": ("MAX_SYNC_WAIT_MINS", 120.0, 0.0, 100_000.0, float),
    # A request body must arrive within this many seconds (408 otherwise), with no pause
    # longer than the idle limit: slow clients cannot hold a connection for ever.
    "AUTOML_UPLOAD_TIMEOUT_SECONDS": ("UPLOAD_TIMEOUT_SECONDS", 300.0, 1.0, 86_400.0, float),
    "AUTOML_UPLOAD_IDLE_SECONDS": ("UPLOAD_IDLE_SECONDS", 30.0, 0.5, 3_600.0, float),
}


def from_environment(env=None) -> dict:
    env = os.environ if env is None else env
    settings = {
        # The embedded default store. On Cloud Foundry the local disk is per instance and lost
        # on restage: bind a Redis service (or set REDIS_URL) to share and keep pipelines.
        "MODEL_DIR": env.get("AUTOML_MODEL_DIR", os.path.join(os.getcwd(), "var", "models")),
        # With Redis, pipelines and jobs live there and every instance serves the same ones.
        "REDIS_URL": env.get("REDIS_URL") or redis_url_from_vcap(env.get("VCAP_SERVICES")),
        # Signs stored pipelines; required with Redis, generated beside the models otherwise.
        "SECRET_KEY": env.get("AUTOML_SECRET_KEY") or None,
        # Whether this process runs queued trainings (off for a serving-only instance).
        "RUN_JOBS": env.get("AUTOML_RUN_JOBS", "true").lower() not in ("0", "false", "no"),
        # A Dask scheduler for TPOT's search and tsfresh's extraction; a local cluster if unset.
        "DASK_SCHEDULER_ADDRESS": env.get("DASK_SCHEDULER_ADDRESS") or None,
        # API keys (see automl/auth.py): JSON {"<name>": {"key": ..., "scopes": [...]}} in the
        # variable, in a file, or in a bound Cloud Foundry service; at most one of the three.
        # None of them: the service runs open (and says so).
        "API_KEYS": env.get("AUTOML_API_KEYS") or None,
        "API_KEYS_FILE": env.get("AUTOML_API_KEYS_FILE") or None,
        "API_KEYS_SERVICES": api_key_services_from_vcap(env.get("VCAP_SERVICES")),
        # Requests per key (anonymous: per client address); a key's "rate_limit" overrides it.
        "RATE_LIMIT": env.get("AUTOML_RATE_LIMIT") or "600 per minute",
        # Where the counters live; by default Redis with a Redis store, else a SQLite file in
        # MODEL_DIR (see automl/ratelimit.py).
        "RATE_LIMIT_STORAGE": env.get("AUTOML_RATE_LIMIT_STORAGE") or None,
    }
    for variable, (name, default, minimum, maximum, kind) in NUMBERS.items():
        settings[name] = _number(env, variable, default, minimum, maximum, kind)
    settings["MAX_CONTENT_LENGTH"] = int(settings.pop("MAX_UPLOAD_MB") * 1024 * 1024)
    settings["JOB_MEMORY_MB"] = settings["JOB_MEMORY_MB"] or default_job_memory_mb(
        settings["MAX_CONCURRENT_TRAININGS"])
    return settings


def _number(env, variable: str, default, minimum, maximum, kind):
    raw = env.get(variable)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(float(raw)) if kind is int and float(raw).is_integer() else kind(raw)
    except (TypeError, ValueError, OverflowError):
        value = None
    if value is None or not minimum <= value <= maximum:
        raise ConfigurationError(f"{variable}={raw[:40]!r}: must be a {'whole ' if kind is int else ''}"
                                 f"number from {minimum:g} to {maximum:g} (default {default:g}).")
    return value


API_KEYS_SERVICE = "automl-api-keys"


def api_key_services_from_vcap(vcap_services: str | None) -> list[dict]:
    """Bound services named or tagged ``automl-api-keys`` (a user-provided service, made with
    ``cf create-user-provided-service automl-api-keys -p '{"keys": {...}}'``), each as
    ``{"name": ..., "credentials": ...}``; ``automl.auth`` reads the keys from the credentials.
    """
    if not vcap_services:
        return []
    found = []
    for instances in json.loads(vcap_services).values():
        for service in instances:
            tags = [str(t).lower() for t in service.get("tags") or []]
            if service.get("name") == API_KEYS_SERVICE or API_KEYS_SERVICE in tags:
                found.append({"name": service.get("name") or "(unnamed)",
                              "credentials": service.get("credentials")})
    return found


def redis_url_from_vcap(vcap_services: str | None) -> str | None:
    """The URL of the first bound service tagged or labelled redis, as Cloud Foundry presents it.

    Brokers differ: some give ``uri``/``url``, others ``host``/``port``/``password`` (and
    ``tls_port`` when TLS is on, which is then preferred).
    """
    if not vcap_services:
        return None
    try:
        services = json.loads(vcap_services)
    except ValueError as err:
        raise ConfigurationError(f"VCAP_SERVICES is not valid JSON ({err}).") from None
    for instances in services.values() if isinstance(services, dict) else []:
        for service in instances if isinstance(instances, list) else []:
            tags = [str(t).lower() for t in service.get("tags", [])]
            if "redis" not in tags and "redis" not in str(service.get("label", "")).lower():
                continue
            credentials = service.get("credentials", {})
            for key in ("uri", "url"):
                if credentials.get(key):
                    return credentials[key]
            if "host" in credentials:
                scheme, port = ("rediss", credentials["tls_port"]) if credentials.get("tls_port") \
                    else ("redis", credentials.get("port", 6379))
                password = credentials.get("password")
                auth = f":{quote(str(password), safe='')}@" if password else ""
                return f"{scheme}://{auth}{credentials['host']}:{port}/0"
    return None
