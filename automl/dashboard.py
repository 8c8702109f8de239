"""The dashboard (``/``, ``/ui/...``) and the interactive API docs (``/docs``): server-made HTML.

Thin views over the same state the API uses (``current_app.extensions["state"]``): the
leaderboard of pipelines, a page per pipeline with its charts (``charts``, SVG drawn on the
server), the jobs with their live progress and a cancel button, and forms to train and to
predict. Every page reads without JavaScript; a little script only refreshes live parts.

Who is asking. In open mode (no API keys) every page acts as the API does, as ``anonymous``
with every scope. With keys, a browser cannot add an ``Authorization`` header to a form, so
the dashboard has a sign-in form: the key is checked with ``Keys.authenticate`` (as a bearer
header is) and forgotten; the session cookie keeps only the key's *name* and a tag, an HMAC
of the key's digest under a secret derived from the store's signing secret. Each request
finds the key of that name and checks the tag, so a key removed or given a new secret signs
its sessions out. The cookie is Flask's signed session (its own derived secret), HttpOnly,
SameSite=Strict, Secure over HTTPS; a sign-in lasts at most ``SESSION_HOURS``. Pages then act with
that key's scopes (``PAGE_SCOPES``, checked here, deny by default: ``automl.auth`` lists the
dashboard's endpoints as needing no bearer header). Every form that changes something
carries the session's CSRF token in a hidden field, checked on each POST.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import time
from datetime import timedelta

from flask import (Blueprint, Response, current_app, flash, g, has_request_context, redirect,
                   render_template, request, session, url_for)
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Undefined
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from . import charts
from .auth import ANY_READER, PREDICT, PUBLIC, TRAIN, require_owner_or_admin
from .budget import Budget
from .errors import ApiError, BadRequest, Forbidden, Unauthorized
from .jobs import Job, JobState, valid_job_id
from .params import PIPELINE_ID, parse_prediction_params
from .serving import run_blocking
from .training_data import refuse_unusable
from .uploads import Upload, parse_training_uploads

log = logging.getLogger(__name__)

bp = Blueprint("ui", __name__)

SESSION_COOKIE = "automl_dashboard"
SESSION_HOURS = 12
CSRF_FIELD = "csrf_token"
LIVE_REFRESH_S = 5        # the no-script page refresh while a job is live
JOBS_PER_PAGE = 50
SHOWN_PREDICTIONS = 500   # rows of a prediction shown on the page (downloads have all)

# Each dashboard endpoint and the scopes that may use it (any one; admin has all). Not listed:
# refused. Readers of pipelines need predict; train keys see and cancel their own jobs, as
# in the API (ANY_READER: which jobs is the owner check's business).
PAGE_SCOPES: dict[str, frozenset[str]] = {
    "ui.leaderboard": frozenset({PREDICT}),
    "ui.pipeline": frozenset({PREDICT}),
    "ui.jobs": ANY_READER,
    "ui.job": ANY_READER,
    "ui.cancel_job": frozenset({TRAIN}),
    "ui.train": frozenset({TRAIN}),
    "ui.predict": frozenset({PREDICT}),
    "ui.signin": PUBLIC,
    "ui.signout": PUBLIC,
    "ui.docs": PUBLIC,
}

DEFAULT_PARAMS = """\
# The parameter file (YAML), as for POST /train_model; every key is optional.
extract_features: {default_fc_parameters: minimal}
model_training: {model: random_forest, model_args: {n_estimators: 30}, cv: 3}
"""

# Pages are our own: scripts and styles from this origin only (matplotlib's SVG and Swagger UI
# set style attributes), nothing framed, forms post here.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


# -- sessions and who is asking -------------------------------------------------------------------

class DashboardSessions(SecureCookieSessionInterface):
    """Flask's signed cookie session, with its own secret and the dashboard's cookie rules."""

    salt = "automl-dashboard-session"

    def __init__(self, secret: bytes):
        self._secret = secret

    def get_signing_serializer(self, app):
        return URLSafeTimedSerializer(self._secret, salt=self.salt, serializer=self.serializer,
                                      signer_kwargs={"key_derivation": self.key_derivation,
                                                     "digest_method": self.digest_method})

    def get_cookie_name(self, app) -> str:
        return SESSION_COOKIE

    def get_cookie_path(self, app) -> str:
        return "/"

    def get_cookie_httponly(self, app) -> bool:
        return True

    def get_cookie_samesite(self, app) -> str:
        return "Strict"

    def get_cookie_secure(self, app) -> bool:
        return request.is_secure or request.headers.get("X-Forwarded-Proto", "") == "https"

    def get_expiration_time(self, app, session):
        return None  # a browser-session cookie; its signature expires after SESSION_HOURS

    def open_session(self, app, request):
        value = request.cookies.get(SESSION_COOKIE)
        if not value:
            return self.session_class()
        try:
            data = self.get_signing_serializer(app).loads(value, max_age=SESSION_HOURS * 3600)
        except BadSignature:  # also expired
            return self.session_class()
        return self.session_class(data if isinstance(data, dict) else {})


@bp.record_once
def _setup(state) -> None:
    app = state.app
    # Derived from the store's signing secret, which every worker and instance shares; the
    # derivations differ, so neither a session tag nor a cookie signature says anything about
    # the secret that signs pipelines.
    models = app.extensions["state"].models
    app.extensions["dashboard"] = {"tag_secret": models.derive_key("automl-dashboard-sign-in")}
    app.session_interface = DashboardSessions(models.derive_key("automl-dashboard-session"))
    app.permanent_session_lifetime = timedelta(hours=SESSION_HOURS)
    app.jinja_env.globals.update(csrf_token=_csrf_token, fmt=_fmt, seconds=_seconds)


def _auth():
    return current_app.extensions["auth"]


def _state():
    return current_app.extensions["state"]


def _key_tag(digest: bytes) -> str:
    secret = current_app.extensions["dashboard"]["tag_secret"]
    return hmac.new(secret, b"key\0" + digest, hashlib.sha256).hexdigest()


def _configured_keys():
    """The configured keys' records (digest and principal); none in open mode."""
    keys = _auth().keys
    return keys.entries() if keys is not None else ()


