"""The ``automl`` command (python -m automl.cli, as the console script runs it) against the
Procfile's gunicorn server (one per module): output, progress on stderr, exit statuses."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

import pytest

from automl.cli import EXIT_FAILED, EXIT_JOB_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from automl.client import Client
from conftest import DATA, FAST_PARAMS, ROOT
from servers import GunicornServer, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    with GunicornServer(tmp / "gunicorn.log", env={
            "AUTOML_MODEL_DIR": str(tmp / "models"), "AUTOML_SECRET_KEY": "cli-secret"}) as running:
        yield running


@pytest.fixture(scope="module")
def fast_params(tmp_path_factory):
    path = tmp_path_factory.mktemp("params") / "fast.yml"
    path.write_bytes(FAST_PARAMS)
    return path


def automl(*args: str, url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOML_URL", "AUTOML_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if url:
        env["AUTOML_URL"] = url
    return subprocess.run([sys.executable, "-m", "automl.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def trained(server, fast_params):
    """`automl train ... --wait`, once: the pipeline the other tests use."""
    return automl("train", "data/data_train.json", "data/label_train.json",
                  "--params", str(fast_params), "--wait", "--pipeline-id", "cli-1", url=server.url)


def test_train_wait_shows_progress_then_prints_the_report(trained):
    assert trained.returncode == EXIT_OK, trained.stderr
    assert "succeeded" in trained.stderr and "elapsed" in trained.stderr  # the progress bar
    for line in (r"pipeline\s+cli-1", r"engine\s+tsfresh", r"cv accuracy\s+[01]\.\d{3}"):
        assert re.search(f"^{line}$", trained.stdout, re.MULTILINE), trained.stdout
    assert "Traceback" not in trained.stderr


def test_predict_json_and_csv(server, trained, test_labels):
    done = automl("--json", "predict", "data/data_test.json", "--pipeline-id", "cli-1",
                  url=server.url)
    assert done.returncode == EXIT_OK, done.stderr
    scores = json.loads(done.stdout)
    assert set(scores) == set(test_labels.index)

    as_csv = automl("predict", "data/data_test.json", "--pipeline-id", "cli-1", "--csv",
                    url=server.url)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {r["series_id"]: float(r["probability"]) for r in rows} == pytest.approx(scores)


def test_listings_as_json_csv_and_tables(server, trained):
    models = json.loads(automl("models", "--json", url=server.url).stdout)
    assert models["cli-1"]["mean_cv_accuracy"] is not None
    rows = list(csv.DictReader(io.StringIO(automl("--csv", "models", url=server.url).stdout)))
    assert [r["pipeline"] for r in rows] == ["cli-1"]
    jobs = json.loads(automl("--json", "jobs", url=server.url).stdout)
    assert jobs[0]["state"] == "succeeded" and jobs[0]["pipelineId"] == "cli-1"
    table = automl("jobs", url=server.url)
    assert table.returncode == EXIT_OK and jobs[0]["jobId"] in table.stdout
    health = automl("health", url=server.url)
    assert health.returncode == EXIT_OK and "ok" in health.stdout


def test_a_cancelled_job_exits_1(server, trained):
    slow = {"model_training": {"model": "tpot", "model_args": {"max_time_mins": 1}}}
    job = Client(server.url).train(DATA / "data_train.json", DATA / "label_train.json", slow)
    cancelled = automl("cancel", job["jobId"], url=server.url)
    assert cancelled.returncode == EXIT_OK, cancelled.stderr
    assert job["jobId"] in cancelled.stdout
    waited = automl("wait", job["jobId"], url=server.url)
    assert waited.returncode == EXIT_JOB_FAILED
    assert "cancelled" in waited.stderr and "Traceback" not in waited.stderr


def test_a_refused_request_exits_3_with_the_services_message(server):
    done = automl("predict", "data/data_test.json", "--pipeline-id", "no-such", url=server.url)
    assert done.returncode == EXIT_REFUSED
    assert "No pipeline with id 'no-such'" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_an_unreachable_service_exits_4():
    done = automl("--url", f"http://127.0.0.1:{free_port()}", "models")
    assert done.returncode == EXIT_FAILED
    assert "Cannot reach the service" in done.stderr and "Traceback" not in done.stderr


def test_usage_errors_exit_2_and_help_documents_the_exit_statuses():
    assert automl("train", "no-such-file.json", "data/label_train.json").returncode == EXIT_USAGE
    helped = automl("--help")
    assert helped.returncode == EXIT_OK
    for code, meaning in ((0, "success"), (1, "failed or was cancelled"), (2, "usage error"),
                          (3, "refused"), (4, "cannot be reached")):
        assert any(line.strip().startswith(f"{code} ") and meaning in line
                   for line in helped.stdout.splitlines()), (code, helped.stdout)
