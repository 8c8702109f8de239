"""What a careless or hostile client sends, through the API (issue 12's findings, one by one).

Every refusal is a 4xx in the one JSON error shape, with a message a person can act on and
no longer than a short excerpt of what was sent; nothing is queued or stored by a refused
request; no value becomes an unbounded amount of work.
"""
from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pandas as pd
import pytest

from automl import create_app
from automl.config import ConfigurationError
from automl.store import Keys
from conftest import FAST_PARAMS, post

MESSAGE_MAX_CHARS = 700


def train(client, sample, params=FAST_PARAMS, **overrides):
    uploads = {"raw_data": sample["data_train"], "labels": sample["label_train"], "params": params}
    uploads.update(overrides)
    return post(client, "/train_model", **uploads)


def refused(response, status=400, *words):
    assert response.status_code == status, response.data[:500]
    body = json.loads(response.data)
    assert set(body) == {"error", "message"}, body
    assert len(response.data) < MESSAGE_MAX_CHARS + 200, len(response.data)
    for word in words:
        assert word in body["message"], body["message"]
    return body


def strict_json(response):
    """The body as JSON that a strict parser accepts (no NaN or Infinity)."""
    def no_constants(name):
        raise AssertionError(f"{name} is not JSON")
    return json.loads(response.data, parse_constant=no_constants)


# -- 2. every job has an end --------------------------------------------------------------------


def test_a_fixed_model_job_is_stopped_at_its_budget(client, sample):
    params = b"""
extract_features: {engine: minirocket}
model_training: {model: random_forest, max_time_mins: 0.15, cv: 5,
                 model_args: {n_estimators: 5000}}
"""  # 6 fits of 5,000 trees: about a minute on 2 cores
    started = time.monotonic()
    body = refused(train(client, sample, params=params), 400, "max_time_mins")
    took = time.monotonic() - started
    assert body["error"] == "budget_exceeded"
    assert took < 9 + 15 + 10, took  # budget + margin + the time to notice and stop
    job = client.get("/jobs").json[0]
    assert job["state"] == "failed" and job["error"]["error"] == "budget_exceeded"
    assert client.get("/models").json == {}


# -- 3. every number has a range ----------------------------------------------------------------


@pytest.mark.parametrize("document, key", [
    (b"model_training: {model_args: {n_jobs: 8}}", "model_training.model_args.n_jobs"),
    (b"model_training: {model_args: {n_jobs: 1000}}", "model_training.model_args.n_jobs"),
    (b"extract_features: {n_jobs: 1000}", "extract_features.n_jobs"),
    (b"model_training: {model_args: {max_time_mins: .inf}}", "max_time_mins"),
    (b"model_training: {model_args: {max_time_mins: .nan}}", "max_time_mins"),
    (b"model_training: {model_args: {max_time_mins: 1e9}}", "max_time_mins"),
    (b"model_training: {model_args: {random_state: 18446744073709551616}}", "random_state"),
    (b"model_training: {model_args: {population_size: 100000000}}", "population_size"),
    (b"model_training: {model: extra_trees, model_args: {n_estimators: 1000000000}}", "n_estimators"),
    (b"model_training: {model: hist_gradient_boosting, model_args: {max_iter: 100000000}}", "max_iter"),
    (b"model_training: {model: k_neighbors, model_args: {n_neighbors: 1000000}}", "n_neighbors"),
    (b"model_training: {model: random_forest, model_args: {n_jobs: 4}}", "n_jobs"),
    (b"model_training: {model: svc, max_time_mins: 100000}", "max_time_mins"),
])
def test_every_number_has_a_range(client, sample, document, key):
    body = refused(train(client, sample, params=document), 400, key)
    assert body["error"] == "invalid_parameters"
    assert client.get("/jobs").json == []


def test_job_records_are_strict_json(client, sample):
    accepted = train(client, sample, params=FAST_PARAMS + b"async: true\n")
    assert accepted.status_code == 202
    job = strict_json(client.get(f"/jobs/{accepted.json['jobId']}"))
    assert job["budgetSeconds"] == 600.0  # a fixed model's default budget: 10 minutes
    strict_json(client.get("/jobs"))


# -- 4. parameter files that cost more to reject than to read -----------------------------------


