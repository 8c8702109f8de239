"""API keys, scopes and per-key rate limits (automl/auth.py, automl/ratelimit.py).

Through Flask's test client: every scope allowed and refused on every route, the 401/403/429
shapes, secrets never in a response or a log line, open mode, the three ways to configure
keys and the malformed configurations refused at start. Then with real processes: two
gunicorn instances started from the Procfile sharing a real redis-server, where a key works on
both and one rate limit counts the requests to both.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from automl import config, create_app
from automl.auth import (ENDPOINT_SCOPES, PUBLIC, SCOPES, AuthConfigurationError, Forbidden,
                         current_principal, load_keys, require_owner_or_admin)
from automl.ratelimit import RateLimiter, SQLiteStorage, default_storage_uri, parse_rate_limit
from automl.state import ConfigurationError
from servers import GunicornServer, free_port

# Distinctive secrets, so a leak into any response or log is found by a plain substring test.
SECRETS = {name: f"{name}-s3cret-{os.urandom(12).hex()}" for name in
           ("alice", "trainer", "ci", "root", "capped")}
KEYS = {"alice": {"key": SECRETS["alice"], "scopes": ["predict"]},
        "trainer": {"key": SECRETS["trainer"], "scopes": ["train"], "max_trainings": 1},
        "ci": {"key": SECRETS["ci"], "scopes": ["train", "predict"]},
        "root": {"key": SECRETS["root"], "scopes": ["admin"], "rate_limit": "off"}}

# (method, path, scopes any of which may call it) for every protected route of the API.
ROUTES = [("post", "/train_model", {"train"}),
          ("post", "/serve_prediction", {"predict"}),
          ("get", "/models", {"predict"}),
          ("get", "/models/7", {"predict"}),
          ("get", "/jobs", {"predict", "train"}),
          ("get", "/jobs/19ac3", {"predict", "train"}),
          ("delete", "/jobs/19ac3", {"train"})]


def bearer(name: str) -> dict:
    return {"Authorization": f"Bearer {SECRETS[name]}"}


def base_settings(tmp_path, **more) -> dict:
    return {"TESTING": True, "MODEL_DIR": str(tmp_path / "models"), "SECRET_KEY": "test-secret",
            "RUN_JOBS": False, **more}


def no_secret_in(text: str) -> None:
    for name, secret in SECRETS.items():
        assert secret not in text, f"the secret of {name} leaked"


@pytest.fixture
def app_overrides():
    return {"API_KEYS": json.dumps(KEYS)}


@pytest.fixture
def clean_env(monkeypatch):
    """No key or limit setting of the shell running the tests reaches the app."""
    for variable in ("AUTOML_API_KEYS", "AUTOML_API_KEYS_FILE", "VCAP_SERVICES", "REDIS_URL",
                     "AUTOML_RATE_LIMIT", "AUTOML_RATE_LIMIT_STORAGE",
                     "AUTOML_MAX_TRAININGS_PER_KEY"):
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


# -- the endpoint table ---------------------------------------------------------------------

def test_every_endpoint_of_the_app_has_an_access_rule(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = sorted(endpoints - set(ENDPOINT_SCOPES))
    assert not missing, f"add these endpoints to automl.auth.ENDPOINT_SCOPES: {missing}"
    assert all(scopes <= set(SCOPES) for scopes in ENDPOINT_SCOPES.values())
    assert ENDPOINT_SCOPES["api.health"] == PUBLIC


@pytest.mark.parametrize("keys", [None, KEYS], ids=["open", "keys"])
def test_an_endpoint_missing_from_the_table_is_refused_even_to_admin(tmp_path, clean_env, keys,
                                                                     caplog):
    app = create_app(base_settings(tmp_path, API_KEYS=keys and json.dumps(keys)))
    app.add_url_rule("/unlisted", "unlisted", lambda: "should never be reached")
    response = app.test_client().get("/unlisted", headers=bearer("root"))
    assert response.status_code == 403
    assert response.json["error"] == "forbidden"
    assert "no access rule" in response.json["message"]
    assert "'unlisted' has no entry in automl.auth.ENDPOINT_SCOPES" in caplog.text


# -- scopes, route by route -----------------------------------------------------------------

@pytest.mark.parametrize("method, path, needed", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
@pytest.mark.parametrize("key", list(KEYS))
def test_each_scope_is_allowed_or_refused_on_each_route(client, key, method, path, needed):
    scopes = set(KEYS[key]["scopes"])
    allowed = "admin" in scopes or bool(scopes & needed)
    response = getattr(client, method)(path, headers=bearer(key))
    if allowed:  # the route's own answer: 200, or 404/415 for the empty requests sent here
        assert response.status_code not in (401, 403, 429), response.json
    else:
        assert response.status_code == 403, response.json
        wanted = " or ".join(f"'{s}'" for s in sorted(needed))
        assert response.json == {"error": "forbidden", "message": response.json["message"]}
        assert f"key '{key}' lacks the {wanted} scope" in response.json["message"]
        assert "insufficient_scope" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("method, path, needed", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_protected_route_asks_for_a_bearer_key(client, method, path, needed):
    response = getattr(client, method)(path)
    assert response.status_code == 401
    assert set(response.json) == {"error", "message"}
    assert response.json["error"] == "unauthorized"
    assert "send Authorization: Bearer <key>" in response.json["message"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="automl"'


@pytest.mark.parametrize("header", [f"Bearer {SECRETS['alice']}x", f"Bearer x{SECRETS['alice']}",
                                    f"Basic {SECRETS['alice']}", SECRETS["alice"], "Bearer ",
                                    f"bearer  {SECRETS['alice'][:-1]}"])
def test_a_wrong_or_malformed_key_is_refused(client, header):
    response = client.get("/models", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert "Bearer <key>" in response.json["message"]
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="automl"')
    no_secret_in(response.get_data(as_text=True))


def test_the_bearer_scheme_is_case_insensitive(client):
    response = client.get("/models", headers={"Authorization": f"bearer {SECRETS['alice']}"})
    assert response.status_code == 200


def test_health_is_open_and_says_keys_are_required(client):
    for headers in ({}, {"Authorization": "Bearer not-a-key-at-all-00000"}, bearer("alice")):
        response = client.get("/health", headers=headers)
        assert response.status_code == 200
        assert response.json == {"status": "ok", "auth": "keys"}


def test_unknown_routes_and_methods_keep_their_404_and_405_without_a_key(client):
    assert client.get("/no/such/route").status_code == 404
    assert client.get("/no/such/route").json["error"] == "not_found"
    assert client.delete("/health").status_code == 405
    assert client.put("/models").status_code == 405


# -- the principal --------------------------------------------------------------------------

def principal_of(app, headers: dict, path: str = "/models"):
    """The principal the hook sets for a request to ``path`` (raising what it raises)."""
    with app.test_request_context(path, headers=headers):
        app.preprocess_request()
        return current_principal()


def test_the_request_principal_names_its_key_and_scopes(app):
    ci = principal_of(app, bearer("ci"))
    assert (ci.name, ci.scopes, ci.authenticated) == ("ci", frozenset({"train", "predict"}), True)
    assert ci.can("predict") and ci.can("train") and not ci.can("admin") and not ci.is_admin
    root = principal_of(app, bearer("root"))
    assert root.is_admin and all(root.can(scope) for scope in SCOPES)
    trainer = principal_of(app, bearer("trainer"), "/jobs")
    assert trainer.can("train") and not trainer.can("predict")
    assert (trainer.max_trainings, ci.max_trainings) == (1, 4)  # override, default
    assert (root.rate_limit, ci.rate_limit) == ("off", "600 per minute")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ci.name = "root"
    with pytest.raises(ValueError, match="unknown scope"):
        ci.can("delete")


def test_require_owner_or_admin(app):
    with app.test_request_context("/jobs/19ac3", method="DELETE", headers=bearer("ci")):
        app.preprocess_request()
        assert require_owner_or_admin("ci", "job 19ac3").name == "ci"
        with pytest.raises(Forbidden, match="key 'ci' may not change job 19ac3: it belongs to "
                                            "key 'trainer'") as refused:
            require_owner_or_admin("trainer", "job 19ac3")
        assert refused.value.status == 403 and refused.value.code == "forbidden"
        with pytest.raises(Forbidden, match="predates API keys"):
            require_owner_or_admin(None, "pipeline 3")
        with pytest.raises(Forbidden, match="key 'ci' may not see job 2: it belongs"):
            require_owner_or_admin("trainer", "job 2", action="see")
    with app.test_request_context("/jobs/19ac3", method="DELETE", headers=bearer("root")):
        app.preprocess_request()
        assert require_owner_or_admin("trainer").is_admin
        assert require_owner_or_admin(None).is_admin


def test_a_refusal_from_below_the_routes_has_the_error_shape(app):
    """What the lead's ownership checks raise reaches the client as the JSON error shape."""
    from flask import jsonify

    def change_job():
        require_owner_or_admin("trainer", "job 19ac3")
        return jsonify(done=True)

    app.add_url_rule("/test-owner", "test_owner", change_job, methods=["POST"])
    ENDPOINT_SCOPES["test_owner"] = frozenset({"train"})
    try:
        client = app.test_client()
        refused = client.post("/test-owner", headers=bearer("ci"))
        assert refused.status_code == 403 and refused.json["error"] == "forbidden"
        assert "belongs to key 'trainer'" in refused.json["message"]
        assert client.post("/test-owner", headers=bearer("trainer")).json == {"done": True}
        assert client.post("/test-owner", headers=bearer("root")).json == {"done": True}
    finally:
        del ENDPOINT_SCOPES["test_owner"]


