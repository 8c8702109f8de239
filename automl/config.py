"""Settings, with their defaults, overridable from the environment (12-factor, as on Cloud Foundry)."""
from __future__ import annotations

import json
import os
from urllib.parse import quote


def from_environment() -> dict:
    env = os.environ
    return {
        # The embedded default store. On Cloud Foundry the local disk is per instance and lost
        # on restage: bind a Redis service (or set REDIS_URL) to share and keep pipelines.
        "MODEL_DIR": env.get("AUTOML_MODEL_DIR", os.path.join(os.getcwd(), "var", "models")),
        # With Redis, pipelines and jobs live there and every instance serves the same ones.
        "REDIS_URL": env.get("REDIS_URL") or redis_url_from_vcap(env.get("VCAP_SERVICES")),
        # Signs stored pipelines; required with Redis, generated beside the models otherwise.
        "SECRET_KEY": env.get("AUTOML_SECRET_KEY") or None,
        # Flask answers 413 above this many bytes per request.
        "MAX_CONTENT_LENGTH": int(float(env.get("MAX_UPLOAD_MB", "100")) * 1024 * 1024),
        # Trainings running at once across every instance sharing the store; the rest queue.
        "MAX_CONCURRENT_TRAININGS": int(env.get("AUTOML_MAX_CONCURRENT_TRAININGS", "1")),
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
        # Trainings one key may have queued or running; a key's "max_trainings" overrides it.
        "MAX_TRAININGS_PER_KEY": int(env.get("AUTOML_MAX_TRAININGS_PER_KEY", "4")),
    }


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
    for instances in json.loads(vcap_services).values():
        for service in instances:
            tags = [t.lower() for t in service.get("tags", [])]
            if "redis" not in tags and "redis" not in service.get("label", "").lower():
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
