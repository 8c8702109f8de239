"""End to end: the Procfile's gunicorn server, the blog post's client code, the real search.

The server is started exactly as Cloud Foundry starts it (the ``web:`` line, ``$PORT`` set),
with the repository's own ``pipeline_parameters.yml`` and ``test_parameters.yml``.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile_web_command() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise AssertionError("Procfile has no web: line")


class Server:
    """One gunicorn started from the Procfile; ``restart`` keeps its model directory."""

    def __init__(self, model_dir: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PORT": str(self.port), "AUTOML_MODEL_DIR": str(model_dir),
                    "AUTOML_SECRET_KEY": "e2e-secret",
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        self.log = log
        self.process = None

    def start(self):
        self.process = subprocess.Popen(procfile_web_command(), shell=True, cwd=ROOT, env=self.env,
                                        stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    return
            except (requests.ConnectionError, requests.Timeout):  # still booting
                time.sleep(0.3)
        raise AssertionError(f"gunicorn did not answer within 60 s:\n{self.log.read_text()[-3000:]}")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def restart(self):
        self.stop()
        self.start()


@pytest.fixture
def server(tmp_path):
    running = Server(tmp_path / "models", tmp_path / "gunicorn.log")
    running.start()
    yield running
    running.stop()


def test_the_blog_posts_client_code_against_gunicorn(server, monkeypatch, test_labels):
    monkeypatch.chdir(ROOT)  # the post's client opens files relative to the project
    base = server.url

    # The post's client, verbatim but for the host and port.
    train_files = {'raw_data': open('data/data_train.json', 'rb'),
                   'labels': open('data/label_train.json', 'rb'),
                   'params': open('pipeline_parameters.yml', 'rb')}
    r = requests.post(f'{base}/train_model', files=train_files)
    trained = r.json()
    assert r.status_code == 200, trained
    test_files = {'raw_data': open('data/data_test.json', 'rb'), 'params': open('test_parameters.yml', 'rb')}
    scores = requests.post(f'{base}/serve_prediction', files=test_files).json()
    models = requests.get(f'{base}/models').json()

    assert {"trainTime", "trainShape", "mean_cv_accuracy", "mean_cv_roc_auc", "modelType",
            "modelId", "search"} <= trained.keys()
    assert trained["search"]["pipelinesEvaluated"] >= 1
    assert set(scores) == set(test_labels.index)
    auc = roc_auc_score(test_labels.loc[list(scores)], list(scores.values()))
    assert auc >= 0.9, f"test-set ROC AUC {auc:.3f} on GunPoint"
    assert str(trained["modelId"]) in models
    assert models[str(trained["modelId"])]["mean_cv_roc_auc"] == trained["mean_cv_roc_auc"]

    # A restart loses nothing: the same model is listed and scores the same.
    server.restart()
    assert requests.get(f'{base}/models').json() == models
    test_files = {'raw_data': open('data/data_test.json', 'rb'), 'params': open('test_parameters.yml', 'rb')}
    assert requests.post(f'{base}/serve_prediction', files=test_files).json() == pytest.approx(scores)