# -- open mode ------------------------------------------------------------------------------

def test_without_keys_the_service_runs_open_and_says_so(tmp_path, clean_env, caplog):
    with caplog.at_level(logging.INFO):
        app = create_app(base_settings(tmp_path))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "automl.auth"]
    assert len(warnings) == 1 and "service is OPEN" in warnings[0].getMessage()
    assert "AUTOML_API_KEYS" in warnings[0].getMessage()
    client = app.test_client()
    assert client.get("/health").json == {"status": "ok", "auth": "open"}
    assert client.get("/models").status_code == 200
    assert client.delete("/jobs/nope").status_code == 404  # reaches the route: no 401/403
    anonymous = principal_of(app, {})
    assert anonymous.name == "anonymous" and anonymous.is_admin
    assert all(anonymous.can(scope) for scope in SCOPES)
    with app.test_request_context("/jobs/x", method="DELETE"):
        app.preprocess_request()
        assert require_owner_or_admin("someone").name == "anonymous"


def test_with_keys_start_up_logs_names_and_source_but_no_secret(tmp_path, clean_env, caplog):
    with caplog.at_level(logging.DEBUG):
        create_app(base_settings(tmp_path, API_KEYS=json.dumps(KEYS)))
    assert "API keys: 4 from AUTOML_API_KEYS (alice, trainer, ci, root)" in caplog.text
    assert "OPEN" not in caplog.text
    no_secret_in(caplog.text)


