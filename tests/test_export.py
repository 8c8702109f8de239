"""Exporting pipelines: the signed archive, the local loader's checks, the model card, the
generated scikit-learn code, and who may download what.

Flask's test client (one real training) for most; one test through gunicorn from the Procfile
for ``Client.download``, ``automl export`` and a local load that predicts exactly as the
service does.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.feature_selection import SelectPercentile, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from automl import create_app, export
from automl.classifier import TimeSeriesClassifier
from automl.codegen import model_source
from automl.export import ExportError, Signer, UntrustedExport
from automl.features import TsfreshFeatures
from automl.model_card import render
from automl.models import RidgeClassifierProba
from automl.parsing import read_labels, read_raw_data
from conftest import DATA, FAST_PARAMS
from servers import GunicornServer

TEST_RAW = read_raw_data((DATA / "data_test.json").read_bytes())


def post(client, route, **files):
    return client.post(route, content_type="multipart/form-data",
                       data={k: (io.BytesIO(v), f"{k}.dat") for k, v in files.items()})


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path_factory.mktemp("export")),
                      "SECRET_KEY": "export-secret"})
    client = app.test_client()
    trained = post(client, "/train_model", raw_data=(DATA / "data_train.json").read_bytes(),
                   labels=(DATA / "label_train.json").read_bytes(),
                   params=b"pipeline_id: gp\n" + FAST_PARAMS)
    assert trained.status_code == 200, trained.json
    yield app, client
    app.extensions["job_runner"].stop()


@pytest.fixture(scope="module")
def archive(service, tmp_path_factory):
    _, client = service
    answer = client.get("/models/gp/export")
    assert answer.status_code == 200, answer.json
    path = tmp_path_factory.mktemp("archive") / "gp.zip"
    path.write_bytes(answer.data)
    return path, answer, client.get("/export-key").json


def rewritten(path, tmp_path, replace: dict, name="changed.zip"):
    """The archive with some members' bytes replaced (the rest, the signature too, kept)."""
    out = tmp_path / name
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(out, "w") as new:
        for item in old.infolist():
            new.writestr(item.filename, replace.get(item.filename, old.read(item.filename)))
    return out


# -- the archive ---------------------------------------------------------------------------

def test_the_archive_holds_a_signed_manifest_of_every_file(archive):
    path, answer, key = archive
    assert answer.mimetype == "application/zip"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="automl-gp-v1.zip"'
    assert answer.headers["X-Export-Key-Id"] == key["keyId"]
    with zipfile.ZipFile(path) as zipped:
        assert set(zipped.namelist()) == {"manifest.json", "manifest.sig", "model.pkl",
                                          "report.json", "card.md", "pipeline.py"}
        manifest = json.loads(zipped.read("manifest.json"))
        for name, entry in manifest["files"].items():
            assert len(zipped.read(name)) == entry["bytes"]
    assert (manifest["pipelineId"], manifest["version"], manifest["format"]) == (
        "gp", 1, "automl-export")
    assert manifest["createdBy"] == "anonymous" and manifest["jobId"]
    assert manifest["libraries"]["scikit-learn"] == manifest["trainedWith"]["scikit-learn"]
    assert manifest["signature"] == {"algorithm": "Ed25519", "keyId": key["keyId"],
                                     "publicKey": key["publicKey"], "signs": "manifest.json"}
    assert export.read_manifest(path) == manifest  # unverified, to look before trusting


def test_the_model_is_the_stored_artifact_byte_for_byte(service, archive):
    app, _ = service
    path, _, _ = archive
    _, stored = app.extensions["state"].models.artifact("gp")
    with zipfile.ZipFile(path) as zipped:
        assert zipped.read("model.pkl") == stored


def test_loaded_locally_it_predicts_exactly_as_the_service(service, archive):
    _, client = service
    path, _, key = archive
    classifier = export.load(path, trust=key, pipeline_id="gp", version=1)
    assert isinstance(classifier, TimeSeriesClassifier)
    served = post(client, "/serve_prediction", raw_data=(DATA / "data_test.json").read_bytes(),
                  params=b"pipeline_id: gp").json
    local = classifier.predict_proba(TEST_RAW)[classifier.positive_class_]
    assert {sid: float(p) for sid, p in local.items()} == served