def _session_principal():
    """The principal the session's sign-in stands for, if it still holds; else None."""
    signed = session.get("key")
    if not isinstance(signed, dict):
        return None
    name, tag = signed.get("name"), str(signed.get("tag", ""))
    signed_at = session.get("signedInAt")
    if not isinstance(signed_at, int) or time.time() - signed_at > SESSION_HOURS * 3600:
        session.pop("key", None)  # a sign-in lasts at most SESSION_HOURS
        return None
    found = None
    for key in _configured_keys():
        if key.principal.name == name and hmac.compare_digest(_key_tag(key.digest), tag):
            found = key.principal
    if found is None:  # the key was removed or given another secret
        session.pop("key", None)
    return found


def _csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf() -> None:
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise BadRequest("This form has expired or did not come from this dashboard (its CSRF "
                         "token does not match your session). Reload the page and send it again.")


@bp.before_request
def _authorize():
    """After ``automl.auth``'s hook: the session's key, its scopes, and CSRF on every POST."""
    needed = PAGE_SCOPES.get(request.endpoint)
    if needed is None:
        raise Forbidden(f"{request.path} has no access rule in the dashboard, so it is refused.")
    auth = _auth()
    g.keys_mode = auth.keys is not None
    if g.keys_mode:
        g.principal = _session_principal() or auth.nobody
    g.signed_in = g.keys_mode and g.principal.authenticated
    if request.method == "POST":
        _check_csrf()
    if needed == PUBLIC:
        return None
    if g.keys_mode and not g.signed_in:
        if request.method == "GET":
            return redirect(url_for("ui.signin", next=request.full_path.rstrip("?")))
        raise Unauthorized("Sign in with an API key first.")
    if not any(g.principal.can(scope) for scope in needed):
        wanted = " or ".join(f"'{s}'" for s in sorted(needed))
        raise Forbidden(f"Key '{g.principal.name}' lacks the {wanted} scope this page needs (its "
                        f"scopes: {', '.join(sorted(g.principal.scopes))}).", needed)
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    return _error_page(err.status, err.code, err.message, err.headers)


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException):
    return _error_page(err.code or 500, (err.name or "error").lower().replace(" ", "_"),
                       err.description or "")