# -- no secret in any response or log -------------------------------------------------------

def test_no_secret_appears_in_any_response_or_log_line(tmp_path, clean_env, caplog):
    keys = {**KEYS, "capped": {"key": SECRETS["capped"], "scopes": ["predict"],
                               "rate_limit": "2 per minute"}}
    with caplog.at_level(logging.DEBUG):
        app = create_app(base_settings(tmp_path, API_KEYS=json.dumps(keys)))
        client = app.test_client()
        seen = []
        for name in SECRETS:
            secret = SECRETS[name]
            for headers in (bearer(name), {"Authorization": f"Bearer {secret}0"},
                            {"Authorization": f"Basic {secret}"}, {"Authorization": secret},
                            {"Authorization": f"{secret} Bearer"}):
                for method, path, _ in ROUTES + [("get", "/health", None), ("get", "/nope", None)]:
                    response = getattr(client, method)(path, headers=headers)
                    seen.append(response.status_code)
                    no_secret_in(response.get_data(as_text=True))
                    no_secret_in(str(response.headers))
    assert {200, 401, 403, 404, 429} <= set(seen)  # every kind of answer was looked at
    no_secret_in(caplog.text)


# -- where keys come from -------------------------------------------------------------------

def test_keys_from_the_environment_variable(tmp_path, clean_env):
    clean_env.setenv("AUTOML_API_KEYS", json.dumps(KEYS))
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path / "m"), "RUN_JOBS": False})
    client = app.test_client()
    assert client.get("/models", headers=bearer("alice")).status_code == 200
    assert client.get("/models").status_code == 401
    assert app.extensions["auth"].keys.source == "AUTOML_API_KEYS"
    assert app.config["API_KEYS"] is None  # only digests are kept


