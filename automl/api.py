"""The routes: parse the request, call training or the stored pipeline, format the answer."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .parsing import read_labels, read_raw_data
from .params import parse_prediction_params, parse_training_params
from .training import train
from .uploads import require_files

bp = Blueprint("api", __name__)

# What GET /models shows per pipeline; GET /models/<id> shows everything.
SUMMARY_FIELDS = ("modelId", "mean_cv_accuracy", "mean_cv_roc_auc", "modelType", "trainShape",
                  "trainTime", "classes", "createdAt")


def _store():
    return current_app.extensions["model_store"]


@bp.post("/train_model")
def train_model():
    files = require_files(request, ("raw_data", "labels", "params"))
    params = parse_training_params(files["params"].payload)
    columns = params.features.columns
    raw = read_raw_data(**_file_args(files["raw_data"]), columns=columns, field="raw_data")
    labels = read_labels(**_file_args(files["labels"]), columns=columns, field="labels")
    classifier, report = train(raw, labels, params)
    pipeline_id = _store().save(classifier, report, params.pipeline_id)
    return jsonify(_store().metadata(pipeline_id))


@bp.post("/serve_prediction")
def serve_prediction():
    files = require_files(request, ("raw_data", "params"))
    params = parse_prediction_params(files["params"].payload)
    classifier = _store().get(params.pipeline_id)
    raw = read_raw_data(**_file_args(files["raw_data"]),
                        columns=classifier.features_.input_columns(), field="raw_data")
    return jsonify(classifier.scores(raw))


@bp.get("/models")
def list_models():
    return jsonify({pid: {k: meta.get(k) for k in SUMMARY_FIELDS}
                    for pid, meta in _store().list().items()})


@bp.get("/models/<pipeline_id>")
def show_model(pipeline_id: str):
    return jsonify(_store().metadata(pipeline_id))


@bp.get("/health")
def health():
    return jsonify(status="ok")


def _file_args(upload) -> dict:
    return {"payload": upload.payload, "filename": upload.filename,
            "content_type": upload.content_type}