@bp.errorhandler(Exception)
def _unexpected(err: Exception):
    log.exception("dashboard: unhandled error")
    return _error_page(500, "internal_error", "The server failed unexpectedly; the operator's "
                       "log has the details.")


def _error_page(status: int, code: str, message: str, headers: dict | None = None):
    headers = {k: v for k, v in (headers or {}).items() if k.lower() != "www-authenticate"}
    return render_template("ui/error.html", status=status, code=code, message=message), \
        status, headers


def _can(scope: str) -> bool:
    """Whether the page's principal may use ``scope`` (signed in, with keys)."""
    principal = g.get("principal")
    return principal is not None and principal.can(scope) and \
        (not g.get("keys_mode") or g.get("signed_in", False))


@bp.app_context_processor
def _page_context() -> dict:
    if not has_request_context() or request.blueprint != "ui":
        return {}
    return {"can": _can, "keys_mode": g.get("keys_mode", False),
            "signed_in": g.get("signed_in", False), "principal": g.get("principal")}


# -- signing in and out ---------------------------------------------------------------------------

@bp.route("/ui/signin", methods=["GET", "POST"])
def signin():
    next_page = _local(request.values.get("next"))
    if not g.keys_mode:
        return redirect(next_page or url_for("ui.leaderboard"))
    if request.method == "GET":
        return render_template("ui/signin.html", next=next_page)
    secret = request.form.get("key", "").strip()
    principal = _auth().keys.authenticate(secret) if secret else None
    if principal is None:
        log.warning("dashboard: a sign-in with an invalid API key from %s", request.remote_addr)
        return render_template("ui/signin.html", next=next_page,
                               error="That is not a valid API key."), 401
    digest = next(k.digest for k in _configured_keys() if k.principal is principal)
    session.clear()  # a new session for the new identity (and a new CSRF token)
    session["key"] = {"name": principal.name, "tag": _key_tag(digest)}
    session["signedInAt"] = int(time.time())
    log.info("dashboard: key '%s' signed in from %s", principal.name, request.remote_addr)
    flash(f"Signed in as key '{principal.name}' ({', '.join(sorted(principal.scopes))}).")
    return redirect(next_page or url_for("ui.leaderboard"), 303)


@bp.post("/ui/signout")
def signout():
    session.clear()
    return redirect(url_for("ui.signin") if g.keys_mode else url_for("ui.leaderboard"), 303)