def test_keys_from_a_file(tmp_path, clean_env, caplog):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(KEYS))
    path.chmod(0o600)
    clean_env.setenv("AUTOML_API_KEYS_FILE", str(path))
    with caplog.at_level(logging.WARNING):
        app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path / "m"), "RUN_JOBS": False})
    assert "can be read by other users" not in caplog.text
    assert app.test_client().get("/models", headers=bearer("ci")).status_code == 200
    assert app.extensions["auth"].keys.source == f"AUTOML_API_KEYS_FILE ({path})"
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_keys(config.from_environment())
    assert "can be read by other users (mode 644)" in caplog.text


def user_provided(name: str, credentials, tags=()) -> dict:
    return {"name": name, "label": "user-provided", "tags": list(tags),
            "credentials": credentials, "syslog_drain_url": "", "volume_mounts": []}


@pytest.mark.parametrize("services", [
    [user_provided("automl-api-keys", {"keys": KEYS})],                  # by name, under keys
    [user_provided("prod-keys", KEYS, tags=["automl-api-keys"])],         # by tag, directly
    [user_provided("automl-api-keys", {"keys": json.dumps(KEYS)})],      # keys as a JSON string
], ids=["name-keys-field", "tag-direct", "keys-as-json-text"])
def test_keys_from_a_bound_cloud_foundry_service(tmp_path, clean_env, services):
    vcap = {"user-provided": services,
            "p.redis": [{"name": "automl-redis", "label": "p.redis", "tags": ["redis"],
                         "credentials": {"host": "10.0.0.5", "port": 6379, "password": "p"}}]}
    clean_env.setenv("VCAP_SERVICES", json.dumps(vcap))
    keys = load_keys(config.from_environment())
    assert keys.names == list(KEYS)
    assert keys.source == f"the bound service '{services[0]['name']}'"
    assert keys.authenticate(SECRETS["root"]).is_admin
    assert keys.authenticate(SECRETS["root"] + "x") is None


def test_a_key_named_keys_in_a_bound_service_is_read_as_a_key(clean_env):
    only = {"keys": {"key": SECRETS["ci"], "scopes": ["predict"]}}
    clean_env.setenv("VCAP_SERVICES", json.dumps({"user-provided": [
        user_provided("automl-api-keys", only)]}))
    assert load_keys(config.from_environment()).names == ["keys"]


def test_other_bound_services_are_not_keys(clean_env):
    clean_env.setenv("VCAP_SERVICES", json.dumps({"user-provided": [
        user_provided("logging", {"url": "x"})]}))
    assert load_keys(config.from_environment()) is None


# -- malformed configuration refused at start -----------------------------------------------

def entry(**fields) -> dict:
    return {"key": SECRETS["alice"], "scopes": ["predict"], **fields}


MALFORMED = {
    "bad-json": ('{"alice": {"key": "' + SECRETS["alice"] + '", "scopes": ["predict"]',
                 "not valid JSON"),
    "not-an-object": (json.dumps([entry()]), "expected a JSON object"),
    "empty": ("{}", "holds no keys"),
    "entry-not-an-object": (json.dumps({"alice": SECRETS["alice"]}), "key 'alice' must be an object"),
    "missing-key": (json.dumps({"alice": {"scopes": ["predict"]}}), "key 'alice' has no 'key' field"),
    "key-not-a-string": (json.dumps({"alice": entry(key=12345678901234567890)}), "'key' must be a string"),
    "short-key": (json.dumps({"alice": entry(key="short-secret")}), "at least 16"),
    "key-with-spaces": (json.dumps({"alice": entry(key="a secret with spaces")}), "bearer token"),
    "unknown-scope": (json.dumps({"alice": entry(scopes=["predict", "trian"])}),
                      "key 'alice': unknown scope 'trian'; scopes are predict, train, admin"),
    "no-scopes": (json.dumps({"alice": entry(scopes=[])}), "'scopes' must be a non-empty list"),
    "scopes-a-string": (json.dumps({"alice": entry(scopes="predict")}), "non-empty list"),
    "unknown-field": (json.dumps({"alice": entry(scope=["admin"])}), "unknown field(s) 'scope'"),
    "bad-name": (json.dumps({SECRETS["alice"] + " x": entry()}), "key name number 1 is not a name"),
    "reserved-name": (json.dumps({"anonymous": entry()}), "'anonymous' is reserved"),
    "same-secret": (json.dumps({"alice": entry(), "bob": entry()}), "'alice' and 'bob' have the same secret"),
    "bad-rate-limit": (json.dumps({"alice": entry(rate_limit="lots")}), "key 'alice': 'rate_limit'"),
    "rate-limit-a-list": (json.dumps({"alice": entry(rate_limit=["60/minute"])}),
                          "key 'alice': 'rate_limit': a rate limit is a string"),
    "bad-max-trainings": (json.dumps({"alice": entry(max_trainings=0)}), "'max_trainings' must be"),
}


