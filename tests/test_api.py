"""The REST API through Flask's test client: the happy paths and every error a client can cause."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import FAST_PARAMS, post

TINY_TPOT = b"""
pipeline_id: searched
extract_features: {default_fc_parameters: minimal}
model_training:
  model: tpot
  cv: 3
  model_args: {generations: 2, population_size: 4, max_time_mins: 0.75, random_state: 1, n_jobs: 1}
"""


def train(client, sample, params=FAST_PARAMS, **overrides):
    uploads = {"raw_data": sample["data_train"], "labels": sample["label_train"], "params": params}
    uploads.update(overrides)
    return post(client, "/train_model", **uploads)


def test_train_then_predict_then_list(client, sample, test_labels):
    trained = train(client, sample)
    assert trained.status_code == 200, trained.json
    report = trained.json
    assert report["modelId"] == 1
    assert report["trainShape"][0] == 50
    assert report["trainShape"][1] == len(report["selectedFeatures"]) > 0
    assert 0.5 < report["mean_cv_accuracy"] <= 1 and 0.5 < report["mean_cv_roc_auc"] <= 1
    assert "RandomForestClassifier" in report["modelType"]
    assert report["featureEngParams"]["default_fc_parameters"] == "minimal"
    assert report["classes"] == [0, 1] and report["positiveClass"] == 1
    assert report["trainTime"] > 0

    predicted = post(client, "/serve_prediction", raw_data=sample["data_test"],
                     params="pipeline_id: 1")
    assert predicted.status_code == 200
    scores = predicted.json
    assert set(scores) == set(test_labels.index)
    assert all(0 <= p <= 1 for p in scores.values())
    assert roc_auc_score(test_labels[list(scores)], list(scores.values())) > 0.8

    listing = client.get("/models").json
    assert list(listing) == ["1"]
    assert listing["1"]["mean_cv_roc_auc"] == report["mean_cv_roc_auc"]
    assert "RandomForestClassifier" in listing["1"]["modelType"]
    assert client.get("/models/1").json["selectedFeatures"] == report["selectedFeatures"]
    assert client.get("/health").json == {"status": "ok", "auth": "open"}


def test_tpot_search_reports_what_it_tried(client, sample):
    trained = train(client, sample, params=TINY_TPOT)
    assert trained.status_code == 200, trained.json
    search = trained.json["search"]
    assert search["pipelinesEvaluated"] >= search["pipelinesScored"] >= 1
    assert search["bestScoreByFamily"] and all(0 <= s <= 1 for s in search["bestScoreByFamily"].values())
    assert trained.json["modelId"] == "searched"
    predicted = post(client, "/serve_prediction", raw_data=sample["data_test"],
                     params="pipeline_id: searched")
    assert predicted.status_code == 200 and len(predicted.json) == 150


def test_prediction_extracts_only_the_selected_features(app, client, sample):
    train(client, sample, params=FAST_PARAMS.replace(b"minimal", b"efficient"))
    classifier = app.extensions["state"].models.get("1")
    wanted = classifier.features_.kind_to_fc_parameters_
    report = client.get("/models/1").json
    assert report["featuresExtracted"] > len(report["selectedFeatures"])
    assert sum(len(v) if isinstance(v, list) else 1 for calcs in wanted.values()
               for v in calcs.values()) <= len(report["selectedFeatures"])


def test_csv_and_records_uploads_give_the_same_scores(client, sample):
    train(client, sample)
    raw = pd.read_json(io.BytesIO(sample["data_test"]), precise_float=True)
    as_json = post(client, "/serve_prediction", raw_data=sample["data_test"], params="pipeline_id: 1")
    as_csv = post(client, "/serve_prediction", raw_data=raw.to_csv(index=False), params="pipeline_id: 1")
    as_records = post(client, "/serve_prediction", raw_data=raw.to_json(orient="records"),
                      params="pipeline_id: 1")
    assert as_csv.json == pytest.approx(as_json.json)
    assert as_records.json == pytest.approx(as_json.json)


def test_ragged_series_with_gaps_and_infinities_train_and_predict(client, sample):
    raw = pd.read_json(io.BytesIO(sample["data_train"]), precise_float=True)
    raw = raw[raw.groupby("example_id").cumcount() < 90 + raw["example_id"] % 50].copy()  # 90..139
    raw.loc[raw.index[::17], "measurement"] = np.nan
    raw.loc[raw.index[5::29], "measurement"] = np.inf
    trained = train(client, sample, raw_data=raw.to_json())
    assert trained.status_code == 200, trained.json
    predicted = post(client, "/serve_prediction", raw_data=raw.to_json(), params="pipeline_id: 1")
    assert predicted.status_code == 200 and len(predicted.json) == 50


def test_multiclass_multichannel_string_labels(client):
    from aeon.datasets import load_classification

    X, y = load_classification("BasicMotions", split="train")  # 40 series, 6 channels, 4 classes
    rows = [(f"s{i}", f"ch{c}", t, float(v)) for i, series in enumerate(X)
            for c, channel in enumerate(series) for t, v in enumerate(channel)]
    raw = pd.DataFrame(rows, columns=["id", "axis", "time", "value"]).sample(frac=1, random_state=0)
    labels = pd.DataFrame({"id": [f"s{i}" for i in range(len(y))], "activity": y})
    params = b"""