def test_every_form_of_the_key_is_trusted(archive):
    path, _, key = archive
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    import base64

    raw = base64.b64decode(key["publicKey"].removeprefix("ed25519:"))
    for trust in (key, key["publicKey"], raw, Ed25519PublicKey.from_public_bytes(raw),
                  [Signer(b"\1" * 32).public_key, key["publicKey"]]):
        assert export.open_export(path, trust=trust).manifest["pipelineId"] == "gp"


# -- what the loader refuses, before unpickling anything --------------------------------------

class Planted:
    """Unpickling this runs code: it writes a file, the mark of an attack that succeeded."""

    def __init__(self, mark):
        self.mark = mark

    def __reduce__(self):
        return (open, (self.mark, "w"))


def test_a_swapped_model_is_refused_and_never_unpickled(archive, tmp_path):
    path, _, key = archive
    mark = tmp_path / "pwned"
    evil = rewritten(path, tmp_path, {"model.pkl": pickle.dumps(Planted(str(mark)))})
    with pytest.raises(UntrustedExport, match="model.pkl differs"):
        export.load(evil, trust=key)
    assert not mark.exists()


def test_a_manifest_rewritten_to_match_is_refused_by_its_signature(archive, tmp_path):
    path, _, key = archive
    mark = tmp_path / "pwned"
    evil = pickle.dumps(Planted(str(mark)))
    manifest = json.loads(zipfile.ZipFile(path).read("manifest.json"))
    manifest["files"]["model.pkl"] = {"sha256": __import__("hashlib").sha256(evil).hexdigest(),
                                      "bytes": len(evil)}
    forged = rewritten(path, tmp_path, {"model.pkl": evil,
                                        "manifest.json": json.dumps(manifest).encode()})
    with pytest.raises(UntrustedExport, match="not signed by a trusted key"):
        export.load(forged, trust=key)
    # ... and signed by another key (another service's, or an attacker's own):
    other = Signer(os.urandom(32))
    manifest["signature"].update(keyId=other.key_id, publicKey=other.public_key)
    body = json.dumps(manifest).encode()
    resigned = rewritten(path, tmp_path, {"model.pkl": evil, "manifest.json": body,
                                          "manifest.sig": other.sign(body)}, "resigned.zip")
    with pytest.raises(UntrustedExport, match=other.key_id):
        export.load(resigned, trust=key)
    assert not mark.exists()
    # Trusting that key instead loads exactly what it signed: trust is the caller's choice.
    with pytest.raises(ExportError, match="not a TimeSeriesClassifier"):
        export.load(resigned, trust=other.public_key)
    assert mark.exists()


def test_no_trust_no_load(archive):
    path, _, _ = archive
    for nothing in (None, "", [], True):
        with pytest.raises(TypeError, match="trust="):
            export.load(path, trust=nothing)
    for not_a_key in ("ed25519:abc", "hello", b"short"):
        with pytest.raises(ValueError, match="not an Ed25519 public key"):
            export.load(path, trust=not_a_key)


def test_another_pipelines_genuine_archive_is_refused_when_an_id_is_expected(archive):
    path, _, key = archive
    with pytest.raises(ExportError, match="is pipeline 'gp', not 'other'"):
        export.load(path, trust=key, pipeline_id="other")
    with pytest.raises(ExportError, match="version 1 of its pipeline, not 2"):
        export.load(path, trust=key, version=2)


def test_damaged_archives_are_refused_clearly(archive, tmp_path):
    path, _, key = archive
    data = path.read_bytes()
    for name, payload in (("cut", data[: len(data) // 2]), ("text", b"not a zip"),
                          ("empty-zip", _zip({}))):
        target = tmp_path / f"{name}.zip"
        target.write_bytes(payload)
        with pytest.raises(ExportError):
            export.load(target, trust=key)
    huge = rewritten(path, tmp_path, {"manifest.json": b" " * (2 << 20)}, "huge.zip")
    with pytest.raises(UntrustedExport, match="at most"):
        export.load(huge, trust=key)


def _zip(members: dict) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return out.getvalue()


def test_other_library_versions_are_warned_about(archive, tmp_path, monkeypatch):
    path, _, key = archive
    real = export.service_libraries()
    monkeypatch.setattr(export, "service_libraries", lambda: {**real, "scikit-learn": "0.1"})
    with pytest.warns(export.ExportVersionWarning, match="scikit-learn"):
        export.load(path, trust=key)


# -- the routes ------------------------------------------------------------------------------

def test_export_and_card_routes_refuse_unknown_ids_and_versions(service):
    _, client = service
    assert client.get("/models/nope/export").status_code == 404
    assert client.get("/models/gp/export?version=9").json["error"] == "version_not_found"
    assert client.get("/models/gp/card?version=0").status_code == 400
    assert client.get("/models/gp/export?version=x").status_code == 400
    assert client.get("/models/gp/card?version=1").status_code == 200


def test_the_export_key_follows_the_secret(tmp_path):
    keys = []
    for secret in ("one", "one", "two"):
        app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path / secret),
                          "SECRET_KEY": secret, "RUN_JOBS": False})
        keys.append(app.test_client().get("/export-key").json)
    assert keys[0] == keys[1] and keys[0]["publicKey"] != keys[2]["publicKey"]
    assert keys[0]["publicKey"].startswith("ed25519:") and len(keys[0]["keyId"]) == 16