@pytest.mark.parametrize("text, message", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_keys_refuse_to_start_naming_the_problem_but_no_secret(tmp_path, clean_env,
                                                                         text, message, caplog):
    clean_env.setenv("AUTOML_API_KEYS", text)
    with pytest.raises(ConfigurationError) as refused:
        create_app(base_settings(tmp_path))
    assert isinstance(refused.value, AuthConfigurationError)
    assert message in str(refused.value)
    assert str(refused.value).startswith("AUTOML_API_KEYS")  # names where the problem is
    no_secret_in(str(refused.value))
    no_secret_in(caplog.text)


@pytest.mark.parametrize("settings, message", [
    ({"RATE_LIMIT": "many per minute"}, "AUTOML_RATE_LIMIT: 'many per minute' is not a rate limit"),
    ({"MAX_TRAININGS_PER_KEY": 0}, "AUTOML_MAX_TRAININGS_PER_KEY must be a whole number"),
    ({"API_KEYS_FILE": "/nonexistent/keys.json"}, "which cannot be read (No such file"),
    ({"RATE_LIMIT_STORAGE": "nosuch://x"}, "the rate-limit storage cannot be opened"),
])
def test_other_malformed_settings_refuse_to_start(tmp_path, clean_env, settings, message):
    with pytest.raises(AuthConfigurationError) as refused:
        create_app(base_settings(tmp_path, **settings))
    assert message in str(refused.value)


def test_keys_in_two_places_refuse_to_start(tmp_path, clean_env):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(KEYS))
    clean_env.setenv("AUTOML_API_KEYS", json.dumps(KEYS))
    clean_env.setenv("AUTOML_API_KEYS_FILE", str(path))
    with pytest.raises(AuthConfigurationError, match="configured in AUTOML_API_KEYS and in "
                                                     "AUTOML_API_KEYS_FILE"):
        create_app(base_settings(tmp_path))
    clean_env.delenv("AUTOML_API_KEYS_FILE")
    clean_env.setenv("VCAP_SERVICES", json.dumps({"user-provided": [
        user_provided("automl-api-keys", {"keys": KEYS})]}))
    with pytest.raises(AuthConfigurationError, match="and in the bound service 'automl-api-keys'"):
        create_app(base_settings(tmp_path))
    clean_env.delenv("AUTOML_API_KEYS")
    clean_env.setenv("VCAP_SERVICES", json.dumps({"user-provided": [
        user_provided("automl-api-keys", {"keys": KEYS}),
        user_provided("more", {"keys": KEYS}, tags=["automl-api-keys"])]}))
    with pytest.raises(AuthConfigurationError, match="Several bound services"):
        create_app(base_settings(tmp_path))


# -- rate limits ----------------------------------------------------------------------------

