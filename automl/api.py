"""The routes: parse the request, hand it to the job queue or a stored pipeline, format the answer.

Each view's docstring holds its OpenAPI operation (``openapi.build_spec``). CPU-bound work
(parsing uploads, predicting) runs through ``serving.run_blocking``, on plain values.
"""
from __future__ import annotations

import csv
import io
import itertools
import re
import time
from dataclasses import replace

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from .auth import PREDICT, current_principal, require_owner_or_admin
from .budget import Budget
from .checks import OneOf, Whole, check
from .errors import BadRequest
from .jobs import Job, JobState, valid_job_id
from .openapi import build_spec
from .params import MAX_VERSION, Limits, parse_prediction_params
from .parsing import LONG, WIDE, Columns, read_raw_data
from .serving import client_gone, run_blocking
from .training_data import refuse_unusable
from .uploads import (PREDICTION_FILES, STREAMED_FILES, TRAINING_FILES, parse_training_uploads,
                      require_files)

bp = Blueprint("api", __name__)

# What GET /models shows per pipeline; GET /models/<id> shows everything.
SUMMARY_FIELDS = ("modelId", "version", "mean_cv_accuracy", "mean_cv_roc_auc", "modelType",
                  "trainShape", "trainTime", "classes", "provisional", "jobId", "createdAt")
JOB_SUMMARY_FIELDS = ("jobId", "state", "pipelineId", "version", "submittedBy", "createdAt",
                      "startedAt", "finishedAt", "attempt", "error")
PAGE_LIMIT = Whole(1, 500)
WAIT_POLL_S = 0.5
# What POST /serve_prediction answers: JSON (the default, the blog post's client) or CSV.
PREDICTION_TYPES = {"json": "application/json", "csv": "text/csv"}


def _state():
    return current_app.extensions["state"]


def _limits() -> Limits:
    return current_app.extensions["limits"]


@bp.post("/train_model")
def train_model():
    """Train a pipeline: features, a baseline, a search; store it under its id.
    ---
    post:
      operationId: trainModel
      summary: Train a pipeline from uploaded series, labels and a parameter file
      description: >
        Queues a training job. By default the request waits for it and answers with the
        training report (the blog post's client); with `Prefer: respond-async` or
        `async: true` in the parameter file it answers 202 with the job at once.
      parameters:
        - {in: header, name: Prefer, required: false, schema: {type: string},
           description: "respond-async: answer 202 with the job instead of waiting"}
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema: {$ref: "#/components/schemas/TrainingUpload"}
      responses:
        "200":
          description: The training report of the stored pipeline.
          content: {application/json: {schema: {$ref: "#/components/schemas/TrainingReport"}}}
        "202":
          description: The job (queued or running); follow it at its Location.
          headers: {Location: {schema: {type: string}, description: "/jobs/<jobId>"}}
          content: {application/json: {schema: {$ref: "#/components/schemas/Job"}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "408": {$ref: "#/components/responses/RequestTimeout"}
        "409": {$ref: "#/components/responses/Conflict"}
        "413": {$ref: "#/components/responses/PayloadTooLarge"}
        "415": {$ref: "#/components/responses/UnsupportedMediaType"}
        "429": {$ref: "#/components/responses/TooManyRequests"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        "507": {$ref: "#/components/responses/InsufficientStorage"}
        default: {$ref: "#/components/responses/Error"}
    """
    uploads = require_files(request, TRAINING_FILES, streamed=STREAMED_FILES)
    params, raw, labels = run_blocking(parse_training_uploads, uploads, _limits())
    run_blocking(refuse_unusable, raw, labels, params, _limits())
    principal = current_principal()
    if params.pipeline_id is not None and _state().models.exists(params.pipeline_id):
        require_owner_or_admin(_state().models.owner(params.pipeline_id),
                               f"pipeline '{params.pipeline_id}'", "add a version to")
    job = _state().jobs.create(
        uploads, params.pipeline_id, Budget.of(params).seconds, submitted_by=principal.name,
        max_per_submitter=principal.max_trainings if principal.authenticated else None)
    if params.run_async or _prefers_async():
        return _accepted(job)
    finished = _wait(job)
    if finished is None:  # waited as long as allowed, or the client left: the job goes on
        return _accepted(_state().jobs.get(job.job_id))
    if finished.state != JobState.SUCCEEDED:
        raise finished.failure()
    return jsonify(finished.result)


