"""Training as jobs through the API: asking for async, following, cancelling."""
from __future__ import annotations

import time

import pytest

from automl import create_app
from conftest import FAST_PARAMS, files, post


def submit(client, sample, params=FAST_PARAMS, headers=None):
    return client.post("/train_model", headers=headers or {}, content_type="multipart/form-data",
                       data=files(raw_data=sample["data_train"], labels=sample["label_train"],
                                  params=params))


def wait_for(client, job_id, done=lambda job: job["state"] in ("succeeded", "failed", "cancelled"),
             timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json
        if done(job):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job}")


@pytest.mark.parametrize("how", ["prefer_header", "params_file"])
def test_async_training_answers_202_then_the_job_holds_the_report(client, sample, how):
    if how == "prefer_header":
        accepted = submit(client, sample, headers={"Prefer": "respond-async, wait=5"})
    else:
        accepted = submit(client, sample, params=FAST_PARAMS + b"async: true\n")
    assert accepted.status_code == 202, accepted.json
    job_id = accepted.json["jobId"]
    assert accepted.headers["Location"] == f"/jobs/{job_id}"
    assert accepted.json["state"] in ("queued", "running")

    job = wait_for(client, job_id)
    assert job["state"] == "succeeded", job
    assert job["result"]["modelId"] == 1 and "mean_cv_roc_auc" in job["result"]
    assert job["result"] == client.get("/models/1").json
    assert [j["jobId"] for j in client.get("/jobs").json] == [job_id]
    predicted = post(client, "/serve_prediction", raw_data=sample["data_test"], params="pipeline_id: 1")
    assert predicted.status_code == 200 and len(predicted.json) == 150


def test_bad_input_is_refused_before_any_job_is_queued(client, sample):
    refused = submit(client, sample, params=FAST_PARAMS + b"async: true\nextract_features: {column_id: nope}\n")
    assert refused.status_code == 400
    assert client.get("/jobs").json == []


def test_sync_training_still_answers_with_the_report(client, sample):
    trained = submit(client, sample)
    assert trained.status_code == 200 and trained.json["modelId"] == 1
    assert client.get("/jobs").json[0]["state"] == "succeeded"


@pytest.fixture
def queue_only_app(tmp_path):
    """An instance that serves but runs no trainings: its jobs stay queued."""
    return create_app({"TESTING": True, "MODEL_DIR": str(tmp_path / "models"),
                       "SECRET_KEY": "test-secret", "RUN_JOBS": False})


def test_a_queued_job_can_be_cancelled_and_then_not_again(queue_only_app, sample):
    client = queue_only_app.test_client()
    job_id = submit(client, sample, headers={"Prefer": "respond-async"}).json["jobId"]
    assert client.get(f"/jobs/{job_id}").json["state"] == "queued"
    cancelled = client.delete(f"/jobs/{job_id}")
    assert cancelled.status_code == 202 and cancelled.json["state"] == "cancelled"
    again = client.delete(f"/jobs/{job_id}")
    assert again.status_code == 409 and "cancelled" in again.json["message"]


def test_running_trainings_are_limited_and_the_rest_wait_in_the_queue(tmp_path, sample):
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path / "models"),
                      "SECRET_KEY": "test-secret", "MAX_CONCURRENT_TRAININGS": 1})
    try:
        client = app.test_client()
        ids = [submit(client, sample, params=FAST_PARAMS + f"pipeline_id: p{i}\n".encode(),
                      headers={"Prefer": "respond-async"}).json["jobId"] for i in range(2)]
        first = wait_for(client, ids[0], done=lambda job: job["state"] != "queued")
        assert first["state"] == "running"
        assert client.get(f"/jobs/{ids[1]}").json["state"] == "queued"
        finished = [wait_for(client, job_id) for job_id in ids]
        assert [job["state"] for job in finished] == ["succeeded", "succeeded"]
        assert finished[1]["startedAt"] >= finished[0]["finishedAt"]
    finally:
        app.extensions["job_runner"].stop()


def test_cancelling_a_running_search_stops_it(client, sample):
    params = b"""
extract_features: {default_fc_parameters: minimal}
model_training: {model: tpot, cv: 3, model_args: {generations: 50, population_size: 8, max_time_mins: 5, n_jobs: 1}}
"""
    job_id = submit(client, sample, params=params, headers={"Prefer": "respond-async"}).json["jobId"]
    wait_for(client, job_id, done=lambda job: (job.get("progress") or {}).get("stage") == "search")
    assert client.delete(f"/jobs/{job_id}").status_code == 202
    job = wait_for(client, job_id, timeout=30)
    assert job["state"] == "cancelled"
    # The provisional baseline it served is removed with it: a cancelled job leaves nothing.
    assert client.get("/models/1").status_code == 404
    assert client.get("/models").json == {}


def test_unknown_jobs_are_404(client):
    for route in ("/jobs/nope", "/jobs/../../etc"):
        answer = client.get(route)
        assert answer.status_code == 404 and answer.json["error"] in ("job_not_found", "not_found")
    assert client.delete("/jobs/nope").status_code == 404
