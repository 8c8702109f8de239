"""The model registry through the API, with API keys: versions, the current alias, rollback,
delete, ownership of pipelines and jobs, and the audit trail."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from conftest import FAST_PARAMS

KEYS = {
    "alice": {"key": "alice-secret-0123456789", "scopes": ["train", "predict"],
              "max_trainings": 1},
    "bob": {"key": "bob-secret-0123456789ab", "scopes": ["train", "predict"]},
    "trainer": {"key": "trainer-secret-01234567", "scopes": ["train"]},
    "reader": {"key": "reader-secret-012345678", "scopes": ["predict"]},
    "root": {"key": "root-secret-0123456789ab", "scopes": ["admin"]},
}


@pytest.fixture
def app_overrides():
    return {"API_KEYS": json.dumps(KEYS), "RATE_LIMIT": "off"}


def as_(name: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[name]['key']}"}


def train(client, sample, who, params=FAST_PARAMS, labels=None):
    return client.post("/train_model", headers=as_(who), content_type="multipart/form-data", data={
        "raw_data": (io.BytesIO(sample["data_train"]), "data.json"),
        "labels": (io.BytesIO(labels or sample["label_train"]), "labels.json"),
        "params": (io.BytesIO(params), "params.yml")})


def predict(client, sample, who, params: str):
    return client.post("/serve_prediction", headers=as_(who), content_type="multipart/form-data",
                       data={"raw_data": (io.BytesIO(sample["data_test"]), "data.json"),
                             "params": (io.BytesIO(params.encode()), "params.yml")})


def inverted(sample) -> bytes:
    labels = pd.read_json(io.BytesIO(sample["label_train"]))
    labels["label"] = 1 - labels["label"]
    return labels.to_json().encode()


def test_a_retraining_adds_a_version_and_rollback_serves_the_old_one_byte_for_byte(client, sample):
    first = train(client, sample, "alice", FAST_PARAMS + b"pipeline_id: p\n")
    assert first.status_code == 200 and first.json["version"] == 1
    assert first.json["createdBy"] == "alice" and first.json["owner"] == "alice"
    original = predict(client, sample, "reader", "pipeline_id: p")

    second = train(client, sample, "alice", FAST_PARAMS + b"pipeline_id: p\n", inverted(sample))
    assert second.status_code == 200 and second.json["version"] == 2
    flipped = predict(client, sample, "reader", "pipeline_id: p")
    assert flipped.data != original.data  # the inverted labels are what is served now
    assert predict(client, sample, "reader", "pipeline_id: p\nversion: 1").data == original.data

    versions = client.get("/models/p/versions", headers=as_("reader")).json
    assert [(v["version"], v["current"], v["createdBy"]) for v in versions] == [
        (1, False, "alice"), (2, True, "alice")]
    assert client.get("/models", headers=as_("reader")).json["p"]["version"] == 2

    rolled = client.post("/models/p/rollback", headers=as_("alice"))
    assert rolled.status_code == 200 and rolled.json["version"] == 1
    assert predict(client, sample, "reader", "pipeline_id: p").data == original.data
    again = client.post("/models/p/rollback", headers=as_("alice"), json={"version": 2})
    assert again.json["version"] == 2
    assert predict(client, sample, "reader", "pipeline_id: p").data == flipped.data
    missing = client.post("/models/p/rollback", headers=as_("alice"), json={"version": 7})
    assert missing.status_code == 404 and "versions" in missing.json["message"]
    assert client.post("/models/p/rollback", headers=as_("alice"),
                       json={"version": "two"}).status_code == 400


def test_a_key_cannot_touch_another_keys_pipeline_or_job_without_admin(client, sample):
    assert train(client, sample, "alice", FAST_PARAMS + b"pipeline_id: p\n").status_code == 200
    refused = train(client, sample, "bob", FAST_PARAMS + b"pipeline_id: p\n")
    assert refused.status_code == 403 and "alice" in refused.json["message"]
    for request in (lambda: client.post("/models/p/rollback", headers=as_("bob")),
                    lambda: client.delete("/models/p/versions/1", headers=as_("bob")),
                    lambda: client.delete("/models/p", headers=as_("bob"))):
        answer = request()
        assert answer.status_code == 403 and set(answer.json) == {"error", "message"}
    assert len(client.get("/models/p/versions", headers=as_("bob")).json) == 1  # untouched
    assert train(client, sample, "root", FAST_PARAMS + b"pipeline_id: p\n").status_code == 200

    queued = train(client, sample, "alice", FAST_PARAMS + b"pipeline_id: q\nasync: true\n")
    job_id = queued.json["jobId"]
    assert queued.json["submittedBy"] == "alice"
    assert client.delete(f"/jobs/{job_id}", headers=as_("bob")).status_code == 403
    assert client.delete(f"/jobs/{job_id}", headers=as_("root")).status_code in (202, 409)


def test_each_scope_is_allowed_and_refused_as_documented(client, sample):
    assert train(client, sample, "reader").status_code == 403  # predict only: no training
    trained = train(client, sample, "trainer", FAST_PARAMS + b"pipeline_id: t\n")
    assert trained.status_code == 200
    assert predict(client, sample, "trainer", "pipeline_id: t").status_code == 403
    assert predict(client, sample, "reader", "pipeline_id: t").status_code == 200
    assert client.get("/audit", headers=as_("alice")).status_code == 403
    assert client.get("/models").status_code == 401
    assert client.get("/health").json == {"status": "ok", "auth": "keys"}

    train(client, sample, "alice", FAST_PARAMS + b"pipeline_id: a\n")
    mine = client.get("/jobs", headers=as_("trainer")).json  # train only: its own jobs
    assert {j["submittedBy"] for j in mine} == {"trainer"}
    everyone = client.get("/jobs", headers=as_("reader")).json
    assert {j["submittedBy"] for j in everyone} == {"trainer", "alice"}
    alices = next(j["jobId"] for j in everyone if j["submittedBy"] == "alice")
    assert client.get(f"/jobs/{alices}", headers=as_("trainer")).status_code == 403


def test_deleting_removes_every_version_and_its_artifacts_from_the_store(app, client, sample):
    backend = app.extensions["state"].backend
    for _ in range(2):
        train(client, sample, "alice", FAST_PARAMS + b"pipeline_id: d\n")
    train(client, sample, "bob", FAST_PARAMS + b"pipeline_id: kept\n")
    assert len(backend.keys("artifacts")) == 3
    gone = client.delete("/models/d/versions/1", headers=as_("alice"))
    assert gone.status_code == 200 and len(backend.keys("artifacts")) == 2
    assert client.delete("/models/d", headers=as_("alice")).status_code == 200
    assert len(backend.keys("artifacts")) == 1 and backend.keys("model-versions/d") == []
    assert client.get("/models/d", headers=as_("reader")).status_code == 404
    assert list(client.get("/models", headers=as_("reader")).json) == ["kept"]


def test_the_audit_trail_says_who_did_what_and_admins_read_it(client, sample):
    train(client, sample, "alice", FAST_PARAMS + b"pipeline_id: p\n")
    train(client, sample, "alice", FAST_PARAMS + b"pipeline_id: p\n")
    client.post("/models/p/rollback", headers=as_("alice"))
    job_id = train(client, sample, "bob", FAST_PARAMS + b"async: true\n").json["jobId"]
    client.delete(f"/jobs/{job_id}", headers=as_("bob"))
    client.delete("/models/p", headers=as_("root"))

    events = client.get("/audit", headers=as_("root")).json
    assert [(e["actor"], e["action"], e["target"]) for e in events][:4] == [
        ("root", "deleted", "pipeline p"), ("bob", "cancelled", f"job {job_id}"),
        ("alice", "rolled_back", "pipeline p"), ("alice", "replaced", "pipeline p")]
    assert events[-1]["action"] == "trained" and events[-1]["version"] == 1
    assert all(KEYS[name]["key"] not in json.dumps(events) for name in KEYS)
    page = client.get("/audit?limit=2", headers=as_("root"))
    assert len(page.json) == 2 and 'rel="next"' in page.headers["Link"]


def test_a_key_over_its_training_limit_gets_429(tmp_path, sample, app_overrides):
    from automl import create_app

    queue_only = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path), "SECRET_KEY": "s",
                             "RUN_JOBS": False, **app_overrides})
    client = queue_only.test_client()
    assert train(client, sample, "alice", FAST_PARAMS + b"async: true\n").status_code == 202
    second = train(client, sample, "alice", FAST_PARAMS + b"async: true\n")
    assert second.status_code == 429 and "alice" in second.json["message"]
    assert int(second.headers["Retry-After"]) > 0
    assert train(client, sample, "bob", FAST_PARAMS + b"async: true\n").status_code == 202
