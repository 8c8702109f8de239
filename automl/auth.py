"""API keys with scopes, and a request rate limit per key.

Keys are configured as JSON, ``{"<name>": {"key": "<secret>", "scopes": [...]}}`` with the
optional fields ``rate_limit`` (e.g. ``"60 per minute"``, or ``"off"``) and ``max_trainings``,
from exactly one of: ``AUTOML_API_KEYS``, the file named by ``AUTOML_API_KEYS_FILE``, or a
Cloud Foundry service bound to the app whose name or a tag is ``automl-api-keys`` (its
credentials hold the object under ``keys``, or are it). With none, the service runs open: every
request acts as ``anonymous`` with every scope, and the start-up log and ``/health`` say so.

Clients send ``Authorization: Bearer <secret>``. Only the SHA-256 digest of each secret is kept;
a request's digest is compared with every key's (``hmac.compare_digest``, no early exit). No
message or log line ever contains a secret.

Scopes: ``predict`` (predictions, listings, reports), ``train`` (trainings, following and
cancelling its own jobs, replacing pipelines it owns), ``admin`` (everything, any key's jobs and
pipelines). ``admin`` implies the others; ``train`` does not imply ``predict``.

Routes need no decorators: ``ENDPOINT_SCOPES`` maps every Flask endpoint to the scopes that
may call it, and the ``before_request`` hook that ``init_app`` registers enforces it. An
endpoint missing from the table is refused (deny by default; a test checks the table covers
the url_map). The hook puts the request's ``Principal`` in ``flask.g.principal``; code below
the routes reads it there (``current_principal()``) to record owners and to call
``require_owner_or_admin``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app, g, request

from .config import ConfigurationError
from .errors import Forbidden, TooManyRequests, Unauthorized
from .ratelimit import OFF, RateLimiter, default_storage_uri, parse_rate_limit

log = logging.getLogger(__name__)

PREDICT, TRAIN, ADMIN = "predict", "train", "admin"
SCOPES = (PREDICT, TRAIN, ADMIN)
ANONYMOUS = "anonymous"
MIN_KEY_LENGTH = 16
KEY_FIELDS = ("key", "scopes", "rate_limit", "max_trainings")
# Names are recorded on jobs and pipelines and shown in messages: plain, short, no spaces.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
# A bearer token's characters (RFC 6750 b64token), so every key can be sent as a header.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

PUBLIC: frozenset[str] = frozenset()  # no key needed
ANY_READER = frozenset({PREDICT, TRAIN})  # train keys follow their own jobs (ownership: jobs)

# Every endpoint of the app and the scopes that may call it: any one of them suffices, and
# admin has them all. A train key reaches the job routes for its own jobs; which jobs it may
# see or cancel is the job store's check (require_owner_or_admin), not this table's.
ENDPOINT_SCOPES: dict[str, frozenset[str]] = {
    "api.health": PUBLIC,
    "api.openapi": PUBLIC,          # reserved: the API's description holds no data
    "static": PUBLIC,               # Flask's own: the dashboard's and the docs' assets
    # The dashboard and the API docs (automl.dashboard): browsers send no bearer header, so
    # these need none here; the dashboard checks its signed-in key's scopes itself
    # (dashboard.PAGE_SCOPES, deny by default) and a CSRF token on every form.
    "ui.docs": PUBLIC,
    "ui.signin": PUBLIC,
    "ui.signout": PUBLIC,
    "ui.leaderboard": PUBLIC,       # predict
    "ui.pipeline": PUBLIC,          # predict
    "ui.predict": PUBLIC,           # predict
    "ui.jobs": PUBLIC,              # predict, or train for its own jobs
    "ui.job": PUBLIC,               # predict, or train for its own jobs
    "ui.train": PUBLIC,             # train
    "ui.cancel_job": PUBLIC,        # train, its own jobs (admin: any)
    "api.serve_prediction": frozenset({PREDICT}),
    "api.list_models": frozenset({PREDICT}),
    "api.show_model": frozenset({PREDICT}),
    "api.list_versions": frozenset({PREDICT}),
    "api.list_jobs": ANY_READER,
    "api.show_job": ANY_READER,
    "api.train_model": frozenset({TRAIN}),
    "api.cancel_job": frozenset({TRAIN}),
    # A train key may roll back and delete the pipelines it owns (the route checks the
    # owner: require_owner_or_admin); admin any.
    "api.rollback": frozenset({TRAIN}),
    "api.delete_model": frozenset({TRAIN}),
    "api.delete_version": frozenset({TRAIN}),
    "api.audit": frozenset({ADMIN}),
    # Exports: the card is the report in Markdown (predict, as GET /models/<id>); the archive
    # hands over the model, which can hold training data (k-neighbours, support vectors), so
    # only its owner's key (train) or an admin may download it (the route checks the owner).
    "api.model_card": frozenset({PREDICT}),
    "api.export_model": frozenset({TRAIN}),
    "api.export_key": PUBLIC,       # a public key: it verifies archives, it cannot sign them
}
# Not counted against any rate limit: load balancers and health checks poll it.
RATE_LIMIT_EXEMPT = frozenset({"api.health"})


# -- who is asking --------------------------------------------------------------------------

@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a configured key, or ``anonymous`` (open mode, public routes)."""

    name: str
    scopes: frozenset[str]
    rate_limit: str = "600 per minute"  # requests it may make (``limits`` notation, or "off")
    max_trainings: int = 4              # trainings it may have queued or running at once
    authenticated: bool = True          # False: no key was checked (open mode, public route)

    def can(self, scope: str) -> bool:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; scopes: {', '.join(SCOPES)}")
        return scope in self.scopes or ADMIN in self.scopes

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes


