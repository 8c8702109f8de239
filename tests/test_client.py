"""automl.client.Client against the Procfile's gunicorn server (one per module), on data/."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
import pytest
import requests

from automl.client import (BadRequest, Client, Conflict, ConnectionFailed, JobFailed, NotFound,
                           ServerError, ServiceError, ServiceUnavailable, TooManyRequests,
                           error_from_response)
from conftest import DATA, FAST_PARAMS, ROOT
from servers import GunicornServer, free_port

pytestmark = pytest.mark.e2e

# A training that runs long enough to be cancelled while it runs.
SLOW_PARAMS = {"model_training": {"model": "tpot", "model_args": {"max_time_mins": 1}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client")
    with GunicornServer(tmp / "gunicorn.log", env={
            "AUTOML_MODEL_DIR": str(tmp / "models"), "AUTOML_SECRET_KEY": "client-secret"}) as running:
        yield running


@pytest.fixture(scope="module")
def service(server):
    with Client(server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def trained(service):
    """One quick training, waited for: an open file, a DataFrame and a dict as the uploads."""
    labels = pd.DataFrame(json.loads((DATA / "label_train.json").read_text()))
    seen = []
    with open(DATA / "data_train.json", "rb") as raw:
        job = service.train(raw, labels, _fast_params(), wait=True, on_progress=seen.append,
                            pipeline_id="client-1", poll_s=0.2)
    return job, seen


def _fast_params() -> dict:
    import yaml

    return yaml.safe_load(FAST_PARAMS)


def test_train_waits_for_the_job_reporting_progress(trained):
    job, seen = trained
    assert job["state"] == "succeeded"
    report = job["result"]
    assert report["modelId"] == "client-1"
    assert {"mean_cv_accuracy", "mean_cv_roc_auc", "trainShape", "modelType"} <= report.keys()
    assert report["trainShape"][0] == 50
    assert seen, "on_progress was never called"
    assert all(record["jobId"] == job["jobId"] for record in seen)
    assert seen[-1]["state"] == "succeeded"


def test_predict_keys_scores_by_series_id_whatever_the_input(service, trained, test_labels):
    from_path = service.predict(DATA / "data_test.json", "client-1")
    assert set(from_path) == set(test_labels.index)
    assert all(0.0 <= p <= 1.0 for p in from_path.values())

    frame = pd.DataFrame(json.loads((DATA / "data_test.json").read_text()))
    assert service.predict(frame, "client-1") == pytest.approx(from_path)
    assert service.predict((DATA / "data_test.json").read_bytes(), "client-1") == from_path

    table = service.predict(str(DATA / "data_test.json"), "client-1", as_frame=True)
    assert list(table.columns) == ["probability"] and table.index.name == "series_id"
    assert table["probability"].to_dict() == pytest.approx(from_path)


def test_models_jobs_and_health(service, trained):
    job, _ = trained
    assert service.health() == {"status": "ok", "auth": "open"}
    assert service.models()["client-1"]["mean_cv_accuracy"] == job["result"]["mean_cv_accuracy"]
    assert service.model("client-1")["jobId"] == job["jobId"]
    assert job["jobId"] in [j["jobId"] for j in service.jobs()]
    assert service.job(job["jobId"])["state"] == "succeeded"


def test_cancel_a_queued_and_a_running_job(service, trained):
    running = service.train(DATA / "data_train.json", DATA / "label_train.json", SLOW_PARAMS)
    queued = service.train(DATA / "data_train.json", DATA / "label_train.json", SLOW_PARAMS)
    assert running["state"] == "queued" and running["jobId"] != queued["jobId"]
    deadline = time.monotonic() + 20
    while service.job(running["jobId"])["state"] == "queued":  # one training at a time
        assert time.monotonic() < deadline, "the first job never started"
        time.sleep(0.2)

    assert service.cancel(queued["jobId"])["state"] == "cancelled"
    assert service.cancel(running["jobId"])["cancelRequested"] is True
    with pytest.raises(JobFailed) as failed:
        service.wait(running["jobId"], poll_s=0.2, timeout=30)
    assert failed.value.state == "cancelled" and failed.value.job["jobId"] == running["jobId"]
    with pytest.raises(JobFailed, match="before it started"):
        service.wait(queued["jobId"])
    with pytest.raises(Conflict) as finished:
        service.cancel(queued["jobId"])
    assert finished.value.status == 409 and finished.value.code == "job_finished"


def test_a_refused_upload_raises_bad_request_with_the_services_message(service):
    with pytest.raises(BadRequest) as refused:
        service.train(DATA / "data_train.json", DATA / "label_train.json",
                      b"model_training: {model: nope}\n")
    assert refused.value.status == 400 and refused.value.code == "invalid_parameters"
    assert "model_training.model" in refused.value.message
    with pytest.raises(NotFound) as missing:
        service.predict(DATA / "data_test.json", "no-such-pipeline")
    assert missing.value.code == "pipeline_not_found"
    assert isinstance(missing.value, ServiceError)


def test_an_unreachable_service_raises_connection_failed():
    with pytest.raises(ConnectionFailed, match="Cannot reach") as failed:
        Client(f"127.0.0.1:{free_port()}", timeout=5).health()  # no scheme: http:// is assumed
    assert failed.value.status is None


def test_error_answers_are_typed_by_status_with_retry_after():
    def answer(status, body, **headers):
        response = requests.Response()
        response.status_code, response._content = status, body
        response.headers.update(headers)
        return error_from_response(response)

    busy = answer(503, b'{"error": "store_unavailable", "message": "Redis is away."}',
                  **{"Retry-After": "7"})
    assert isinstance(busy, ServiceUnavailable) and isinstance(busy, ServerError)
    assert (busy.status, busy.code, busy.message, busy.retry_after) == (
        503, "store_unavailable", "Redis is away.", 7.0)
    assert isinstance(answer(429, b"{}"), TooManyRequests)
    proxy = answer(502, b"<html>Bad gateway</html>")
    assert type(proxy) is ServerError and proxy.code == "http_502" and "Bad gateway" in proxy.message


def test_the_key_is_sent_as_a_bearer_token(monkeypatch):
    monkeypatch.delenv("AUTOML_API_KEY", raising=False)
    assert "Authorization" not in Client("http://x").session.headers
    assert Client("http://x", key="k1").session.headers["Authorization"] == "Bearer k1"
    monkeypatch.setenv("AUTOML_API_KEY", "k2")
    assert Client("http://x").session.headers["Authorization"] == "Bearer k2"


def test_the_client_and_cli_import_none_of_the_service():
    heavy = ("flask", "tsfresh", "aeon", "sklearn", "tpot", "pandas", "numpy")
    code = ("import sys, automl.client, automl.cli; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
