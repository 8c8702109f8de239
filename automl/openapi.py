"""The OpenAPI 3.1 contract of the service, built from the code (``GET /openapi.json``).

Each route's operation is written in YAML in its view's docstring, beside the code that
serves it; apispec's Flask plugin reads them with the route's path from Flask's URL map.
The schemas of the parameter files come from the same rules that check them
(``params.training_schema``), and the error codes from every ``ApiError`` subclass, so the
contract cannot drift from what the service does (``tests/test_openapi.py`` also compares
it with the URL map, and schemathesis checks real answers against it).
"""
from __future__ import annotations

from apispec import APISpec
from apispec_webframeworks.flask import FlaskPlugin

from .errors import ApiError
from .params import Limits, prediction_schema, training_schema

TITLE = "AutoML for time-series classification"
VERSION = "1.0"

_FILE = {"type": "string", "format": "binary"}
_SCORE = {"type": ["number", "null"]}
_ERROR_STATUSES = {
    "BadRequest": (400, "The upload or the parameter file cannot be used; the message says "
                        "which part and why."),
    "NotFound": (404, "No such pipeline, version, job or route."),
    "Conflict": (409, "The job has already ended, or was cancelled."),
    "RequestTimeout": (408, "The request body arrived too slowly."),
    "PayloadTooLarge": (413, "Above MAX_UPLOAD_MB, the series limit of one prediction, or "
                             "more than the training could hold in memory."),
    "UnsupportedMediaType": (415, "The body is not multipart/form-data."),
    "TooManyRequests": (429, "A limit was reached (the queue, or a key's share); see "
                             "Retry-After."),
    "ServiceUnavailable": (503, "The store is unreachable or read-only; see Retry-After."),
    "InsufficientStorage": (507, "The store is full; nothing was changed."),
}


def build_spec(app) -> dict:
    """The contract of ``app`` as a dict (the view docstrings' operations, and components)."""
    spec = APISpec(title=TITLE, version=VERSION, openapi_version="3.1.0",
                   plugins=[FlaskPlugin()], info={"description": _DESCRIPTION},
                   # No key (open mode, and the public routes) or a bearer key: either.
                   security=[{}, {"bearerAuth": []}])
    _components(spec, Limits.from_settings(app.config))
    with app.test_request_context():
        for endpoint, view in app.view_functions.items():
            if endpoint != "static" and "---" in (view.__doc__ or ""):
                spec.path(view=view, app=app)
    return spec.to_dict()