KEYS = {"owner": {"key": "owner-secret-0123456789", "scopes": ["train"]},
        "other": {"key": "other-secret-0123456789", "scopes": ["train"]},
        "reader": {"key": "reader-secret-012345678", "scopes": ["predict"]},
        "root": {"key": "root-secret-0123456789ab", "scopes": ["admin"]}}


def test_only_the_owner_or_an_admin_may_export_and_readers_see_the_card(tmp_path):
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path / "models"),
                      "SECRET_KEY": "keys-secret", "RUN_JOBS": False,
                      "API_KEYS": json.dumps(KEYS)})
    client = app.test_client()
    app.extensions["state"].models.save(_small_classifier(), {"engine": "tsfresh"}, "owned",
                                        created_by="owner")

    def get(path, who=None):
        headers = {"Authorization": f"Bearer {KEYS[who]['key']}"} if who else {}
        return client.get(path, headers=headers).status_code

    assert [get("/models/owned/export", who) for who in ("owner", "root", "other", "reader",
                                                         None)] == [200, 200, 403, 403, 401]
    assert [get("/models/owned/card", who) for who in ("reader", "root", "owner")] == [
        200, 200, 403]
    assert get("/export-key") == 200  # public: it verifies, it cannot sign


def _small_classifier() -> TimeSeriesClassifier:
    raw = read_raw_data((DATA / "data_train.json").read_bytes())
    labels = read_labels((DATA / "label_train.json").read_bytes())
    return TimeSeriesClassifier(TsfreshFeatures(fc_parameters="minimal", n_jobs=0, select=False),
                                ExtraTreesClassifier(n_estimators=10, random_state=0)).fit(raw,
                                                                                           labels)


# -- the model card --------------------------------------------------------------------------

def test_the_card_tells_data_engine_scores_with_errors_search_and_who(service):
    _, client = service
    answer = client.get("/models/gp/card")
    assert answer.status_code == 200 and answer.mimetype == "text/markdown"
    card = answer.get_data(as_text=True)
    report = client.get("/models/gp").json
    candidate = report["candidates"][0]
    for expected in ("# Model card: pipeline gp, version 1", "| Training series | 50 |",
                     "| Engine | tsfresh |", "| Trained by | anonymous |", report["jobId"],
                     f"{report['mean_cv_score']:.4f} ± {candidate['cvScoreStandardError']:.4f}",
                     "No search: a fixed model was trained.", "scikit-learn (recorded in the "
                     "model file)", "RandomForestClassifier"):
        assert expected in card, expected
    with zipfile.ZipFile(io.BytesIO(client.get("/models/gp/export").data)) as zipped:
        in_archive = zipped.read("card.md").decode()
    exported = [line for line in in_archive.splitlines() if line.startswith("| Exported at")]
    assert len(exported) == 1 and in_archive.replace(exported[0] + "\n", "") == card


def test_a_card_of_an_old_or_sparse_report_says_what_is_not_recorded():
    assert "not recorded" in render({})
    old = render({"modelId": 3, "version": 1, "mean_cv_accuracy": 0.9, "trainShape": [40, 12],
                  "modelType": "ExtraTreesClassifier()", "search": {"bestScore": 0.95,
                                                                    "pipelinesEvaluated": 20}})
    assert "| Mean CV accuracy | 0.9000 |" in old and "| Pipelines evaluated | 20 |" in old
    assert "| Mean CV score (the search's objective) | not recorded |" in old
    searched = render({"modelId": 1, "version": 2, "mean_cv_score": 0.99, "modelFamily": "X",
                       "engine": "minirocket", "baseline": {"engine": "minirocket",
                                                            "modelType": "Ridge", "cvScore": 0.9,
                                                            "cvScoreStandardError": 0.01},
                       "search": {"bestScoreByFamily": {"LogisticRegression": 0.99}}})
    assert "replaced the baseline (minirocket, Ridge: CV score 0.9000 ± 0.0100)" in searched
    assert "| LogisticRegression | 0.9900 |" in searched
    large = render({"modelId": 4, "version": 1, "mean_cv_score": 0.97,
                    "heldOut": {"fittedOn": 2000, "scoredOn": 2000},
                    "enginesNarrowed": {"multirocket": 0.4}})
    assert "none yet: a first model fitted on 2000 series, its scores on 2000 others" in large
    assert "multirocket: 0.4 of them" in large


