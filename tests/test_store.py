"""The pipeline store: write-through, restarts, several processes, tampering."""
import json
import multiprocessing

import pytest

from automl.errors import PipelineNotFound
from automl.store import ModelStore, TamperedArtifact


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle")


def test_a_restarted_store_serves_what_was_saved(tmp_path):
    ModelStore(tmp_path).save({"weights": [1, 2]}, {"mean_cv_roc_auc": 0.9}, "7")
    restarted = ModelStore(tmp_path)
    assert restarted.get("7") == {"weights": [1, 2]}
    assert restarted.metadata("7") == {"mean_cv_roc_auc": 0.9, "modelId": 7}
    assert list(restarted.list()) == ["7"]


def test_ids_are_assigned_in_order_when_not_given(tmp_path):
    store = ModelStore(tmp_path)
    assert [store.save(i, {}) for i in range(3)] == ["1", "2", "3"]
    store.save("named", {}, "alpha")
    assert list(store.list()) == ["1", "2", "3", "alpha"]


def test_replacing_an_id_swaps_the_whole_pipeline_and_cleans_up(tmp_path):
    store = ModelStore(tmp_path)
    store.save("old", {"v": 1}, "1")
    other_worker = ModelStore(tmp_path)
    assert other_worker.get("1") == "old"
    store.save("new", {"v": 2}, "1")
    assert other_worker.get("1") == "new"  # the cached copy noticed the replacement
    assert other_worker.metadata("1")["v"] == 2
    assert len(list(tmp_path.glob("1-*.pkl"))) == 1


def test_a_failed_save_leaves_the_previous_pipeline(tmp_path):
    store = ModelStore(tmp_path)
    store.save("good", {"v": 1}, "1")
    with pytest.raises(RuntimeError):
        store.save(Unpicklable(), {"v": 2}, "1")
    assert ModelStore(tmp_path).get("1") == "good"
    assert ModelStore(tmp_path).metadata("1")["v"] == 1
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_tampered_artifact_is_refused_not_unpickled(tmp_path):
    store = ModelStore(tmp_path, secret=b"server-secret")
    store.save("real", {}, "1")
    record = json.loads((tmp_path / "1.json").read_text())
    (tmp_path / record["artifact"]).write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(TamperedArtifact):
        ModelStore(tmp_path, secret=b"server-secret").get("1")


def test_a_store_with_another_secret_refuses_the_pipelines(tmp_path):
    ModelStore(tmp_path, secret=b"one").save("real", {}, "1")
    with pytest.raises(TamperedArtifact):
        ModelStore(tmp_path, secret=b"two").get("1")


@pytest.mark.parametrize("bad_id", ["missing", "../etc/passwd", ".secret_key"])
def test_unknown_ids_are_not_found(tmp_path, bad_id):
    store = ModelStore(tmp_path)
    with pytest.raises(PipelineNotFound):
        store.get(bad_id)
    with pytest.raises(PipelineNotFound):
        store.metadata(bad_id)


def _save_many(directory, worker):
    store = ModelStore(directory)
    for i in range(20):
        store.save((worker, i), {"worker": worker})


def test_processes_saving_at_once_never_share_an_id(tmp_path):
    ModelStore(tmp_path)  # one secret for all
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_save_many, args=(tmp_path, w)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    store = ModelStore(tmp_path)
    assert len(store.list()) == 60
    assert sorted(store.get(pid) for pid in store.list()) == sorted(
        (w, i) for w in range(3) for i in range(20))