def current_principal() -> Principal:
    """The principal of the request being handled (set by the ``before_request`` hook)."""
    principal = g.get("principal")
    if principal is None:
        raise RuntimeError("no principal: outside a request, or before automl.auth's hook ran")
    return principal


def require_owner_or_admin(owner_name: str | None, what: str = "this",
                           action: str = "change") -> Principal:
    """Refuse (403) unless the request's key is ``owner_name`` or has ``admin``; the principal.

    ``what`` names the thing in the message, e.g. ``"job 19ac3"`` or ``"pipeline 7"``;
    ``action`` what was refused (``"see"`` for a train-only key reading another key's job).
    A thing with no recorded owner (made before keys were configured) is admin-only.
    """
    principal = current_principal()
    if principal.is_admin or (owner_name is not None and principal.name == owner_name):
        return principal
    owner = f"key '{owner_name}'" if owner_name is not None else "no key (it predates API keys)"
    raise Forbidden(f"key '{principal.name}' may not {action} {what}: it belongs to {owner}. "
                    "Only its owner or a key with the 'admin' scope may.")


class AuthConfigurationError(ConfigurationError):
    """Malformed API-key settings: the service refuses to start (never showing a secret)."""


# -- the configured keys --------------------------------------------------------------------

@dataclass(frozen=True)
class _Key:
    digest: bytes
    principal: Principal


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class Keys:
    """The configured keys, as digests; ``authenticate`` finds the principal of a secret."""

    def __init__(self, keys: list[_Key], source: str):
        self._keys = tuple(keys)
        self.source = source

    @property
    def names(self) -> list[str]:
        return [k.principal.name for k in self._keys]

    def entries(self) -> tuple:
        """The configured keys as (digest, principal) records; never the secrets."""
        return self._keys

    def authenticate(self, secret: str) -> Principal | None:
        digest = _digest(secret)
        found = None
        for key in self._keys:  # every key, whatever matched before: no early exit
            if hmac.compare_digest(key.digest, digest):
                found = key.principal
        return found