# -- the generated code ----------------------------------------------------------------------

@pytest.mark.parametrize("model", [
    ExtraTreesClassifier(n_estimators=300, random_state=0, n_jobs=1),
    make_pipeline(StandardScaler(), RidgeClassifierProba(alphas=np.logspace(-3, 3, 10))),
    Pipeline([("select", SelectPercentile(f_classif, percentile=37)),
              ("union", FeatureUnion([("a", StandardScaler()), ("b", StandardScaler(
                  with_mean=False))])),
              ("model", LogisticRegression(C=0.5, class_weight="balanced", l1_ratio=None))]),
], ids=["trees", "ridge-baseline", "tpot-like"])
def test_generated_code_rebuilds_the_same_estimator(model):
    source = model_source(model)
    namespace = {}
    exec(source.module("generated"), namespace)  # noqa: S102 - our own output, in a test
    assert repr(namespace["model"]) == repr(model)
    assert not source.unwritten


def test_what_the_code_cannot_write_is_said_not_guessed():
    source = model_source(ExtraTreesClassifier(random_state=np.random.RandomState(0)))
    namespace = {}
    exec(source.module("generated"), namespace)  # noqa: S102
    assert namespace["model"].random_state is None
    assert source.unwritten == ["model.random_state: a numpy RandomState (its state is not "
                                "reproduced); set an integer seed"]


def test_the_archives_code_says_what_it_leaves_out(archive):
    path, _, key = archive
    opened = export.open_export(path, trust=key)
    assert "It does not reproduce:" in opened.code and "feature extraction" in opened.code
    namespace = {}
    exec(opened.code, namespace)  # noqa: S102
    assert repr(namespace["model"]) == repr(opened.classifier.model_)
    assert opened.manifest["codeReproduces"] is True


# -- through gunicorn ------------------------------------------------------------------------

@pytest.mark.e2e
def test_download_with_the_client_and_the_command_then_load_and_predict_alike(tmp_path):
    from automl.cli import cli
    from automl.client import Client, NotFound

    with GunicornServer(tmp_path / "gunicorn.log", env={
            "AUTOML_MODEL_DIR": str(tmp_path / "models"),
            "AUTOML_SECRET_KEY": "download-secret"}) as server, Client(server.url) as client:
        import yaml

        client.train(DATA / "data_train.json", DATA / "label_train.json",
                     yaml.safe_load(FAST_PARAMS), wait=True, pipeline_id="dl", poll_s=0.2)
        key = client.export_key()
        path = client.download("dl", tmp_path)  # a directory: the service's file name
        assert path == tmp_path / "automl-dl-v1.zip" and not list(tmp_path.glob(".*.part"))
        served = client.predict(DATA / "data_test.json", "dl")
        classifier = export.load(path, trust=key, pipeline_id="dl")
        local = classifier.predict_proba(TEST_RAW)[classifier.positive_class_]
        assert {sid: float(p) for sid, p in local.items()} == served
        assert client.download("dl", tmp_path / "v1.zip", version=1).read_bytes()[:2] == b"PK"
        with pytest.raises(NotFound):
            client.download("dl", tmp_path / "none.zip", version=7)
        assert not (tmp_path / "none.zip").exists()
        assert "# Model card: pipeline dl, version 1" in client.card("dl")

        ran = CliRunner().invoke(cli, ["--url", server.url, "export", "dl", "-o",
                                       str(tmp_path / "cli.zip")])
        assert ran.exit_code == 0, ran.output
        assert key["publicKey"] in ran.output and "version 1" in ran.output
        assert export.load(tmp_path / "cli.zip", trust=key["publicKey"]).classes_.tolist() == [0, 1]
        missing = CliRunner().invoke(cli, ["--url", server.url, "export", "nope"])
        assert missing.exit_code == 3 and "pipeline_not_found" in missing.output
        assert "Traceback" not in server.log_tail(100_000)