@bp.post("/serve_prediction")
def serve_prediction():
    """Score series with a stored pipeline.
    ---
    post:
      operationId: servePrediction
      summary: Score uploaded series with a stored pipeline
      description: >
        Answers JSON unless CSV is asked for, with `format=csv` (a query parameter or a form
        field) or `Accept: text/csv`; `format` wins over Accept. CSV has a header row:
        `series_id,probability` for two classes (P(positive class)), else `series_id` and one
        column per class.
      parameters:
        - {in: query, name: format, required: false, schema: {type: string, enum: [json, csv]},
           description: "json (the default) or csv; the same as a form field format"}
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema: {$ref: "#/components/schemas/PredictionUpload"}
      responses:
        "200":
          description: P(positive class) per series id (two classes), else {class P} per id.
          headers: {Vary: {schema: {type: string}, description: "Accept"}}
          content:
            application/json: {schema: {$ref: "#/components/schemas/Predictions"}}
            text/csv:
              schema: {type: string}
              example: "series_id,probability\\r\\n2000,0.97\\r\\n2001,0.12\\r\\n"
        "400": {$ref: "#/components/responses/BadRequest"}
        "404": {$ref: "#/components/responses/NotFound"}
        "408": {$ref: "#/components/responses/RequestTimeout"}
        "413": {$ref: "#/components/responses/PayloadTooLarge"}
        "415": {$ref: "#/components/responses/UnsupportedMediaType"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    files = require_files(request, PREDICTION_FILES, streamed=("raw_data",))
    answer = _prediction_type()
    params = parse_prediction_params(files["params"].payload)
    models = _state().models
    version, layout, label = params.version, params.layout, Columns.label
    if layout != LONG:  # wide, or unsaid: what the pipeline was trained on decides
        report = models.metadata(params.pipeline_id, version)
        version = report["version"]  # the same version below, whatever moves meanwhile
        trained = report.get("featureEngParams") or {}
        layout = layout or trained.get("layout") or LONG
        label = trained.get("label") or label
    classifier = models.get(params.pipeline_id, version)
    # The first batch before any byte is sent: what fails, fails with its error answer.
    count, first, batches = run_blocking(
        _first_batch, classifier, files.pop("raw_data"),
        current_app.config["MAX_PREDICTION_SERIES"], layout, label)
    csv_type = "text/csv; charset=utf-8; header=present"
    if count == 1:
        response = (Response(scores_csv(first, classifier.classes_), content_type=csv_type)
                    if answer == "csv" else jsonify(first))
    else:  # a large batch: each part goes out as it is computed
        parts = (_streamed_csv(first, batches, classifier.classes_) if answer == "csv"
                 else _streamed_json(first, batches))
        response = Response(stream_with_context(parts),
                            content_type=csv_type if answer == "csv" else "application/json")
    response.vary.add("Accept")
    return response


def read_prediction_upload(classifier, upload, max_series: int, layout: str = LONG,
                           label: str = Columns.label):
    """An uploaded ``raw_data`` file for ``classifier`` to score (the API's and the
    dashboard's prediction: every format and limit of the upload applies)."""
    columns = replace(classifier.features_.input_columns(), label=label)
    return read_raw_data(**upload.as_args(), columns=columns, field="raw_data",
                         max_series=max_series, layout=layout)


def predict_upload(classifier, upload, max_series: int, layout: str = LONG,
                   label: str = Columns.label) -> dict:
    """``classifier``'s scores for an uploaded ``raw_data`` file."""
    return classifier.scores(read_prediction_upload(classifier, upload, max_series, layout,
                                                    label))


def _first_batch(classifier, upload, max_series: int, layout: str, label: str):
    """(how many batches the upload makes, the first one's scores, the rest to come)."""
    count, batches = classifier.scores_in_batches(
        read_prediction_upload(classifier, upload, max_series, layout, label))
    return count, next(batches), batches


def _rest(batches):
    """The batches after the first, each computed off the event loop."""
    while (scores := run_blocking(next, batches, None)) is not None:
        yield scores


def _streamed_json(first: dict, batches):
    """One JSON object, written a batch of series at a time."""
    encode = current_app.json.dumps
    opened = False
    for scores in itertools.chain([first], _rest(batches)):
        if scores:
            yield ("," if opened else "{") + encode(scores)[1:-1]
            opened = True
    yield "}" if opened else "{}"


def _streamed_csv(first: dict, batches, classes):
    """The CSV of ``scores_csv``, written a batch of series at a time (one header)."""
    yield scores_csv(first, classes)
    for scores in _rest(batches):
        yield scores_csv(scores, classes, header=False)


def _prediction_type() -> str:
    """``json`` or ``csv``: the ``format`` query parameter or form field, else the Accept
    header (JSON unless CSV is preferred), so the blog post's client gets JSON as always."""
    asked = [v for v in (request.args.get("format"), request.form.get("format")) if v is not None]
    if asked:
        named = {check(OneOf(PREDICTION_TYPES), value, "format") for value in asked}
        if len(named) > 1:
            raise BadRequest("The query and the form ask for different formats; give one "
                             "'format' (json or csv).")
        return named.pop()
    best = request.accept_mimetypes.best_match(list(PREDICTION_TYPES.values()),
                                               default=PREDICTION_TYPES["json"])
    return "csv" if best == PREDICTION_TYPES["csv"] else "json"


def scores_csv(scores: dict, classes, header: bool = True) -> str:
    """Predictions as CSV: ``series_id,probability`` (two classes), or ``series_id`` and a
    column per class; floats written to the last digit, a missing score as an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out)  # RFC 4180: CRLF line ends, quotes where needed
    binary = len(classes) == 2
    names = [str(c) for c in classes]
    if header:
        writer.writerow(["series_id", "probability"] if binary else ["series_id", *names])
    for series_id, score in scores.items():
        cells = [score] if binary else [score.get(name) for name in names]
        writer.writerow([series_id, *("" if v is None or v != v else repr(float(v))
                                      for v in cells)])
    return out.getvalue()


@bp.get("/models")
def list_models():
    """Every pipeline, with its current version's summary.
    ---
    get:
      operationId: listModels
      summary: List the stored pipelines (their current versions)
      responses:
        "200":
          description: Pipeline id -> summary; a damaged one has unreadable true.
          content: {application/json: {schema: {$ref: "#/components/schemas/Models"}}}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    return jsonify({pid: _summary(meta) for pid, meta in _state().models.list().items()})


def _summary(meta: dict) -> dict:
    if meta.get("unreadable"):
        return meta
    return {k: meta.get(k) for k in SUMMARY_FIELDS}


@bp.get("/models/<pipeline_id>")
def show_model(pipeline_id: str):
    """The full training report of one pipeline's current version.
    ---
    get:
      operationId: showModel
      summary: The training report of a pipeline's current version
      parameters:
        - {in: path, name: pipeline_id, required: true, schema: {type: string}}
      responses:
        "200":
          description: The training report.
          content: {application/json: {schema: {$ref: "#/components/schemas/TrainingReport"}}}
        "404": {$ref: "#/components/responses/NotFound"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    return jsonify(_state().models.metadata(pipeline_id))


@bp.get("/models/<pipeline_id>/export")
def export_model(pipeline_id: str):
    """Download a pipeline version as a signed archive that loads locally.
    ---
    get:
      operationId: exportModel
      summary: A pipeline version as a signed zip (model, report, card, code)
      description: >
        The zip holds manifest.json (each file's SHA-256, the pipeline's id, version, trainer
        and libraries), manifest.sig (the service's Ed25519 signature of the manifest; the
        public key is at GET /export-key), model.pkl (the pickled classifier), report.json,
        card.md and pipeline.py (the model's scikit-learn code). automl.export.load(path,
        trust=key) verifies it, then loads it. Its owner's key (train), or an admin key: a
        model can hold its training data (k-neighbours, support vectors).
      parameters:
        - {in: path, name: pipeline_id, required: true, schema: {type: string}}
        - {in: query, name: version, required: false,
           schema: {type: integer, minimum: 1, maximum: 1000000},
           description: "a version (default: the current one)"}
      responses:
        "200":
          description: The archive, as an attachment automl-<id>-v<version>.zip.
          headers:
            Content-Disposition: {schema: {type: string}}
            X-Export-Key-Id: {schema: {type: string}, description: "the signing key's id"}
          content:
            application/zip: {schema: {type: string, format: binary}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "404": {$ref: "#/components/responses/NotFound"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    from . import export

    version = _query_version()
    models = _state().models
    principal = require_owner_or_admin(models.owner(pipeline_id), f"pipeline '{pipeline_id}'",
                                       "export")
    report, payload = models.artifact(pipeline_id, version)
    classifier = models.get(pipeline_id, report["version"])
    archive, manifest = run_blocking(
        export.build, pipeline_id=pipeline_id, report=report, payload=payload,
        classifier=classifier, signer=_signer(), exported_by=principal.name)
    name = f"automl-{pipeline_id}-v{report['version']}.zip"
    return Response(archive, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Export-Key-Id": manifest["signature"]["keyId"]})


@bp.get("/models/<pipeline_id>/card")
def model_card(pipeline_id: str):
    """A pipeline version's model card, in Markdown.
    ---
    get:
      operationId: modelCard
      summary: The model card of a pipeline version (Markdown)
      description: >
        Data, engine and features, the model, cross-validation with standard errors, the
        search, who trained it and when, library versions; fields an older report lacks are
        said to be not recorded. The same card is in the export archive.
      parameters:
        - {in: path, name: pipeline_id, required: true, schema: {type: string}}
        - {in: query, name: version, required: false,
           schema: {type: integer, minimum: 1, maximum: 1000000},
           description: "a version (default: the current one)"}
      responses:
        "200":
          description: The card.
          content:
            text/markdown: {schema: {type: string}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "404": {$ref: "#/components/responses/NotFound"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    from . import export, model_card as cards

    report, payload = _state().models.artifact(pipeline_id, _query_version())
    card = cards.render(report, libraries=export.service_libraries(),
                        trained_with={"scikit-learn": export.pickled_sklearn_version(payload)})
    return Response(card, content_type="text/markdown; charset=utf-8")


@bp.get("/export-key")
def export_key():
    """The public key that export archives are signed with.
    ---
    get:
      operationId: exportKey
      summary: The Ed25519 public key of export archives
      description: >
        Pass it to automl.export.load(path, trust=...). It is derived from the service's
        secret (AUTOML_SECRET_KEY): instances sharing the secret share it, and changing the
        secret changes it. Public: it can verify archives, not sign them.
      responses:
        "200":
          description: The key.
          content:
            application/json:
              schema:
                type: object
                required: [algorithm, publicKey, keyId]
                properties:
                  algorithm: {type: string, enum: [Ed25519]}
                  publicKey: {type: string, description: "ed25519:<base64 of the raw 32 bytes>"}
                  keyId: {type: string, description: "first 16 hex digits of its SHA-256"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    return jsonify(_signer().describe())


def _signer():
    signer = current_app.extensions.get("export_signer")
    if signer is None:
        from .export import Signer

        signer = current_app.extensions["export_signer"] = Signer.for_store(_state().models)
    return signer


def _query_version() -> int | None:
    """``?version=N``: a version number, or None for the current one."""
    if request.args.get("version") is None:
        return None
    return check(Whole(1, MAX_VERSION), _query_int("version", None), "version")


@bp.get("/jobs")
def list_jobs():
    """Training jobs, newest first, a page at a time.
    ---
    get:
      operationId: listJobs
      summary: List training jobs, newest first
      parameters:
        - {in: query, name: limit, required: false,
           schema: {type: integer, minimum: 1, maximum: 500, default: 50}}
        - {in: query, name: before, required: false, schema: {type: string},
           description: "a jobId: the page after it (from the Link header's next)"}
        - {in: query, name: state, required: false,
           schema: {type: string, enum: [queued, running, succeeded, failed, cancelled]}}
      responses:
        "200":
          description: A page of jobs; a Link header (rel=next) points to the next page.
          headers: {Link: {schema: {type: string}}}
          content:
            application/json:
              schema: {type: array, items: {$ref: "#/components/schemas/Job"}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    limit = check(PAGE_LIMIT, _query_int("limit", 50), "limit")
    before = request.args.get("before")
    if before is not None and not valid_job_id(before):
        raise BadRequest("'before' must be a jobId from this listing (letters and digits).")
    state = request.args.get("state")
    if state is not None:
        state = JobState(check(OneOf([s.value for s in JobState]), state, "state"))
    principal = current_principal()
    own = None if principal.can(PREDICT) else principal.name  # train-only keys: their own
    jobs, after = _state().jobs.list(limit, before, state, submitted_by=own)
    response = jsonify([{k: entry.to_json().get(k) for k in JOB_SUMMARY_FIELDS}
                        if isinstance(entry, Job) else entry.to_json() for entry in jobs])
    if after is not None:
        query = f"limit={limit}&before={after}" + (f"&state={state.value}" if state else "")
        response.headers["Link"] = f'</jobs?{query}>; rel="next"'
    return response


def _query_int(name: str, default: int):
    """A whole-number query parameter; anything else is handed on for the rule to refuse."""
    raw = request.args.get(name)
    if raw is None:
        return default
    return int(raw) if re.fullmatch(r"[+-]?[0-9]{1,9}", raw.strip()) else raw


@bp.get("/jobs/<job_id>")
def show_job(job_id: str):
    """One job: its state, progress, and report or error.
    ---
    get:
      operationId: showJob
      summary: One training job
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
      responses:
        "200":
          description: The job.
          content: {application/json: {schema: {$ref: "#/components/schemas/Job"}}}
        "404": {$ref: "#/components/responses/NotFound"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    job = _state().jobs.get(job_id)
    if not current_principal().can(PREDICT):
        require_owner_or_admin(job.submitted_by, f"job {job_id}", "see")
    return jsonify(job.to_json())


@bp.delete("/jobs/<job_id>")
def cancel_job(job_id: str):
    """Cancel a queued or running job.
    ---
    delete:
      operationId: cancelJob
      summary: Cancel a queued or running job
      parameters:
        - {in: path, name: job_id, required: true, schema: {type: string}}
      responses:
        "202":
          description: Cancelled (queued) or being stopped (running).
          content: {application/json: {schema: {$ref: "#/components/schemas/Job"}}}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {$ref: "#/components/responses/Conflict"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    state = _state()
    principal = require_owner_or_admin(state.jobs.get(job_id).submitted_by, f"job {job_id}",
                                       "cancel")
    job = state.jobs.cancel(job_id)
    state.audit.record(principal.name, "cancelled", f"job {job_id}", pipelineId=job.pipeline_id)
    return jsonify(job.to_json()), 202


@bp.get("/models/<pipeline_id>/versions")
def list_versions(pipeline_id: str):
    """Every version of a pipeline, oldest first, with its report and who made it.
    ---
    get:
      operationId: listVersions
      summary: The versions of a pipeline
      parameters:
        - {in: path, name: pipeline_id, required: true, schema: {type: string}}
      responses:
        "200":
          description: The versions; current true marks the one a bare id serves.
          content:
            application/json:
              schema: {type: array, items: {$ref: "#/components/schemas/TrainingReport"}}
        "404": {$ref: "#/components/responses/NotFound"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    return jsonify(_state().models.versions(pipeline_id))


@bp.post("/models/<pipeline_id>/rollback")
def rollback(pipeline_id: str):
    """Point the pipeline's current alias at an earlier version.
    ---
    post:
      operationId: rollback
      summary: Serve an earlier version of a pipeline again
      description: >
        Without a body, the finished version before the current one; with the JSON body
        {"version": N}, that version. Its owner's key, or an admin key.
      parameters:
        - {in: path, name: pipeline_id, required: true, schema: {type: string}}
      requestBody:
        required: false
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              properties: {version: {type: integer, minimum: 1, maximum: 1000000}}
      responses:
        "200":
          description: The report of the version now current.
          content: {application/json: {schema: {$ref: "#/components/schemas/TrainingReport"}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "404": {$ref: "#/components/responses/NotFound"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    models = _state().models
    principal = require_owner_or_admin(models.owner(pipeline_id), f"pipeline '{pipeline_id}'",
                                       "roll back")
    version = _json_version(request)
    previous = models.metadata(pipeline_id)["version"]
    current = models.rollback(pipeline_id, version)
    _state().audit.record(principal.name, "rolled_back", f"pipeline {pipeline_id}",
                          fromVersion=previous, toVersion=current["version"])
    return jsonify(current)


def _json_version(request) -> int | None:
    """``{"version": N}`` from a JSON body, or None for no body."""
    if not request.get_data(cache=True):
        return None
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or set(body) - {"version"}:
        raise BadRequest('Send no body, or the JSON {"version": N} naming the version to serve.')
    return check(Whole(1, 1_000_000), body.get("version"), "version") if "version" in body \
        else None


@bp.delete("/models/<pipeline_id>/versions/<int:version>")
def delete_version(pipeline_id: str, version: int):
    """Delete one version of a pipeline (its owner's key, or an admin key).
    ---
    delete:
      operationId: deleteVersion
      summary: Delete one version of a pipeline
      parameters:
        - {in: path, name: pipeline_id, required: true, schema: {type: string}}
        - {in: path, name: version, required: true, schema: {type: integer}}
      responses:
        "200":
          description: Deleted; the current alias falls back to the newest version left.
          content: {application/json: {schema: {type: object}}}
        "404": {$ref: "#/components/responses/NotFound"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    models = _state().models
    principal = require_owner_or_admin(models.owner(pipeline_id), f"pipeline '{pipeline_id}'",
                                       "delete a version of")
    models.delete_version(pipeline_id, version)
    _state().audit.record(principal.name, "deleted_version", f"pipeline {pipeline_id}",
                          version=version)
    return jsonify(pipelineId=pipeline_id, version=version, deleted=True)


@bp.delete("/models/<pipeline_id>")
def delete_model(pipeline_id: str):
    """Delete a pipeline: every version and artifact (its owner's key, or an admin key).
    ---
    delete:
      operationId: deleteModel
      summary: Delete a pipeline and all its versions
      parameters:
        - {in: path, name: pipeline_id, required: true, schema: {type: string}}
      responses:
        "200":
          description: Deleted.
          content: {application/json: {schema: {type: object}}}
        "404": {$ref: "#/components/responses/NotFound"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    models = _state().models
    principal = require_owner_or_admin(models.owner(pipeline_id), f"pipeline '{pipeline_id}'",
                                       "delete")
    models.delete(pipeline_id)
    _state().audit.record(principal.name, "deleted", f"pipeline {pipeline_id}")
    return jsonify(pipelineId=pipeline_id, deleted=True)


@bp.get("/audit")
def audit():
    """Who trained, replaced, rolled back, deleted or cancelled what, and when (admin).
    ---
    get:
      operationId: audit
      summary: The audit trail, newest first
      parameters:
        - {in: query, name: limit, required: false,
           schema: {type: integer, minimum: 1, maximum: 500, default: 100}}
        - {in: query, name: before, required: false, schema: {type: integer, minimum: 1},
           description: "an event number: the page after it (from the Link header's next)"}
      responses:
        "200":
          description: A page of events; a Link header (rel=next) points to the next page.
          headers: {Link: {schema: {type: string}}}
          content:
            application/json:
              schema: {type: array, items: {type: object}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "503": {$ref: "#/components/responses/ServiceUnavailable"}
        default: {$ref: "#/components/responses/Error"}
    """
    limit = check(PAGE_LIMIT, _query_int("limit", 100), "limit")
    before = request.args.get("before")
    before = None if before is None else check(Whole(1, 10**15), _query_int("before", 0), "before")
    events, after = _state().audit.list(limit, before)
    response = jsonify(events)
    if after is not None:
        response.headers["Link"] = f'</audit?limit={limit}&before={after}>; rel="next"'
    return response


@bp.get("/health")
def health():
    """Whether the service answers.
    ---
    get:
      operationId: health
      summary: Whether the service answers
      responses:
        "200":
          description: It does; auth says whether API keys are required (keys) or not (open).
          content: {application/json: {schema: {$ref: "#/components/schemas/Health"}}}
    """
    auth = current_app.extensions.get("auth")
    return jsonify(status="ok", auth=auth.mode if auth else "open")


@bp.get("/openapi.json")
def openapi():
    """This contract.
    ---
    get:
      operationId: openapi
      summary: The OpenAPI 3.1 contract of this service
      responses:
        "200":
          description: The contract.
          content: {application/json: {schema: {type: object}}}
    """
    spec = current_app.extensions.get("openapi")
    if spec is None:
        spec = current_app.extensions["openapi"] = build_spec(current_app)
    return jsonify(spec)


def _accepted(job: Job):
    return jsonify(job.to_json()), 202, {"Location": f"/jobs/{job.job_id}",
                                         "Preference-Applied": "respond-async"}


def _wait(job: Job) -> Job | None:
    """The job once it ends, or None once the client has gone or the wait's limit passed."""
    environ = request.environ
    give_up = time.monotonic() + current_app.config["MAX_SYNC_WAIT_MINS"] * 60
    return _state().jobs.wait(job.job_id, WAIT_POLL_S, keep_waiting=lambda: (
        time.monotonic() < give_up and not client_gone(environ)))


def _prefers_async() -> bool:
    """RFC 7240: ``Prefer: respond-async`` (among other preferences, in any case)."""
    preferences = ",".join(request.headers.getlist("Prefer")).lower()
    return "respond-async" in (p.strip().split(";")[0] for p in preferences.split(","))