def load_keys(settings) -> Keys | None:
    """The keys of ``settings`` (``API_KEYS``, ``API_KEYS_FILE``, ``API_KEYS_SERVICES``), or
    None when none is configured. Raises ``AuthConfigurationError`` naming what is wrong."""
    sources = []
    if settings.get("API_KEYS") is not None:
        sources.append(("AUTOML_API_KEYS", lambda: _json(settings["API_KEYS"], "AUTOML_API_KEYS")))
    if settings.get("API_KEYS_FILE"):
        path = settings["API_KEYS_FILE"]
        sources.append((f"AUTOML_API_KEYS_FILE ({path})", lambda: _read_keys_file(path)))
    services = settings.get("API_KEYS_SERVICES") or []
    if len(services) > 1:
        raise AuthConfigurationError(
            "Several bound services are named or tagged automl-api-keys ("
            + ", ".join(repr(s["name"]) for s in services) + "); bind only one.")
    if services:
        service = services[0]
        sources.append((f"the bound service '{service['name']}'",
                        lambda: _service_keys(service)))
    if not sources:
        return None
    if len(sources) > 1:
        raise AuthConfigurationError(
            "API keys are configured in " + " and in ".join(name for name, _ in sources)
            + "; keep exactly one of AUTOML_API_KEYS, AUTOML_API_KEYS_FILE and a bound "
            "automl-api-keys service, so it is clear which keys are in force.")
    source, read = sources[0]
    return Keys(parse_keys(read(), source, settings), source)


def parse_keys(config, source: str, settings) -> list[_Key]:
    """Check the keys object and turn each secret into its digest. Every message names the
    source and the key name, and never includes a secret."""
    default_limit = settings.get("RATE_LIMIT") or "600 per minute"
    default_trainings = settings.get("MAX_TRAININGS_PER_KEY", 4)
    if not isinstance(config, dict):
        raise AuthConfigurationError(
            f'{source}: expected a JSON object {{"<key name>": {{"key": "<secret>", "scopes": '
            f'["predict", ...]}}}}, found a JSON {_json_type(config)}.')
    if not config:
        raise AuthConfigurationError(
            f"{source} holds no keys. Add one, or unset it to run the service open (anyone "
            "can train, predict and delete).")
    keys, names_of = [], {}
    for position, (name, entry) in enumerate(config.items(), start=1):
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            # The name itself is not shown: it might be a secret put in the wrong place.
            raise AuthConfigurationError(
                f"{source}: key name number {position} is not a name (1-64 letters, digits and "
                "'_.@-', starting with a letter or digit); the object maps names to "
                '{"key": "<secret>", "scopes": [...]}.')
        where = f"{source}: key '{name}'"
        if name == ANONYMOUS:
            raise AuthConfigurationError(f"{where}: the name '{ANONYMOUS}' is reserved for "
                                         "requests without a key; choose another.")
        if not isinstance(entry, dict):
            raise AuthConfigurationError(
                f'{where} must be an object {{"key": "<secret>", "scopes": [...]}}, not a '
                f"JSON {_json_type(entry)}.")
        unknown = sorted(set(entry) - set(KEY_FIELDS))
        if unknown:
            raise AuthConfigurationError(
                f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; its fields are "
                f"{', '.join(KEY_FIELDS)}.")
        secret = entry.get("key")
        if secret is None:
            raise AuthConfigurationError(f"{where} has no 'key' field (its secret).")
        if not isinstance(secret, str):
            raise AuthConfigurationError(f"{where}: 'key' must be a string.")
        if len(secret) < MIN_KEY_LENGTH:
            raise AuthConfigurationError(
                f"{where}: its key is {len(secret)} characters long; keys must have at least "
                f"{MIN_KEY_LENGTH} (e.g. `openssl rand -hex 32`).")
        if not TOKEN_PATTERN.fullmatch(secret):
            raise AuthConfigurationError(
                f"{where}: its key has characters a bearer token cannot carry; use letters, "
                "digits and -._~+/ (e.g. `openssl rand -hex 32`).")
        scopes = entry.get("scopes")
        if not isinstance(scopes, list) or not scopes or \
                not all(isinstance(s, str) for s in scopes):
            raise AuthConfigurationError(
                f"{where}: 'scopes' must be a non-empty list of scope names "
                f"({', '.join(SCOPES)}).")
        for scope in scopes:
            if scope not in SCOPES:
                raise AuthConfigurationError(
                    f"{where}: unknown scope '{scope}'; scopes are {', '.join(SCOPES)}.")
        rate_limit = entry.get("rate_limit", default_limit)
        try:
            parse_rate_limit(rate_limit)
        except ValueError as err:
            raise AuthConfigurationError(f"{where}: 'rate_limit': {err}.") from None
        max_trainings = entry.get("max_trainings", default_trainings)
        if isinstance(max_trainings, bool) or not isinstance(max_trainings, int) \
                or max_trainings < 1:
            raise AuthConfigurationError(
                f"{where}: 'max_trainings' must be a whole number of at least 1.")
        digest = _digest(secret)
        for other, other_digest in names_of.items():
            if hmac.compare_digest(other_digest, digest):
                raise AuthConfigurationError(
                    f"{source}: keys '{other}' and '{name}' have the same secret; give each "
                    "its own, so each request is known to come from one key.")
        names_of[name] = digest
        keys.append(_Key(digest, Principal(name, frozenset(scopes), rate_limit, max_trainings)))
    return keys


