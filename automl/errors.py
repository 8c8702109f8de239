"""Typed errors that map to the service's single JSON error shape.

Every error a client can cause is raised as an ``ApiError`` subclass somewhere below the
routes; ``register_error_handlers`` turns it (and Werkzeug's own HTTP errors) into
``{"error": <code>, "message": <what is wrong and how to fix it>}``.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict:
        """The error as a job record keeps it, to be raised again by ``from_dict``."""
        return {"error": self.code, "message": self.message, "status": self.status}

    @classmethod
    def from_dict(cls, stored: dict) -> "ApiError":
        err = cls(stored["message"])
        err.status, err.code = stored.get("status", 500), stored["error"]
        return err


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class InvalidParameters(BadRequest):
    """The parameter file is unreadable or breaks the allow-list."""

    code = "invalid_parameters"


class InvalidData(BadRequest):
    """An uploaded data file (raw_data or labels) cannot be used."""

    code = "invalid_data"


class TrainingFailed(BadRequest):
    """The data parsed, but no pipeline could be trained from it (e.g. one class only)."""

    code = "training_failed"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class PipelineNotFound(NotFound):
    code = "pipeline_not_found"


class StoreUnavailable(ApiError):
    status = 503
    code = "store_unavailable"


# Messages for Werkzeug's own errors, phrased as what the client should do instead.
_HTTP_HINTS = {
    404: "No such route. Routes: POST /train_model, POST /serve_prediction, GET /models, "
    "GET /models/<pipeline_id>, GET /jobs, GET|DELETE /jobs/<job_id>, GET /health.",
    405: "This route does not accept that HTTP method; see the README for each route's method.",
    413: "The upload is larger than the server accepts (MAX_UPLOAD_MB). Send fewer series per "
    "request or ask the operator to raise the limit.",
    415: "Send the files as multipart/form-data (e.g. requests.post(url, files={...}) or "
    "curl -F raw_data=@file.json).",
}


def error_response(status: int, code: str, message: str):
    response = jsonify(error=code, message=message)
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return error_response(err.status, err.code, err.message)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        code = (err.name or "error").lower().replace(" ", "_")
        message = _HTTP_HINTS.get(err.code, err.description or err.name)
        return error_response(err.code or 500, code, message)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        # Never show a stack trace to the client; the log keeps it for the operator.
        log.exception("unhandled error")
        return error_response(500, "internal_error", "The server failed unexpectedly; the "
                              "operator's log has the details. Nothing was stored.")