ALIAS_BOMB = b"""a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
pipeline_id: [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


@pytest.mark.parametrize("document, words", [
    (ALIAS_BOMB, ["aliases"]),
    (b"pipeline_id: " + b"[" * 1000 + b"]" * 1000, ["nested"]),
    (b"model_training: {model_args: {generations: " + b"9" * 5000 + b"}}", ["number"]),
    (b"pipeline_id: 1\npipeline_id: 2\n", ["twice", "pipeline_id"]),
    (b"pipeline_id: " + b"x" * 100_000, ["larger than"]),
    (b"pipeline_id: !!python/object/apply:os.system ['true']", ["tag"]),
    (b"pipeline_id: 1:30", ["pipeline_id"]),
])
def test_hostile_parameter_files_are_refused_cheaply_with_a_short_message(
        client, sample, document, words):
    started = time.monotonic()
    refused(train(client, sample, params=document), 400, *words)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("written", ["010", "0x1F", "007", "1.50"])
def test_a_pipeline_id_is_used_exactly_as_written(client, sample, written):
    trained = train(client, sample, params=FAST_PARAMS + f"pipeline_id: {written}\n".encode())
    assert trained.status_code == 200, trained.json
    assert str(trained.json["modelId"]) == written
    assert list(client.get("/models").json) == [written]
    assert post(client, "/serve_prediction", raw_data=sample["data_test"],
                params=f"pipeline_id: {written}").status_code == 200


# -- 5. what can be checked at submission is checked there --------------------------------------


@pytest.mark.parametrize("settings, words", [
    ("{quantile: [{nope: 1}]}", ["quantile", "q"]),
    ("{agg_autocorrelation: [{f_agg: save, maxlag: 5}]}", ["agg_autocorrelation", "mean, median, var"]),
    ("{binned_entropy: [{max_bins: 1e10}]}", ["binned_entropy", "max_bins"]),
    ("{cwt_coefficients: [{widths: [2, 5], coeff: 1, w: 7}]}", ["cwt_coefficients"]),
    ("{energy_ratio_by_chunks: [{num_segments: 2, segment_focus: 5}]}", ["energy_ratio_by_chunks"]),
    ("{mean: [{x: 1}]}", ["takes none"]),
    ("{not_a_calculator: null}", ["not_a_calculator"]),
])
def test_tsfresh_calculator_parameters_are_checked_before_queueing(client, sample, settings, words):
    params = f"extract_features: {{default_fc_parameters: {settings}}}\n".encode() + FAST_PARAMS.split(
        b"\n", 2)[2]
    refused(train(client, sample, params=params), 400, "default_fc_parameters", *words)
    assert client.get("/jobs").json == []


def test_a_value_column_tsfresh_cannot_name_is_refused_at_once(client, sample):
    refused(train(client, sample, params=b"extract_features: {column_value: m__v}"), 400,
            "column_value", "__")


# -- 6. a pipeline is stored only once it has predicted ------------------------------------------


def test_a_model_that_cannot_predict_fails_its_job_and_the_old_pipeline_stays(client, sample):
    assert train(client, sample, params=FAST_PARAMS + b"pipeline_id: p\n").status_code == 200
    before = post(client, "/serve_prediction", raw_data=sample["data_test"], params="pipeline_id: p")
    knn = (b"pipeline_id: p\nextract_features: {default_fc_parameters: minimal}\n"
           b"model_training: {model: k_neighbors, model_args: {n_neighbors: 1000}}\n")
    body = refused(train(client, sample, params=knn), 400, "n_neighbors")
    assert body["error"] == "training_failed"
    after = post(client, "/serve_prediction", raw_data=sample["data_test"], params="pipeline_id: p")
    assert after.status_code == 200 and after.json == before.json
    assert [v for v in client.get("/models").json] == ["p"]


# -- 7. every engine treats channels alike ------------------------------------------------------


def _two_channels(n=16, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for sid in range(n):
        for channel in ("x", "y"):
            period = 6 if (sid % 2 and channel == "y") else 12
            rows += [(f"s{sid}", channel, t, np.sin(2 * np.pi * t / period) + 0.2 * rng.normal())
                     for t in range(40)]
    raw = pd.DataFrame(rows, columns=["example_id", "axis", "time", "measurement"])
    labels = pd.DataFrame({"example_id": [f"s{i}" for i in range(n)], "label": [i % 2 for i in range(n)]})
    return raw, labels


@pytest.mark.parametrize("engine", ["tsfresh", "minirocket"])
def test_prediction_channels_must_match_the_training_ones(client, engine):
    raw, labels = _two_channels()
    params = (f"pipeline_id: m\nextract_features: {{engine: {engine}, column_kind: axis, "
              f"column_sort: time, default_fc_parameters: minimal}}\n"
              f"model_training: {{model: extra_trees, model_args: {{n_estimators: 30}}, cv: 3}}\n")
    trained = post(client, "/train_model", raw_data=raw.to_csv(index=False),
                   labels=labels.to_csv(index=False), params=params)
    assert trained.status_code == 200, trained.json

    def predict(frame):
        return post(client, "/serve_prediction", raw_data=frame.to_csv(index=False),
                    params="pipeline_id: m")

    assert len(predict(raw).json) == 16
    refused(predict(raw[raw["axis"] == "x"]), 400, "channel 'y'")
    refused(predict(raw.assign(axis=raw["axis"].replace("y", "z"))), 400, "'z'", "not trained on")
    one_short = raw[~((raw["example_id"] == "s3") & (raw["axis"] == "y"))]
    refused(predict(one_short), 400, "'s3'", "channel 'y'")


# -- 8. one bad record affects only itself -----------------------------------------------------


def test_one_damaged_pipeline_record_spares_the_listing_and_the_others(app, client, sample):
    train(client, sample, params=FAST_PARAMS + b"pipeline_id: good\n")
    train(client, sample, params=FAST_PARAMS + b"pipeline_id: bad\n")
    app.extensions["state"].backend.put(Keys.pipeline("bad"), b"\x00 not a record")
    listing = client.get("/models")
    assert listing.status_code == 200
    assert listing.json["bad"]["unreadable"] is True and "modelType" in listing.json["good"]
    body = refused(post(client, "/serve_prediction", raw_data=sample["data_test"],
                        params="pipeline_id: bad"), 500)
    assert body["error"] == "pipeline_unreadable"
    assert post(client, "/serve_prediction", raw_data=sample["data_test"],
                params="pipeline_id: good").status_code == 200


def test_a_deleted_artifact_is_listed_as_unreadable_not_as_a_pipeline(app, client, sample):
    train(client, sample, params=FAST_PARAMS + b"pipeline_id: gone\n")
    backend = app.extensions["state"].backend
    backend.delete(json.loads(backend.get(Keys.version("gone", 1)))["artifact"])
    assert client.get("/models").json["gone"]["unreadable"] is True
    refused(post(client, "/serve_prediction", raw_data=sample["data_test"],
                 params="pipeline_id: gone"), 500, "missing")


def test_one_damaged_job_record_spares_the_listing_and_the_queue(app, client, sample):
    backend = app.extensions["state"].backend
    backend.put("jobs/0000000000deadbeef", b"garbage")
    backend.put("jobs-active/0000000000deadbeef", b"")
    listing = client.get("/jobs")
    assert listing.status_code == 200 and listing.json[0]["unreadable"] is True
    assert train(client, sample).status_code == 200  # the runner still runs new jobs


def test_a_lost_secret_key_with_pipelines_stored_is_refused_at_start(tmp_path):
    settings = {"TESTING": True, "MODEL_DIR": str(tmp_path), "RUN_JOBS": False}
    create_app(settings).extensions["state"].models.save({"a": "pipeline"}, {}, "1")
    (tmp_path / "secret_key").unlink()  # generated at the first start; now lost
    with pytest.raises(ConfigurationError) as refused_start:
        create_app(settings)
    assert "AUTOML_SECRET_KEY" in str(refused_start.value)


# -- 9. growth without bound -------------------------------------------------------------------


def test_a_full_queue_answers_429_with_retry_after(tmp_path, sample):
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path), "SECRET_KEY": "s",
                      "RUN_JOBS": False, "MAX_QUEUED_JOBS": 2})
    client = app.test_client()
    for _ in range(2):
        assert train(client, sample, params=FAST_PARAMS + b"async: true\n").status_code == 202
    full = train(client, sample, params=FAST_PARAMS + b"async: true\n")
    body = refused(full, 429, "AUTOML_MAX_QUEUED_JOBS")
    assert body["error"] == "queue_full" and int(full.headers["Retry-After"]) > 0
    assert len(client.get("/jobs").json) == 2


def test_the_job_listing_is_paginated(tmp_path, sample):
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path), "SECRET_KEY": "s",
                      "RUN_JOBS": False})
    client = app.test_client()
    ids = [train(client, sample, params=FAST_PARAMS + b"async: true\n").json["jobId"]
           for _ in range(5)]
    page = client.get("/jobs?limit=2")
    assert [j["jobId"] for j in page.json] == ids[:2:-1]
    next_url = page.headers["Link"].split(">")[0].lstrip("<")
    assert [j["jobId"] for j in client.get(next_url).json] == [ids[2], ids[1]]
    for bad in ("limit=0", "limit=501", "limit=abc", "before=../x", "state=exploded"):
        refused(client.get(f"/jobs?{bad}"), 400)


def test_a_prediction_has_a_series_limit(app, client, sample):
    train(client, sample)
    app.config["MAX_PREDICTION_SERIES"] = 100
    body = refused(post(client, "/serve_prediction", raw_data=sample["data_test"],
                        params="pipeline_id: 1"), 413, "150 series", "AUTOML_MAX_PREDICTION_SERIES")
    assert body["error"] == "payload_too_large"


# -- 11. messages a person can act on ----------------------------------------------------------


def test_messages_show_plain_values_and_real_examples(client, sample):
    one_class = '{"example_id": {"0": 1000, "1": 1001}, "label": {"0": 0, "1": 0}}'
    body = refused(train(client, sample, labels=one_class), 400, "class 0")
    assert "np." not in body["message"] and "int64" not in body["message"]
    unmatched = '{"example_id": {"0": 1, "1": 2}, "label": {"0": 0, "1": 1}}'
    body = refused(train(client, sample, labels=unmatched), 400, "'1', '2'")
    assert "none" not in body["message"]


def test_json_sent_as_csv_is_read_as_json(client, sample):
    trained = client.post("/train_model", content_type="multipart/form-data", data={
        "raw_data": (io.BytesIO(sample["data_train"]), "data.csv", "text/csv"),
        "labels": (io.BytesIO(sample["label_train"]), "labels.csv", "text/csv"),
        "params": (io.BytesIO(FAST_PARAMS), "params.yml")})
    assert trained.status_code == 200, trained.json
    broken = client.post("/serve_prediction", content_type="multipart/form-data", data={
        "raw_data": (io.BytesIO(b'{"example_id": {"0": 1'), "data.csv", "text/csv"),
        "params": (io.BytesIO(b"pipeline_id: 1"), "p.yml")})
    refused(broken, 400, "looks like JSON", "text/csv")


def test_every_upload_value_is_quoted_as_a_short_excerpt(client, sample):
    huge_id = "x" * 50_000
    raw = json.dumps({"example_id": {"0": huge_id}, "measurement": {"0": "not a number " * 1000}})
    refused(train(client, sample, raw_data=raw), 400, "non-numeric")


def test_a_file_part_sent_twice_is_refused(client, sample):
    answer = client.post("/serve_prediction", content_type="multipart/form-data", data={
        "raw_data": [(io.BytesIO(sample["data_test"]), "a.json"),
                     (io.BytesIO(sample["data_test"]), "b.json")],
        "params": (io.BytesIO(b"pipeline_id: 1"), "p.yml")})
    refused(answer, 400, "more than once")


# -- one job model, one error path ----------------------------------------------------------------


def test_a_synchronous_training_cancelled_while_queued_answers_409(tmp_path, sample):
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path), "SECRET_KEY": "s",
                      "RUN_JOBS": False})
    answers = []
    waiting = threading.Thread(target=lambda: answers.append(train(app.test_client(), sample)))
    waiting.start()
    client = app.test_client()
    deadline = time.monotonic() + 30
    while not client.get("/jobs").json:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.delete(f"/jobs/{client.get('/jobs').json[0]['jobId']}").status_code == 202
    waiting.join(30)
    body = refused(answers[0], 409, "Cancelled")
    assert body["error"] == "cancelled"