def _json(text, source: str):
    if not isinstance(text, str):  # tests and embedders may pass the object itself
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        # err.msg and the position only: the text around the error could be a secret.
        raise AuthConfigurationError(
            f"{source} is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}); "
            'it should be {"<key name>": {"key": "<secret>", "scopes": ["predict", ...]}}.'
        ) from None


def _read_keys_file(path: str):
    try:
        text = Path(path).read_text(encoding="utf-8")
        mode = os.stat(path).st_mode
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        raise AuthConfigurationError(
            f"AUTOML_API_KEYS_FILE names {path}, which cannot be read ({reason}).") from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("AUTOML_API_KEYS_FILE %s can be read by other users (mode %o); "
                    "`chmod 600` it", path, stat.S_IMODE(mode))
    return _json(text, f"AUTOML_API_KEYS_FILE ({path})")


def _service_keys(service: dict):
    """The keys object in a bound service's credentials: under ``keys``, or the credentials."""
    source = f"the bound service '{service['name']}'"
    credentials = _json(service.get("credentials"), f"{source}'s credentials")
    if isinstance(credentials, dict) and set(credentials) == {"keys"}:
        inner = _json(credentials["keys"], f"{source}'s credentials' 'keys' field")
        # {"keys": {...}} as the README shows -- unless "keys" is itself the name of a key.
        if not (isinstance(inner, dict) and "key" in inner):
            return inner
    return credentials


def _json_type(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean",
            type(None): "null"}.get(type(value), "number")


# -- the app's side ---------------------------------------------------------------------------

class Auth:
    """What ``init_app`` reads from the settings; kept in ``app.extensions["auth"]``."""

    def __init__(self, keys: Keys | None, rate_limit: str, max_trainings: int,
                 limiter: RateLimiter):
        self.keys = keys
        self.limiter = limiter
        self.rate_limit = rate_limit
        # Open mode's principal: every scope. With keys: who a public route's caller is.
        self.open_principal = Principal(ANONYMOUS, frozenset(SCOPES), rate_limit, max_trainings,
                                        authenticated=False)
        self.nobody = Principal(ANONYMOUS, frozenset(), rate_limit, max_trainings,
                                authenticated=False)

    @property
    def mode(self) -> str:
        return "keys" if self.keys else "open"


def init_app(app: Flask) -> Auth:
    """Read the key and limit settings (refusing malformed ones), register the hooks."""
    settings = app.config
    try:
        rate_limit = settings.get("RATE_LIMIT") or "600 per minute"
        parse_rate_limit(rate_limit)
    except ValueError as err:
        raise AuthConfigurationError(f"AUTOML_RATE_LIMIT: {err}.") from None
    max_trainings = settings.get("MAX_TRAININGS_PER_KEY", 4)
    if isinstance(max_trainings, bool) or not isinstance(max_trainings, int) or max_trainings < 1:
        raise AuthConfigurationError("AUTOML_MAX_TRAININGS_PER_KEY must be a whole number of "
                                     "at least 1.")
    keys = load_keys(settings)
    # Only digests stay in memory: drop the secrets from the app's settings.
    settings["API_KEYS"] = None
    settings["API_KEYS_SERVICES"] = [{"name": s["name"], "credentials": None}
                                     for s in settings.get("API_KEYS_SERVICES") or []]
    storage_uri = default_storage_uri(settings)
    try:
        limiter = RateLimiter(storage_uri)
    except Exception as err:  # a bad URI or an unwritable SQLite directory
        raise AuthConfigurationError(
            f"the rate-limit storage cannot be opened ({type(err).__name__}: {err}); check "
            "AUTOML_RATE_LIMIT_STORAGE, REDIS_URL or that AUTOML_MODEL_DIR is writable."
        ) from None
    auth = Auth(keys, rate_limit, max_trainings, limiter)
    app.extensions["auth"] = auth
    app.before_request(_authorize)
    limited = rate_limit.lower() != OFF
    if keys:
        log.info("API keys: %d from %s (%s); %s", len(keys.names), keys.source,
                 ", ".join(keys.names), f"rate limit {rate_limit} per key unless the key sets "
                 f"its own, counted in {limiter.description}" if limited else "no rate limit")
    else:
        log.warning("NO API KEYS CONFIGURED: the service is OPEN -- anyone who can reach it can "
                    "train, predict, cancel and replace pipelines. Set AUTOML_API_KEYS (see the "
                    "README, 'API keys and limits') to require keys. %s", f"Rate limit {rate_limit} "
                    f"per client address, counted in {limiter.description}." if limited else
                    "No rate limit.")
    return auth


