"""The routes: parse the request, hand it to the job queue or a stored pipeline, format the answer."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .errors import ApiError
from .jobs import SUCCEEDED
from .params import SEARCH_MODEL, parse_prediction_params
from .parsing import read_raw_data
from .training import matched_training_data
from .uploads import TRAINING_FILES, file_args, parse_training_uploads, require_files

bp = Blueprint("api", __name__)

# What GET /models shows per pipeline; GET /models/<id> shows everything.
SUMMARY_FIELDS = ("modelId", "mean_cv_accuracy", "mean_cv_roc_auc", "modelType", "trainShape",
                  "trainTime", "classes", "provisional", "jobId", "createdAt")
JOB_SUMMARY_FIELDS = ("jobId", "state", "pipelineId", "createdAt", "startedAt", "finishedAt",
                      "error")


def _state():
    return current_app.extensions["state"]


@bp.post("/train_model")
def train_model():
    uploads = require_files(request, TRAINING_FILES)
    params, raw, labels = parse_training_uploads(uploads)
    matched_training_data(raw, labels, params)  # refuse unusable data now, not in the job
    searching = params.model.model == SEARCH_MODEL
    job = _state().jobs.create(uploads, params.pipeline_id,
                               budget_s=params.model.search.max_time_mins * 60 if searching else None)
    if params.run_async or _prefers_async():
        return jsonify(job), 202, {"Location": f"/jobs/{job['jobId']}",
                                   "Preference-Applied": "respond-async"}
    finished = _state().jobs.wait(job["jobId"])
    if finished["state"] != SUCCEEDED:
        raise ApiError.from_dict(finished["error"])
    return jsonify(finished["result"])


@bp.post("/serve_prediction")
def serve_prediction():
    files = require_files(request, ("raw_data", "params"))
    params = parse_prediction_params(files["params"].payload)
    classifier = _state().models.get(params.pipeline_id)
    raw = read_raw_data(**file_args(files["raw_data"]),
                        columns=classifier.features_.input_columns(), field="raw_data")
    return jsonify(classifier.scores(raw))


@bp.get("/models")
def list_models():
    return jsonify({pid: {k: meta.get(k) for k in SUMMARY_FIELDS}
                    for pid, meta in _state().models.list().items()})


@bp.get("/models/<pipeline_id>")
def show_model(pipeline_id: str):
    return jsonify(_state().models.metadata(pipeline_id))


@bp.get("/jobs")
def list_jobs():
    return jsonify([{k: job.get(k) for k in JOB_SUMMARY_FIELDS} for job in _state().jobs.list()])


@bp.get("/jobs/<job_id>")
def show_job(job_id: str):
    return jsonify(_state().jobs.get(job_id))


@bp.delete("/jobs/<job_id>")
def cancel_job(job_id: str):
    return jsonify(_state().jobs.cancel(job_id)), 202


@bp.get("/health")
def health():
    return jsonify(status="ok")


def _prefers_async() -> bool:
    """RFC 7240: ``Prefer: respond-async`` (among other preferences, in any case)."""
    preferences = ",".join(request.headers.getlist("Prefer")).lower()
    return "respond-async" in (p.strip().split(";")[0] for p in preferences.split(","))