def _local(target: str | None) -> str | None:
    """``target`` if it is a path on this site (never another host: no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


# -- the leaderboard ----------------------------------------------------------------------------

# ?sort= -> how a row sorts; missing values sort last in either order.
SORTS = {
    "id": lambda r: _natural(r["id"]), "model": lambda r: r["family"],
    "engine": lambda r: r["engine"], "accuracy": lambda r: r["accuracy"],
    "auc": lambda r: r["auc"], "series": lambda r: r["series"],
    "classes": lambda r: r["classes"], "features": lambda r: r["features_used"],
    "time": lambda r: r["train_time"], "created": lambda r: r["created"],
    "status": lambda r: r["provisional"],
}
DEFAULT_ORDER = {"id": "asc", "model": "asc", "engine": "asc", "created": "desc"}


@bp.get("/")
def leaderboard():
    rows = [_row(pipeline_id, meta) for pipeline_id, meta in _state().models.list().items()]
    sort = request.args.get("sort", "auc")
    if sort not in SORTS:
        sort = "auc"
    order = request.args.get("order", DEFAULT_ORDER.get(sort, "desc"))
    order = order if order in ("asc", "desc") else "desc"
    readable = [r for r in rows if not r["unreadable"]]
    present = sorted((r for r in readable if SORTS[sort](r) is not None), key=SORTS[sort],
                     reverse=order == "desc")
    rows = present + [r for r in readable if SORTS[sort](r) is None] + \
        [r for r in rows if r["unreadable"]]
    active = _active_jobs()
    return render_template("ui/leaderboard.html", rows=rows, sort=sort, order=order,
                           sorts=SORTS, active=active, live=bool(active),
                           refresh=LIVE_REFRESH_S if active else None)


def _row(pipeline_id: str, meta: dict) -> dict:
    if meta.get("unreadable"):
        return {"id": pipeline_id, "unreadable": True, "message": meta.get("message")}
    shape = data_shape(meta)
    train_shape = meta.get("trainShape") if isinstance(meta.get("trainShape"), list) else []
    return {
        "id": pipeline_id, "unreadable": False, "version": meta.get("version"),
        "family": meta.get("modelFamily") or _family(meta.get("modelType")),
        "model_type": meta.get("modelType"), "engine": meta.get("engine"),
        "accuracy": _num(meta.get("mean_cv_accuracy")), "auc": _num(meta.get("mean_cv_roc_auc")),
        "series": shape["series"], "channels": shape["channels"], "length": shape["length"],
        "classes": shape["classes"],
        "features_used": train_shape[1] if len(train_shape) > 1 else None,
        "train_time": _num(meta.get("trainTime")), "created": meta.get("createdAt"),
        "provisional": bool(meta.get("provisional")), "created_by": meta.get("createdBy"),
    }


def data_shape(report: dict) -> dict:
    """Series, channels, length and classes: the report's ``dataShape``, else what older
    reports say of them (``trainShape``, ``classes``, a kernel engine's ``features``); None
    where nothing says."""
    recorded = report.get("dataShape") if isinstance(report.get("dataShape"), dict) else {}
    features = report.get("features") if isinstance(report.get("features"), dict) else {}
    parts = [features, *[p for p in features.get("parts") or [] if isinstance(p, dict)]]
    channels = next((len(p["channels"]) for p in parts if isinstance(p.get("channels"), list)),
                    None)
    length = next((p["seriesLength"] for p in parts if p.get("seriesLength") is not None), None)
    train_shape = report.get("trainShape") if isinstance(report.get("trainShape"), list) else []
    classes = report.get("classes")
    return {
        "series": recorded.get("series", train_shape[0] if train_shape else None),
        "channels": recorded.get("channels", channels),
        "length": recorded.get("length", length),
        "classes": recorded.get("classes", len(classes) if isinstance(classes, list) else None),
    }


# -- a pipeline -----------------------------------------------------------------------------------

@bp.get("/ui/pipelines/<pipeline_id>")
def pipeline(pipeline_id: str):
    version = request.args.get("version")
    if version is not None and not re.fullmatch(r"[0-9]{1,7}", version):
        raise BadRequest("'version' must be a version number (see the versions table).")
    models = _state().models
    report = models.metadata(pipeline_id, int(version) if version else None)
    versions = models.versions(pipeline_id)
    key = (pipeline_id, report.get("version"), report.get("jobId"), report.get("createdAt"),
           report.get("trainTime"), report.get("provisional"))
    drawn = run_blocking(charts.cached, key, charts.for_report, report)
    search = report.get("search") if isinstance(report.get("search"), dict) else None
    return render_template(
        "ui/pipeline.html", pipeline_id=pipeline_id, report=report, versions=versions,
        charts={name: Markup(svg) if svg else None for name, svg in drawn.items()},
        search=search, shape=data_shape(report),
        report_json=json.dumps(report, indent=2, sort_keys=True, default=str),
        active=[job for job in _active_jobs() if job.pipeline_id == pipeline_id])


# -- jobs -----------------------------------------------------------------------------------------

def _visible_to_me() -> str | None:
    """Whose jobs the principal may list: None for all (predict, admin), else its own."""
    return None if g.principal.can(PREDICT) else g.principal.name


def _active_jobs() -> list[Job]:
    if not _can(PREDICT) and not _can(TRAIN):
        return []
    own = _visible_to_me()
    jobs = []
    for state in (JobState.RUNNING, JobState.QUEUED):
        found, _ = _state().jobs.list(20, None, state, submitted_by=own)
        jobs += [job for job in found if isinstance(job, Job)]
    for job in jobs:  # the listing holds records; progress is kept beside them
        _with_progress(job)
    return jobs


def _with_progress(job: Job) -> Job:
    """The job with its progress, and its elapsed and remaining time as of now (the
    training process reports progress only at its own steps)."""
    if job.progress is None:
        try:
            job.progress = _state().jobs.get(job.job_id).progress
        except ApiError:
            job.progress = None
    if job.state == JobState.RUNNING and job.started_epoch:
        now = time.time()
        job.progress = {**(job.progress or {}),
                        "elapsedSeconds": round(job.elapsed_seconds(now), 1)}
        if job.deadline:
            job.progress["remainingSeconds"] = round(max(0.0, job.deadline - now), 1)
    return job


@bp.get("/ui/jobs")
def jobs():
    before = request.args.get("before")
    if before is not None and not valid_job_id(before):
        raise BadRequest("'before' must be a job id from this listing.")
    listed, after = _state().jobs.list(JOBS_PER_PAGE, before, None, submitted_by=_visible_to_me())
    for job in listed:
        if isinstance(job, Job) and not job.state.finished:
            _with_progress(job)
    live = any(isinstance(j, Job) and not j.state.finished for j in listed)
    return render_template("ui/jobs.html", jobs=listed, after=after, live=live,
                           refresh=LIVE_REFRESH_S if live else None)


@bp.get("/ui/jobs/<job_id>")
def job(job_id: str):
    found = _with_progress(_state().jobs.get(job_id))
    if not g.principal.can(PREDICT):
        require_owner_or_admin(found.submitted_by, f"job {job_id}", "see")
    live = not found.state.finished
    return render_template("ui/job.html", job=found, live=live,
                           refresh=LIVE_REFRESH_S if live else None,
                           may_cancel=live and _may_cancel(found))


def _may_cancel(job: Job) -> bool:
    return _can(TRAIN) and (g.principal.is_admin or job.submitted_by == g.principal.name)


@bp.post("/ui/jobs/<job_id>/cancel")
def cancel_job(job_id: str):
    state = _state()
    principal = require_owner_or_admin(state.jobs.get(job_id).submitted_by, f"job {job_id}",
                                       "cancel")
    cancelled = state.jobs.cancel(job_id)
    state.audit.record(principal.name, "cancelled", f"job {job_id}",
                       pipelineId=cancelled.pipeline_id)
    flash(f"Job {job_id}: " + ("cancelled." if cancelled.state == JobState.CANCELLED
                               else "stopping (its training process ends it shortly)."))
    return redirect(_local(request.form.get("next")) or url_for("ui.job", job_id=job_id), 303)


# -- training -------------------------------------------------------------------------------------

@bp.route("/ui/train", methods=["GET", "POST"])
def train():
    if request.method == "GET":
        return render_template("ui/train.html", params_text=DEFAULT_PARAMS)
    params_text = request.form.get("params_text", "")
    try:
        uploads = {"raw_data": _upload("raw_data", "series (raw_data)"),
                   "labels": _upload("labels", "labels"),
                   "params": _params_upload(params_text)}
        params, raw, labels = run_blocking(parse_training_uploads, uploads,
                                           current_app.extensions["limits"])
        run_blocking(refuse_unusable, raw, labels, params, current_app.extensions["limits"])
        models, principal = _state().models, g.principal
        if params.pipeline_id is not None and models.exists(params.pipeline_id):
            require_owner_or_admin(models.owner(params.pipeline_id),
                                   f"pipeline '{params.pipeline_id}'", "add a version to")
        created = _state().jobs.create(
            uploads, params.pipeline_id, Budget.of(params).seconds, submitted_by=principal.name,
            max_per_submitter=principal.max_trainings if principal.authenticated else None)
    except ApiError as err:
        return render_template("ui/train.html", params_text=params_text, error=err.message,
                               code=err.code), err.status, \
            {k: v for k, v in err.headers.items() if k.lower() == "retry-after"}
    flash(f"Training job {created.job_id} queued.")
    return redirect(url_for("ui.job", job_id=created.job_id), 303)


def _upload(name: str, label: str) -> Upload:
    storage = request.files.get(name)
    if storage is None or not storage.filename:
        raise BadRequest(f"Choose the {label} file.")
    return Upload(storage.stream, storage.filename, storage.mimetype)  # read in place, as the API's


def _params_upload(text: str) -> Upload:
    storage = request.files.get("params")
    if storage is not None and storage.filename:
        if text.strip() and text.strip() != DEFAULT_PARAMS.strip():
            raise BadRequest("Give the parameters once: either a parameter file or the text "
                             "box (empty it to use the file).")
        return Upload(storage.read(), storage.filename, storage.mimetype)
    return Upload(text.encode("utf-8", "surrogatepass"), "params.yml", "application/yaml")


# -- predicting -----------------------------------------------------------------------------------

@bp.route("/ui/predict", methods=["GET", "POST"])
def predict():
    choices = [pid for pid, meta in _state().models.list().items() if not meta.get("unreadable")]
    chosen = request.values.get("pipeline_id") or (choices[0] if choices else "")
    if request.method == "GET":
        return render_template("ui/predict.html", choices=choices, chosen=chosen)
    version = request.form.get("version", "").strip()
    output = request.form.get("format", "show")
    try:
        if not PIPELINE_ID.match(chosen):
            raise BadRequest("Choose a pipeline.")
        if version and not re.fullmatch(r"[0-9]{1,7}", version):
            raise BadRequest("'version' must be a version number, or empty for the current one.")
        params = parse_prediction_params(json.dumps(
            {"pipeline_id": chosen, "version": int(version) if version else None}).encode())
        upload = _upload("raw_data", "series (raw_data)")
        classifier = _state().models.get(params.pipeline_id, params.version)
        from .api import predict_upload  # the API's own prediction: formats and limits

        scores = run_blocking(predict_upload, classifier, upload,
                              current_app.config["MAX_PREDICTION_SERIES"])
    except ApiError as err:
        return render_template("ui/predict.html", choices=choices, chosen=chosen,
                               version=version, error=err.message), err.status
    name = f"predictions-{chosen}" + (f"-v{version}" if version else "")
    if output == "csv":
        return _download(predictions_csv(scores), f"{name}.csv", "text/csv")
    if output == "json":
        return _download(json.dumps(scores, default=_json_default), f"{name}.json",
                         "application/json")
    table, columns = predictions_table(scores)
    return render_template(
        "ui/predictions.html", pipeline_id=chosen, version=version, total=len(table),
        rows=table[:SHOWN_PREDICTIONS], columns=columns,
        csv_href=_data_uri(predictions_csv(scores), "text/csv"),
        json_href=_data_uri(json.dumps(scores, default=_json_default), "application/json"),
        name=name)


def predictions_table(scores: dict) -> tuple[list[list], list[str]]:
    """Rows of [series id, score...] and the column names: one probability column for two
    classes (P of the positive class), one per class otherwise."""
    first = next(iter(scores.values()), None)
    if isinstance(first, dict):
        classes = list(first)
        return [[sid, *(row.get(c) for c in classes)] for sid, row in scores.items()], \
            ["series", *map(str, classes)]
    return [[sid, value] for sid, value in scores.items()], ["series", "probability"]


def predictions_csv(scores: dict) -> str:
    rows, columns = predictions_table(scores)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def _download(body: str, filename: str, mimetype: str) -> Response:
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _data_uri(body: str, mimetype: str) -> str:
    return f"data:{mimetype};base64,{base64.b64encode(body.encode()).decode()}"


def _json_default(value):
    return value.item() if hasattr(value, "item") else str(value)


# -- the API docs ---------------------------------------------------------------------------------

@bp.get("/docs")
def docs():
    """Swagger UI (vendored under static/swagger-ui, served here) over /openapi.json."""
    return render_template("ui/docs.html", keys_mode=g.keys_mode)


# -- formatting -----------------------------------------------------------------------------------

def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and value == value else None


def _family(model_type) -> str | None:
    return model_type.split("(", 1)[0] if isinstance(model_type, str) else None


def _natural(pipeline_id: str):
    return (0, int(pipeline_id), "") if pipeline_id.isdigit() else (1, 0, pipeline_id)


def _fmt(value, digits: int = 4, missing: str = "not recorded") -> str:
    """A number for a table: rounded, or ``missing``; a [min, max] pair as a range."""
    if value is None or isinstance(value, Undefined):  # a field the report does not have
        return missing
    if isinstance(value, list) and len(value) == 2:
        return f"{_fmt(value[0], digits)}–{_fmt(value[1], digits)}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _seconds(value, missing: str = "not recorded") -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return missing
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(round(value)), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"