def test_each_key_has_its_own_limit_and_the_429_says_when_to_retry(tmp_path, clean_env):
    keys = {"alice": KEYS["alice"], "ci": {**KEYS["ci"], "rate_limit": "5 per minute"},
            "root": KEYS["root"]}
    app = create_app(base_settings(tmp_path, API_KEYS=json.dumps(keys), RATE_LIMIT="3 per minute"))
    client = app.test_client()
    assert [client.get("/models", headers=bearer("alice")).status_code for _ in range(3)] == [200] * 3
    over = client.get("/models", headers=bearer("alice"))
    assert over.status_code == 429
    assert set(over.json) == {"error", "message"} and over.json["error"] == "too_many_requests"
    assert "key 'alice' is limited to 3 per 1 minute" in over.json["message"]
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert client.get("/jobs", headers=bearer("alice")).status_code == 429  # every route counts
    assert client.get("/health").status_code == 200                        # but /health
    assert [client.get("/models", headers=bearer("ci")).status_code
            for _ in range(6)] == [200] * 5 + [429]                         # its own, larger
    assert all(client.get("/models", headers=bearer("root")).status_code == 200
               for _ in range(20))                                          # "off"


def test_anonymous_requests_are_limited_per_client_address(tmp_path, clean_env):
    app = create_app(base_settings(tmp_path, RATE_LIMIT="2 per minute"))
    client = app.test_client()

    def get(address):
        return client.get("/models", environ_base={"REMOTE_ADDR": address}).status_code
    assert [get("10.1.1.1") for _ in range(3)] == [200, 200, 429]
    assert [get("10.2.2.2") for _ in range(2)] == [200, 200]
    assert all(client.get("/health", environ_base={"REMOTE_ADDR": "10.1.1.1"}).status_code == 200
               for _ in range(5))


def test_guessing_keys_is_limited_per_client_address(tmp_path, clean_env):
    app = create_app(base_settings(tmp_path, API_KEYS=json.dumps(KEYS), RATE_LIMIT="3 per minute"))
    client = app.test_client()

    def guess(address, key="not-a-key"):
        return client.get("/models", headers={"Authorization": f"Bearer {key}"},
                          environ_base={"REMOTE_ADDR": address})
    assert [guess("10.1.1.1").status_code for _ in range(4)] == [401, 401, 401, 429]
    assert "Retry-After" in guess("10.1.1.1").headers
    assert guess("10.2.2.2").status_code == 401          # another address has its own count
    assert client.get("/models", headers=bearer("alice"),  # a valid key keeps its own limit
                      environ_base={"REMOTE_ADDR": "10.1.1.1"}).status_code == 200


def test_the_counters_live_in_redis_with_a_redis_store_else_beside_the_models(tmp_path):
    assert default_storage_uri({"REDIS_URL": "redis://h:1/0", "MODEL_DIR": "x"}) == "redis://h:1/0"
    assert default_storage_uri({"MODEL_DIR": str(tmp_path)}) == \
        f"sqlite://{tmp_path}/ratelimit/counters.sqlite3"
    assert default_storage_uri({"RATE_LIMIT_STORAGE": "memory://", "MODEL_DIR": "x"}) == "memory://"


def test_settings_and_their_defaults(clean_env):
    settings = config.from_environment()
    assert (settings["RATE_LIMIT"], settings["MAX_TRAININGS_PER_KEY"]) == ("600 per minute", 4)
    assert settings["API_KEYS"] is settings["API_KEYS_FILE"] is settings["RATE_LIMIT_STORAGE"] is None
    assert settings["API_KEYS_SERVICES"] == []
    clean_env.setenv("AUTOML_RATE_LIMIT", "60/minute")
    clean_env.setenv("AUTOML_MAX_TRAININGS_PER_KEY", "2")
    settings = config.from_environment()
    assert (settings["RATE_LIMIT"], settings["MAX_TRAININGS_PER_KEY"]) == ("60/minute", 2)


def test_rate_limit_strings():
    assert [str(i) for i in parse_rate_limit("10/second; 600 per hour")] == \
        ["10 per 1 second", "600 per 1 hour"]
    assert parse_rate_limit("OFF") == ()
    for bad in ("", "600", "600 per fortnight", "0 per minute"):
        with pytest.raises(ValueError):
            parse_rate_limit(bad)


def _hit_many(uri: str, n: int, results) -> None:
    limiter = RateLimiter(uri)
    results.put(sum(limiter.hit("key:ci", "50 per minute") is None for _ in range(n)))


