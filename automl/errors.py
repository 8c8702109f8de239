"""Every error the service can answer with, and its one JSON shape.

Each failure is an ``ApiError`` subclass with an HTTP ``status`` and a stable ``code``;
``register_error_handlers`` turns it, Werkzeug's own HTTP errors and anything unexpected into

    {"error": <code>, "message": <what is wrong and how to fix it>}

A job that fails keeps its error in its record (``to_dict``) and a synchronous training
raises it again (``from_dict``), so a failure found in the training process answers exactly
as one found in the request. ``excerpt`` is how any message quotes what a client sent.
"""
from __future__ import annotations

import logging
import math

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Messages quote at most this much of a value a client sent.
EXCERPT_CHARS = 60


def excerpt(value, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages never echo a whole upload.

    numpy scalars are shown as the plain Python values a user wrote (``0``, not
    ``np.int64(0)``). Containers are summarised before ``repr`` so that a huge (or
    self-referencing) value costs no more to describe than a small one.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, (dict, list, tuple, set)):
        text = _short_repr(value, limit)
    elif isinstance(value, str):
        text = repr(value[:limit + 1])
    elif isinstance(value, int) and value.bit_length() > 200:  # repr of a huge int is slow
        text = f"a number of about {int(value.bit_length() * 0.30103)} digits"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _short_repr(value, limit: int) -> str:
    if isinstance(value, dict):
        items = [f"{excerpt(k, 20)}: {excerpt(v, 20)}" for k, v in list(value.items())[:4]]
        return "{" + ", ".join(items) + (", …" if len(value) > 4 else "") + "}"
    items = [excerpt(v, 20) for v in list(value)[:4]]
    open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
    return open_ + ", ".join(items) + (", …" if len(value) > 4 else "") + close