pipeline_id: motions
extract_features: {column_id: id, column_value: value, column_sort: time, column_kind: axis,
                   column_label: activity, default_fc_parameters: minimal}
model_training: {model: extra_trees, model_args: {n_estimators: 100, random_state: 0}, cv: 3}
"""
    trained = post(client, "/train_model", raw_data=raw.to_csv(index=False),
                   labels=labels.to_csv(index=False), params=params)
    assert trained.status_code == 200, trained.json
    assert trained.json["classes"] == sorted(set(y))
    assert trained.json["mean_cv_accuracy"] > 0.7
    predicted = post(client, "/serve_prediction", raw_data=raw.to_csv(index=False),
                     params="pipeline_id: motions").json
    assert set(predicted["s0"]) == set(y)
    assert sum(predicted["s0"].values()) == pytest.approx(1)
    assert max(predicted["s0"], key=predicted["s0"].get) == y[0]


def test_positive_class_can_be_named(client, sample, test_labels):
    params = FAST_PARAMS.replace(b"cv: 3}", b"cv: 3, positive_class: 0}")
    assert train(client, sample, params=params).json["positiveClass"] == 0
    scores = post(client, "/serve_prediction", raw_data=sample["data_test"], params="pipeline_id: 1").json
    assert roc_auc_score(test_labels[list(scores)] == 0, list(scores.values())) > 0.8


def test_retraining_an_id_replaces_it_and_a_failed_retrain_keeps_it(client, sample):
    first = train(client, sample, params=FAST_PARAMS + b"pipeline_id: 5\n").json
    second = train(client, sample, params=FAST_PARAMS.replace(b"50", b"20") + b"pipeline_id: 5\n")
    assert second.status_code == 200 and second.json["createdAt"] >= first["createdAt"]
    assert "n_estimators=20" in client.get("/models/5").json["modelType"]
    one_class = '{"example_id": {"0": 1000}, "label": {"0": 1}}'
    failed = train(client, sample, params=FAST_PARAMS + b"pipeline_id: 5\n", labels=one_class)
    assert failed.status_code == 400
    assert "n_estimators=20" in client.get("/models/5").json["modelType"]
    assert list(client.get("/models").json) == ["5"]


# ---------------------------------------------------------------------------------------------
# Errors: one JSON shape, a 4xx that says what is wrong, and nothing stored.

def assert_error(response, status, *words):
    assert response.status_code == status, response.data
    body = response.get_json()
    assert set(body) == {"error", "message"}
    assert "Traceback" not in body["message"]
    for word in words:
        assert word in body["message"], body["message"]
    return body


@pytest.mark.parametrize("missing", ["raw_data", "labels", "params"])
def test_missing_file_is_named(client, sample, missing):
    uploads = {"raw_data": sample["data_train"], "labels": sample["label_train"], "params": FAST_PARAMS}
    del uploads[missing]
    assert_error(post(client, "/train_model", **uploads), 400, missing)


@pytest.mark.parametrize("field, body, words", [
    ("raw_data", b"", ["raw_data"]),
    ("raw_data", b"{not json", ["raw_data"]),
    ("raw_data", b'{"example_id": {"0": 1}, "value": {"0": 1.0}}', ["measurement", "column_value"]),
    ("raw_data", b'{"example_id": {"0": 1}, "measurement": {"0": "abc"}}', ["measurement"]),
    ("labels", b"", ["labels"]),
    ("labels", b'{"example_id": {"0": 1}, "class": {"0": 1}}', ["label", "column_label"]),
    ("labels", b'{"example_id": {"0": 1}, "label": {"0": 1}}', ["labels", "raw_data"]),
    ("labels", b'{"example_id": {"0": 1000, "1": 1001}, "label": {"0": 1, "1": 1}}', ["two classes"]),
    ("params", b"model_training: {model: eval}", ["model_training.model"]),
    ("params", b"extract_features: {column_id: nope}", ["nope"]),
])
def test_bad_training_uploads_get_a_400_and_store_nothing(client, sample, field, body, words):
    uploads = {"raw_data": sample["data_train"], "labels": sample["label_train"], "params": FAST_PARAMS}
    uploads[field] = body
    assert_error(post(client, "/train_model", **uploads), 400, *words)
    assert client.get("/models").json == {}


def test_unknown_pipeline_is_404(client, sample):
    body = assert_error(post(client, "/serve_prediction", raw_data=sample["data_test"],
                             params="pipeline_id: 99"), 404, "99", "GET /models")
    assert body["error"] == "pipeline_not_found"
    assert_error(client.get("/models/99"), 404, "99")


def test_prediction_upload_missing_the_trained_columns(client, sample):
    train(client, sample)
    assert_error(post(client, "/serve_prediction", raw_data='{"id": {"0": 1}, "measurement": {"0": 1}}',
                      params="pipeline_id: 1"), 400, "example_id")


def test_not_multipart_is_415(client):
    assert_error(client.post("/train_model", json={"raw_data": []}), 415, "multipart")


def test_wrong_method_is_405_and_unknown_route_404(client):
    assert_error(client.get("/train_model"), 405)
    assert_error(client.get("/nowhere"), 404, "/train_model")


def test_upload_over_the_limit_is_413(client):
    big = b"0" * (5 * 1024 * 1024)
    assert_error(post(client, "/serve_prediction", raw_data=big, params="pipeline_id: 1"), 413,
                 "MAX_UPLOAD_MB")


def _motions(n: int, seed: int, lengths=(60, 48, 75)) -> tuple[str, str]:
    """Three-channel series of unequal lengths (CSV), the class showing in one channel's rhythm."""
    rng = np.random.default_rng(seed)
    rows, labels = ["example_id,channel,time,measurement"], ["example_id,label"]
    for sid in range(n):
        label = ["walk", "run"][sid % 2]
        length = lengths[sid % len(lengths)]
        t = np.arange(length)
        for channel in ("ax", "ay", "az"):
            period = 12 if (label == "run" and channel == "ay") else 24
            values = np.sin(2 * np.pi * t / period + rng.uniform(0, 6)) + 0.3 * rng.normal(size=length)
            rows += [f"m{seed}-{sid},{channel},{i},{v:.4f}" for i, v in zip(t, values)]
        labels.append(f"m{seed}-{sid},{label}")
    return "\n".join(rows), "\n".join(labels)