def _authorize():
    """``before_request``: who is asking, whether they may, and whether they are over their
    limit. Runs before the view; a route that does not exist still gets its 404/405."""
    auth: Auth = current_app.extensions["auth"]
    g.principal = auth.nobody
    if request.routing_exception is not None:  # no such route or method: let Flask say so
        return None
    endpoint = request.endpoint
    if endpoint not in ENDPOINT_SCOPES:
        log.error("endpoint %r has no entry in automl.auth.ENDPOINT_SCOPES: refused", endpoint)
        raise Forbidden(f"{request.method} {request.url_rule.rule} has no access rule yet, so "
                        "it is refused for every key (the operator's log names it).")
    needed = ENDPOINT_SCOPES[endpoint]
    if needed == PUBLIC:
        principal = auth.open_principal if auth.keys is None else auth.nobody
    elif auth.keys is None:
        principal = auth.open_principal
    else:
        try:
            principal = _authenticate(auth.keys)
        except Unauthorized:
            # Refusals count against the client's address too, or guessing keys is unlimited.
            if endpoint not in RATE_LIMIT_EXEMPT:
                _count_request(auth, auth.nobody)
            raise
    g.principal = principal
    if endpoint not in RATE_LIMIT_EXEMPT:
        _count_request(auth, principal)
    if needed != PUBLIC and not any(principal.can(scope) for scope in needed):
        wanted = " or ".join(f"'{scope}'" for scope in sorted(needed))
        log.info("403: key '%s' lacks %s for %s %s", principal.name, wanted, request.method,
                 request.url_rule.rule)
        raise Forbidden(
            f"key '{principal.name}' lacks the {wanted} scope needed for {request.method} "
            f"{request.url_rule.rule} (its scopes: {', '.join(sorted(principal.scopes))}). "
            f"Ask the operator for a key with {wanted} (or 'admin').", needed)
    return None


def _authenticate(keys: Keys) -> Principal:
    header = request.headers.get("Authorization")
    hint = "send Authorization: Bearer <key> with a key the operator configured"
    if not header:
        raise Unauthorized(f"This route needs an API key: {hint}.")
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        # Neither the scheme nor the rest is shown: either could be the secret itself.
        raise Unauthorized(f"The Authorization header is not of the form 'Bearer <key>': {hint}.")
    principal = keys.authenticate(secret.strip())
    if principal is None:
        log.warning("401: an invalid API key for %s %s from %s", request.method,
                    request.url_rule.rule, request.remote_addr)
        raise Unauthorized(f"The API key is not valid: {hint}.", error="invalid_token")
    return principal


def _count_request(auth: Auth, principal: Principal) -> None:
    identity = f"key:{principal.name}" if principal.authenticated else \
        f"addr:{request.remote_addr}"
    breach = auth.limiter.hit(identity, principal.rate_limit)
    if breach is None:
        return
    limit, retry_after = breach
    who = f"key '{principal.name}'" if principal.authenticated else \
        f"client address {request.remote_addr}"
    log.info("429: %s is over its rate limit (%s)", who, limit)
    raise TooManyRequests(
        f"Rate limit exceeded: {who} is limited to {limit} requests. Retry in {retry_after} s "
        "(the Retry-After header); if this is normal use, ask the operator for a higher "
        "rate_limit for the key.", retry_after_s=retry_after)