class ApiError(Exception):
    """A failure with its HTTP status, a stable machine-readable code and a message a person
    can act on. ``headers`` go with the answer (e.g. ``Retry-After``)."""

    status = 500
    code = "internal_error"
    _by_code: dict[str, type[ApiError]] = {}

    def __init__(self, message: str, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        ApiError._by_code.setdefault(cls.code, cls)

    def to_dict(self) -> dict:
        """The error as a job record keeps it (and ``GET /jobs/<id>`` shows it)."""
        return {"error": self.code, "message": self.message, "status": self.status}

    @classmethod
    def from_dict(cls, stored: dict) -> ApiError:
        """The stored error as the subclass its code names (any code from an older record
        keeps its status)."""
        kind = cls._by_code.get(stored.get("error"), ApiError)
        err = kind(str(stored.get("message", "")))
        if kind is ApiError:
            err.code = str(stored.get("error", ApiError.code))
            err.status = int(stored.get("status", 500))
        return err

    @classmethod
    def codes(cls) -> dict[str, int]:
        """Every error code the service can answer with, and its status (for the spec)."""
        return {code: kind.status for code, kind in cls._by_code.items()}


ApiError._by_code[ApiError.code] = ApiError


# -- 4xx: the client can fix it ------------------------------------------------------------


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class InvalidParameters(BadRequest):
    """The parameter file is unreadable or breaks the allow-list or a range."""

    code = "invalid_parameters"


class InvalidData(BadRequest):
    """An uploaded data file (raw_data or labels) cannot be used."""

    code = "invalid_data"


class TrainingFailed(BadRequest):
    """The data parsed, but no working pipeline could be trained from it (e.g. one class
    only, or a model that cannot predict)."""

    code = "training_failed"


class BudgetExceeded(BadRequest):
    """No pipeline was ready within the job's budget plus its margin."""

    code = "budget_exceeded"


class Unauthorized(ApiError):
    """No valid API key was sent."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str, error: str | None = None):
        # RFC 6750: error="invalid_token" when a key was sent but is not valid.
        challenge = 'Bearer realm="automl"' + (f', error="{error}"' if error else "")
        super().__init__(message, {"WWW-Authenticate": challenge})


class Forbidden(ApiError):
    """The key is valid but may not do this (a scope it lacks, or another key's thing)."""

    status = 403
    code = "forbidden"

    def __init__(self, message: str, scopes=None):
        headers = {}
        if scopes:  # RFC 6750: the key is valid but lacks a scope
            headers = {"WWW-Authenticate": f'Bearer realm="automl", error="insufficient_scope", '
                                           f'scope="{" ".join(sorted(scopes))}"'}
        super().__init__(message, headers)


class NotFound(ApiError):
    status = 404
    code = "not_found"


class PipelineNotFound(NotFound):
    code = "pipeline_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class JobFinished(ApiError):
    """Cancelling a job that has already ended."""

    status = 409
    code = "job_finished"


class JobCancelled(ApiError):
    """The job was cancelled (before or while it ran)."""

    status = 409
    code = "cancelled"


class RequestTimeout(ApiError):
    """The client sent its request body too slowly."""

    status = 408
    code = "request_timeout"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class OutOfMemory(PayloadTooLarge):
    """The training process ran out of memory: the data or the settings are too large for
    this instance."""

    code = "out_of_memory"


class TooManyRequests(ApiError):
    """A limit was reached; ``Retry-After`` says when to try again."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after_s: float = 30):
        super().__init__(message, {"Retry-After": str(max(1, math.ceil(retry_after_s)))})


class QueueFull(TooManyRequests):
    code = "queue_full"


# -- 5xx: the service's side ---------------------------------------------------------------


class PipelineUnreadable(ApiError):
    """A stored pipeline exists but cannot be loaded: its file is missing, damaged, or not
    signed by this service (the message says which)."""

    status = 500
    code = "pipeline_unreadable"


class StoreUnavailable(ApiError):
    status = 503
    code = "store_unavailable"

    def __init__(self, message: str, retry_after_s: float = 5):
        super().__init__(message, {"Retry-After": str(max(1, math.ceil(retry_after_s)))})


class StoreReadOnly(StoreUnavailable):
    code = "store_read_only"


class StoreFull(ApiError):
    status = 507
    code = "store_full"


class WorkerLost(ApiError):
    """The process running a training went away more often than the job may be retried."""

    status = 503
    code = "worker_lost"


# Messages for Werkzeug's own errors, phrased as what the client should do instead.
_HTTP_HINTS = {
    400: "The request could not be read (a malformed multipart body or header). Send "
    "multipart/form-data, e.g. requests.post(url, files={...}) or curl -F raw_data=@file.json.",
    404: "No such route. Routes: POST /train_model, POST /serve_prediction, GET /models, "
    "GET|DELETE /models/<pipeline_id>, GET /models/<pipeline_id>/versions, "
    "POST /models/<pipeline_id>/rollback, GET /models/<pipeline_id>/export, "
    "GET /models/<pipeline_id>/card, GET /export-key, GET /jobs, GET|DELETE /jobs/<job_id>, "
    "GET /audit, GET /health; GET /openapi.json describes them all.",
    405: "This route does not accept that HTTP method; GET /openapi.json lists each route's "
    "methods.",
    413: "The request is larger than the server accepts (MAX_UPLOAD_MB). Send fewer series per "
    "request or ask the operator to raise the limit.",
    415: "Send the files as multipart/form-data (e.g. requests.post(url, files={...}) or "
    "curl -F raw_data=@file.json).",
}


def error_response(err: ApiError):
    response = jsonify(error=err.code, message=err.message)
    response.status_code = err.status
    response.headers.update(err.headers)
    return response


def http_error(err: HTTPException) -> ApiError:
    """Werkzeug's HTTP error as an ApiError of the same status."""
    status = err.code or 500
    converted = ApiError(_HTTP_HINTS.get(status, err.description or err.name or "Error."))
    converted.status = status
    converted.code = (err.name or "error").lower().replace(" ", "_").replace("'", "")
    if status == 405 and getattr(err, "valid_methods", None):
        converted.headers["Allow"] = ", ".join(err.valid_methods)
    return converted


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return error_response(err)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        return error_response(http_error(err))

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        # Never show a stack trace to the client; the log keeps it for the operator.
        log.exception("unhandled error")
        return error_response(ApiError("The server failed unexpectedly; the operator's log has "
                                       "the details. Nothing was stored."))