@pytest.mark.parametrize("engine", ["minirocket", "[minirocket, tsfresh]"])
def test_multichannel_series_of_unequal_length_train_and_serve(client, engine):
    raw, labels = _motions(16, seed=0)
    params = f"""
extract_features: {{engine: {engine}, column_kind: channel, column_sort: time,
                   default_fc_parameters: minimal}}
model_training: {{model: extra_trees, model_args: {{random_state: 0}}, cv: 3}}
"""
    trained = post(client, "/train_model", raw_data=raw, labels=labels, params=params)
    assert trained.status_code == 200, trained.json
    assert trained.json["features"]["engine"] == engine.strip("[]").replace(", ", "+")
    assert trained.json["classes"] == ["run", "walk"]

    new_raw, new_labels = _motions(10, seed=1, lengths=(52, 90))  # lengths never trained on
    predicted = post(client, "/serve_prediction", raw_data=new_raw,
                     params=f"pipeline_id: {trained.json['modelId']}")
    assert predicted.status_code == 200, predicted.json
    truth = dict(line.split(",") for line in new_labels.splitlines()[1:])
    hits = [(p >= 0.5) == (truth[sid] == "walk") for sid, p in predicted.json.items()]
    assert set(predicted.json) == set(truth) and np.mean(hits) >= 0.8

    missing_channel = "\n".join(line for line in new_raw.splitlines() if ",az," not in line)
    refused = post(client, "/serve_prediction", raw_data=missing_channel,
                   params=f"pipeline_id: {trained.json['modelId']}")
    assert refused.status_code == 400 and "channel 'az'" in refused.json["message"]


def test_a_large_batch_streams_out_the_same_scores_as_small_ones(app, client, sample):
    """Above one batch of series (classifier.PREDICT_CHUNK_SERIES) the answer goes out a
    batch at a time, as one JSON object (or one CSV with one header), and scores every
    series as a small request would."""
    from automl.classifier import PREDICT_CHUNK_SERIES

    trained = train(client, sample, params=b"extract_features: {engine: minirocket}\n"
                    b"model_training: {model: extra_trees, model_args: {n_estimators: 20}}\n")
    assert trained.status_code == 200, trained.json
    test = pd.read_json(io.BytesIO(sample["data_test"]))
    copies = -(-(PREDICT_CHUNK_SERIES + 500) // test["example_id"].nunique())
    many = pd.concat([test.assign(example_id=test["example_id"] + 10_000 * k)
                      for k in range(copies)], ignore_index=True)
    upload = many.to_csv(index=False).encode()
    app.config["MAX_CONTENT_LENGTH"] = 2 * len(upload)  # this module's default is 4 MB
    small = post(client, "/serve_prediction", raw_data=sample["data_test"],
                 params="pipeline_id: 1").json

    streamed = post(client, "/serve_prediction", raw_data=upload,
                    params="pipeline_id: 1")
    assert streamed.status_code == 200 and streamed.is_streamed
    scores = streamed.json
    assert len(scores) == many["example_id"].nunique() > PREDICT_CHUNK_SERIES
    for k in (0, copies - 1):  # the first batch and the last
        assert {str(int(i) - 10_000 * k): p for i, p in scores.items()
                if int(i) // 10_000 == k} == pytest.approx(small)

    as_csv = post(client, "/serve_prediction?format=csv", raw_data=upload,
                  params="pipeline_id: 1")
    assert as_csv.status_code == 200 and as_csv.is_streamed
    table = pd.read_csv(io.BytesIO(as_csv.data))
    assert list(table.columns) == ["series_id", "probability"] and len(table) == len(scores)
    assert dict(zip(table["series_id"].astype(str), table["probability"])) == \
        pytest.approx(scores)