def _components(spec: APISpec, limits: Limits) -> None:
    spec.components.schema("Error", {
        "type": "object", "required": ["error", "message"], "additionalProperties": False,
        "properties": {
            "error": {"type": "string", "description": "A stable code: "
                      + ", ".join(sorted(ApiError.codes())) + " (and HTTP errors by name)."},
            "message": {"type": "string", "description": "What is wrong and how to fix it."}}})
    spec.components.schema("TrainingParameters", training_schema(limits))
    spec.components.schema("PredictionParameters", prediction_schema())
    spec.components.schema("TrainingUpload", {
        "type": "object", "required": ["raw_data", "labels", "params"],
        "properties": {
            "raw_data": {**_FILE, "description": "The series, long format (or wide with "
                         "extract_features.layout: wide): JSON (pandas to_json: columns, "
                         "records or split), CSV with a header, or Parquet."},
            "labels": {**_FILE, "description": "One label per series id (JSON, CSV or "
                       "Parquet)."},
            "params": {**_FILE, "description": "The parameter file (YAML); its content "
                       "follows the TrainingParameters schema."}}})
    spec.components.schema("PredictionUpload", {
        "type": "object", "required": ["raw_data", "params"],
        "properties": {
            "raw_data": {**_FILE, "description": "The series to score, as for training "
                         "(the layout: the parameter file's, else the pipeline's)."},
            "params": {**_FILE, "description": "The parameter file (YAML); its content "
                       "follows the PredictionParameters schema."},
            "format": {"type": "string", "enum": ["json", "csv"],
                       "description": "The answer's format (as the query parameter)."}}})
    spec.components.schema("TrainingReport", {
        "type": "object", "description": "What a training produced; every field is listed in "
        "the README (Training report).",
        "properties": {
            "modelId": {"type": ["integer", "string"]}, "version": {"type": "integer"},
            "trainTime": {"type": "number"}, "trainShape": {"type": "array"},
            "mean_cv_accuracy": _SCORE, "mean_cv_roc_auc": _SCORE, "mean_cv_score": _SCORE,
            "modelType": {"type": "string"}, "engine": {"type": "string"},
            "provisional": {"type": "boolean"}, "jobId": {"type": ["string", "null"]},
            "classes": {"type": "array"}, "createdAt": {"type": "string"}}})
    spec.components.schema("ModelSummary", {
        "type": "object", "properties": {
            "modelId": {"type": ["integer", "string"]}, "version": {"type": ["integer", "null"]},
            "mean_cv_accuracy": _SCORE, "mean_cv_roc_auc": _SCORE,
            "modelType": {"type": ["string", "null"]}, "trainShape": {"type": ["array", "null"]},
            "trainTime": {"type": ["number", "null"]}, "classes": {"type": ["array", "null"]},
            "provisional": {"type": ["boolean", "null"]}, "jobId": {"type": ["string", "null"]},
            "createdAt": {"type": ["string", "null"]},
            "unreadable": {"type": "boolean", "description": "its record or file is damaged"},
            "message": {"type": "string"}}})
    spec.components.schema("Models", {"type": "object",
                                      "additionalProperties": {"$ref": "#/components/schemas/ModelSummary"}})
    spec.components.schema("Job", {
        "type": "object", "required": ["jobId", "state"], "properties": {
            "jobId": {"type": "string"},
            "state": {"type": ["string", "null"],
                      "enum": ["queued", "running", "succeeded", "failed", "cancelled", None]},
            "pipelineId": {"type": ["string", "null"]}, "version": {"type": ["integer", "null"]},
            "budgetSeconds": {"type": "number"}, "createdAt": {"type": "string"},
            "startedAt": {"type": ["string", "null"]}, "finishedAt": {"type": ["string", "null"]},
            "attempt": {"type": "integer"}, "cancelRequested": {"type": "boolean"},
            "spentSeconds": {"type": "number", "description": "of the budget, what earlier "
                             "starts used: a job restarted after its process was lost resumes "
                             "from its checkpoint with the rest"},
            "submittedBy": {"type": ["string", "null"]},
            "progress": {"type": ["object", "null"]}, "result": {"type": ["object", "null"]},
            "error": {"type": ["object", "null"]}, "unreadable": {"type": "boolean"}}})
    spec.components.schema("Predictions", {
        "type": "object", "description": "Per series id: P(positive class) for two classes, "
        "else {class: P}.",
        "additionalProperties": {"anyOf": [{"type": "number"}, {
            "type": "object", "additionalProperties": {"type": "number"}}]}})
    spec.components.schema("Health", {"type": "object", "required": ["status", "auth"],
                                      "properties": {"status": {"type": "string"},
                                                     "auth": {"enum": ["keys", "open"]}}})
    spec.components.security_scheme("bearerAuth", {
        "type": "http", "scheme": "bearer", "description": "An API key, as `Authorization: "
        "Bearer <key>`, when the service has keys configured (GET /health says `auth: keys`); "
        "without keys every route is open."})
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    retry = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}
    for name, (status, description) in _ERROR_STATUSES.items():
        spec.components.response(name, {"description": f"{status}: {description}",
                                        "content": error,
                                        **({"headers": retry} if status in (429, 503) else {})})
    spec.components.response("Error", {"description": "Any other error, in the same shape.",
                                       "content": error})


_DESCRIPTION = """Upload raw, labelled time series; get back a trained pipeline that serves
predictions. Files go as multipart/form-data; parameter files are YAML (their schemas are
TrainingParameters and PredictionParameters). Every error is JSON {"error", "message"}."""