def test_the_sqlite_counters_hold_across_processes(tmp_path):
    """What the workers of one machine share with the directory store: 3 processes, 40
    requests each, one limit of 50."""
    uri = f"sqlite://{tmp_path}/ratelimit/counters.sqlite3"
    RateLimiter(uri).hit("key:other", "1 per minute")  # the parent has a connection: forks reopen
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=_hit_many, args=(uri, 40, results)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    assert sum(results.get(timeout=5) for _ in processes) == 50


def test_the_sqlite_counters_hold_across_threads_and_windows_expire(tmp_path):
    limiter = RateLimiter(f"sqlite://{tmp_path}/c.sqlite3")
    with ThreadPoolExecutor(8) as pool:
        allowed = list(pool.map(lambda _: limiter.hit("t", "30 per minute") is None, range(100)))
    assert sum(allowed) == 30
    refused = [limiter.hit("s", "2 per second") for _ in range(3)]
    assert refused[:2] == [None, None] and refused[2][1] == 1  # Retry-After: 1 s
    time.sleep(1.1)
    assert limiter.hit("s", "2 per second") is None  # a new window


def test_the_sqlite_storage_does_what_limits_expects(tmp_path):
    storage = SQLiteStorage(f"sqlite://{tmp_path}/c.sqlite3")
    assert storage.check() and storage.get("k") == 0
    assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.get("k") == 3 and 59 < storage.get_expiry("k") - time.time() <= 60
    storage.clear("k")
    assert storage.get("k") == 0
    storage.incr("a", 60), storage.incr("b", 60)
    assert storage.reset() == 2
    with pytest.raises(ValueError, match="absolute path"):
        SQLiteStorage("sqlite://relative/c.sqlite3")


def test_an_unreachable_redis_lets_requests_through_and_says_so(caplog):
    limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}/0")
    with caplog.at_level(logging.WARNING):
        assert all(limiter.hit("key:ci", "1 per minute") is None for _ in range(3))
    assert caplog.text.count("rate limits not enforced") == 1  # once a minute, not per request


# -- real processes: two gunicorn instances sharing one Redis --------------------------------

CLUSTER_KEYS = {"ci": {"key": SECRETS["ci"], "scopes": ["train", "predict"]},
                "alice": {"key": SECRETS["alice"], "scopes": ["predict"]}}


@pytest.mark.e2e
def test_two_instances_on_one_redis_share_keys_and_one_rate_limit(tmp_path, redis):
    redis.flush()
    env = {"REDIS_URL": redis.url, "AUTOML_SECRET_KEY": "auth-e2e-secret",
           "AUTOML_API_KEYS": json.dumps(CLUSTER_KEYS), "AUTOML_RATE_LIMIT": "5 per minute",
           "AUTOML_RUN_JOBS": "false", "WEB_CONCURRENCY": "1"}
    servers = [GunicornServer(tmp_path / f"gunicorn-{name}.log",
                              env={**env, "AUTOML_MODEL_DIR": str(tmp_path / f"models-{name}")})
               for name in "AB"]
    try:
        with ThreadPoolExecutor(2) as pool:  # boot both at once
            list(pool.map(lambda server: server.start(), servers))
        a, b = servers

        def get(server, key=None, path="/models"):
            headers = {"Authorization": f"Bearer {SECRETS[key]}"} if key else {}
            return requests.get(f"{server.url}{path}", headers=headers, timeout=10)

        for server in servers:
            assert get(server, path="/health").json() == {"status": "ok", "auth": "keys"}
            refused = get(server)
            assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
            assert refused.headers["WWW-Authenticate"] == 'Bearer realm="automl"'
            wrong = requests.get(f"{server.url}/models", timeout=10,
                                 headers={"Authorization": f"Bearer {SECRETS['root']}"})
            assert wrong.status_code == 401
            forbidden = requests.post(f"{server.url}/train_model", timeout=10,
                                      headers={"Authorization": f"Bearer {SECRETS['alice']}"})
            assert forbidden.status_code == 403  # alice's 1st and 2nd of 5
        # ci: 5 requests, alternating, are allowed; the 6th and 7th, on either, are not.
        answers = [get(server, "ci") for server in (a, b, a, b, a, b, a)]
        assert [r.status_code for r in answers] == [200] * 5 + [429] * 2
        for over in answers[5:]:
            assert over.json()["error"] == "too_many_requests"
            assert "key 'ci' is limited to 5 per 1 minute" in over.json()["message"]
            assert 1 <= int(over.headers["Retry-After"]) <= 60
        # alice's own count (2 so far): unaffected by ci's, and shared by both instances too.
        assert [get(server, "alice").status_code for server in (b, a, b, a)] == [200] * 3 + [429]
        assert get(a, path="/health").status_code == 200  # exempt
        for server in servers:
            log = server.log.read_text()
            assert "API keys: 2 from AUTOML_API_KEYS (ci, alice)" in log
            no_secret_in(log)
    finally:
        for server in servers:
            server.stop()


