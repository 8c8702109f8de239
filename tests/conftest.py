"""Fixtures: an app on a temporary model directory, its test client, the sample data."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from automl import create_app
from automl.backends import DirectoryBackend, RedisBackend
from servers import redis_server

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"

# Small and quick: tsfresh's minimal settings and one fixed model.
FAST_PARAMS = b"""
extract_features: {default_fc_parameters: minimal}
model_training: {model: random_forest, model_args: {n_estimators: 50, random_state: 0}, cv: 3}
"""


@pytest.fixture
def app_overrides() -> dict:
    """More settings for ``app``; a test module overrides this fixture (e.g. with API_KEYS)."""
    return {}


@pytest.fixture
def app(tmp_path, app_overrides):
    """The app with its job runner: trainings run in real worker processes, as in production."""
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path / "models"),
                      "SECRET_KEY": "test-secret", "MAX_CONTENT_LENGTH": 4 * 1024 * 1024,
                      **app_overrides})
    yield app
    app.extensions["job_runner"].stop()


@pytest.fixture
def client(app):
    return app.test_client()


def files(**named: bytes | str) -> dict:
    """Multipart fields for the test client, each named like the file a user would send."""
    return {name: (io.BytesIO(body.encode() if isinstance(body, str) else body), f"{name}.dat")
            for name, body in named.items()}


def stored_uploads(jobs, job_id: str) -> dict:
    """A job's stored files as the worker gets them, every payload read into bytes."""
    from automl.uploads import Upload

    with jobs.open_uploads(job_id) as uploads:
        return {name: Upload(u.payload if isinstance(u.payload, bytes) else u.payload.read(),
                             u.filename, u.content_type) for name, u in uploads.items()}


def post(client, route: str, **named):
    return client.post(route, data=files(**named), content_type="multipart/form-data")


@pytest.fixture(scope="session")
def sample():
    """data/ as bytes, as a user would upload them."""
    return {name: (DATA / f"{name}.json").read_bytes()
            for name in ("data_train", "label_train", "data_test", "label_test")}


@pytest.fixture(scope="session")
def test_labels() -> pd.Series:
    labels = pd.read_json(DATA / "label_test.json")
    return pd.Series(labels["label"].to_numpy(), index=labels["example_id"].astype(str))


@pytest.fixture(scope="session")
def redis(tmp_path_factory):
    """A real redis-server of the tests' own, on a free port."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["directory", "redis"])
def backend(request, tmp_path):
    """Each backend in turn, empty: store and job tests hold for both."""
    if request.param == "directory":
        return DirectoryBackend(tmp_path / "state")
    server = request.getfixturevalue("redis")
    server.flush()
    return RedisBackend(server.url)
