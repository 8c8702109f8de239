"""End to end: the Procfile's gunicorn server, the blog post's client code, the real search.

The server is started exactly as Cloud Foundry starts it (the ``web:`` line, ``$PORT`` set),
with the repository's own ``pipeline_parameters.yml`` and ``test_parameters.yml``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from sklearn.metrics import roc_auc_score

from servers import GunicornServer

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


KEY = "e2e-key-0123456789abcdef"


# With keys the post's client needs one header; gunicorn with keys is also covered by
# test_auth's two-instance test, so that variant (a minute) stays out of CI.
@pytest.fixture(params=["open", pytest.param("keys", marks=pytest.mark.slow)])
def server(tmp_path, request):
    """One gunicorn from the Procfile, open or with an API key; ``restart`` keeps its model
    directory."""
    env = {"AUTOML_MODEL_DIR": str(tmp_path / "models"), "AUTOML_SECRET_KEY": "e2e-secret"}
    if request.param == "keys":
        env["AUTOML_API_KEYS"] = json.dumps({"ci": {"key": KEY, "scopes": ["train", "predict"]}})
    running = GunicornServer(tmp_path / "gunicorn.log", env=env)
    running.headers = {"Authorization": f"Bearer {KEY}"} if request.param == "keys" else {}
    with running:
        yield running


def test_the_blog_posts_client_code_against_gunicorn(server, monkeypatch, test_labels):
    monkeypatch.chdir(ROOT)  # the post's client opens files relative to the project
    base = server.url
    headers = server.headers  # with keys, the one addition the post's client needs

    # The post's client, verbatim but for the host and port (and the key's header).
    train_files = {'raw_data': open('data/data_train.json', 'rb'),
                   'labels': open('data/label_train.json', 'rb'),
                   'params': open('pipeline_parameters.yml', 'rb')}
    r = requests.post(f'{base}/train_model', files=train_files, headers=headers)
    trained = r.json()
    assert r.status_code == 200, trained
    test_files = {'raw_data': open('data/data_test.json', 'rb'), 'params': open('test_parameters.yml', 'rb')}
    scores = requests.post(f'{base}/serve_prediction', files=test_files, headers=headers).json()
    models = requests.get(f'{base}/models', headers=headers).json()
    if headers:  # and without the key, nothing but a 401 that says what to send
        refused = requests.get(f'{base}/models')
        assert refused.status_code == 401 and "Bearer" in refused.json()["message"]

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
    assert requests.get(f'{base}/models', headers=headers).json() == models
    test_files = {'raw_data': open('data/data_test.json', 'rb'), 'params': open('test_parameters.yml', 'rb')}
    assert requests.post(f'{base}/serve_prediction', files=test_files,
                         headers=headers).json() == pytest.approx(scores)