@pytest.mark.e2e
def test_gunicorn_refuses_to_start_with_malformed_keys_and_prints_no_secret(tmp_path):
    bad = {"alice": {"key": SECRETS["alice"], "scopes": ["predict", "superuser"]}}
    server = GunicornServer(tmp_path / "gunicorn.log", env={
        "AUTOML_MODEL_DIR": str(tmp_path / "models"), "AUTOML_API_KEYS": json.dumps(bad),
        "WEB_CONCURRENCY": "1"})
    with pytest.raises(AssertionError, match="gunicorn exited"):
        server.start(timeout_s=60)
    server.stop()
    log = server.log.read_text()
    assert "AUTOML_API_KEYS: key 'alice': unknown scope 'superuser'" in log
    no_secret_in(log)


@pytest.mark.e2e
def test_open_gunicorn_warns_and_limits_by_address_across_its_workers(tmp_path):
    """The directory store with two workers: the SQLite counters are the workers' one count.
    gunicorn's access log names the worker (pid) that answered each request."""
    with GunicornServer(tmp_path / "gunicorn.log", env={
            "AUTOML_MODEL_DIR": str(tmp_path / "models"), "AUTOML_RATE_LIMIT": "5 per minute",
            "AUTOML_RUN_JOBS": "false", "WEB_CONCURRENCY": "2",
            "GUNICORN_CMD_ARGS": "--access-logformat='%(p)s %(r)s %(s)s'"}) as server:
        deadline = time.monotonic() + 60
        while server.log.read_text().count("NO API KEYS CONFIGURED: the service is OPEN") < 2:
            assert time.monotonic() < deadline, server.log_tail()  # the warning: once per worker
            time.sleep(0.2)
        assert requests.get(f"{server.url}/health", timeout=10).json() == \
            {"status": "ok", "auth": "open"}

        def get(_):
            return requests.get(f"{server.url}/models", timeout=10).status_code
        codes, workers = [], set()
        with ThreadPoolExecutor(6) as pool:
            while len(workers) < 2 and len(codes) < 60:  # until both workers have answered
                codes += pool.map(get, range(12))
                time.sleep(0.2)  # the access log is written after the response
                workers = set(re.findall(r"^<(\d+)> GET /models ", server.log.read_text(),
                                         re.MULTILINE))
    assert len(workers) == 2, "one worker answered everything: nothing shared was shown"
    assert codes.count(200) == 5 and codes.count(429) == len(codes) - 5


def test_many_processes_creating_the_sqlite_counters_at_once_all_start(tmp_path):
    """gunicorn's workers open the same new SQLite file together; switching it to WAL
    answered "database is locked" at once to one of them, which exited and took the
    server down with it."""
    context = multiprocessing.get_context("fork")
    for attempt in range(5):  # a fresh file each time: the race is in creating it
        uri = f"sqlite://{tmp_path}/{attempt}/counters.sqlite3"
        start = time.time() + 0.5  # every process opens it at this instant
        with context.Pool(8) as pool:
            results = pool.starmap(_open_sqlite_storage, [(uri, start)] * 8)
        assert results == ["ok"] * 8


def _open_sqlite_storage(uri: str, start: float) -> str:
    from automl.ratelimit import SQLiteStorage

    time.sleep(max(0.0, start - time.time()))
    try:
        SQLiteStorage(uri).incr("k", 60)
        return "ok"
    except Exception as err:  # reported, not raised: the assertion shows which
        return f"{type(err).__name__}: {err}"
