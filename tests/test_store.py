"""The pipeline store, on each backend: write-through, restarts, several processes, tampering."""
import json
import multiprocessing
import pickle

import pytest

from automl.backends import DirectoryBackend, RedisBackend
from automl.errors import PipelineNotFound
from automl.store import ModelStore, TamperedArtifact


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle")


def reopened(backend):
    """The same shared state as another process (or a restarted one) sees it."""
    if isinstance(backend, DirectoryBackend):
        return DirectoryBackend(backend.root)
    return RedisBackend(backend.url)


def test_a_restarted_store_serves_what_was_saved(backend):
    ModelStore(backend).save({"weights": [1, 2]}, {"mean_cv_roc_auc": 0.9}, "7")
    restarted = ModelStore(reopened(backend))
    assert restarted.get("7") == {"weights": [1, 2]}
    assert restarted.metadata("7") == {"mean_cv_roc_auc": 0.9, "modelId": 7}
    assert list(restarted.list()) == ["7"]


def test_ids_are_assigned_in_order_when_not_given(backend):
    store = ModelStore(backend)
    assert [store.save(i, {}) for i in range(3)] == ["1", "2", "3"]
    store.save("named", {}, "alpha")
    assert list(store.list()) == ["1", "2", "3", "alpha"]


def test_replacing_an_id_swaps_the_whole_pipeline_and_cleans_up(backend):
    store = ModelStore(backend)
    store.save("old", {"v": 1}, "1")
    other_instance = ModelStore(reopened(backend))
    assert other_instance.get("1") == "old"
    store.save("new", {"v": 2}, "1")
    assert other_instance.get("1") == "new"  # the cached copy noticed the replacement
    assert other_instance.metadata("1")["v"] == 2
    assert len(backend.keys("artifacts")) == 1


def test_a_veto_keeps_the_current_pipeline(backend):
    store = ModelStore(backend)
    store.save("final", {"provisional": False}, "1")
    kept = store.save("baseline", {"provisional": True}, "1",
                      replace_if=lambda current: current.get("provisional", False))
    assert kept is None and store.get("1") == "final"
    assert len(backend.keys("artifacts")) == 1


def test_a_failed_save_leaves_the_previous_pipeline(backend):
    store = ModelStore(backend)
    store.save("good", {"v": 1}, "1")
    with pytest.raises(RuntimeError):
        store.save(Unpicklable(), {"v": 2}, "1")
    assert ModelStore(reopened(backend)).get("1") == "good"
    assert ModelStore(reopened(backend)).metadata("1")["v"] == 1


def test_a_tampered_artifact_is_refused_not_unpickled(backend, tmp_path):
    store = ModelStore(backend, secret=b"server-secret")
    store.save("real", {}, "1")
    record = json.loads(backend.get("models/1"))
    marker = tmp_path / "pwned"
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    backend.put(record["artifact"], evil)
    with pytest.raises(TamperedArtifact):
        ModelStore(reopened(backend), secret=b"server-secret").get("1")
    assert not marker.exists()


def test_a_store_with_another_secret_refuses_the_pipelines(backend):
    ModelStore(backend, secret=b"one").save("real", {}, "1")
    with pytest.raises(TamperedArtifact):
        ModelStore(reopened(backend), secret=b"two").get("1")


@pytest.mark.parametrize("bad_id", ["missing", "../etc/passwd", "secret_key"])
def test_unknown_ids_are_not_found(backend, bad_id):
    store = ModelStore(backend)
    with pytest.raises(PipelineNotFound):
        store.get(bad_id)
    with pytest.raises(PipelineNotFound):
        store.metadata(bad_id)


def _save_many(backend, worker):
    store = ModelStore(reopened(backend))
    for i in range(20):
        store.save((worker, i), {"worker": worker})


def _replace_many(backend, worker):
    store = ModelStore(reopened(backend))
    for i in range(20):
        store.save([worker] * 1000, {"worker": worker}, "shared")


def in_three_processes(target, backend):
    """Run ``target(backend, worker)`` in three processes at once, as three app instances."""
    ModelStore(backend)  # one generated secret for all
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=target, args=(backend, w)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0


def test_processes_saving_at_once_never_share_an_id(backend):
    in_three_processes(_save_many, backend)
    store = ModelStore(reopened(backend))
    assert len(store.list()) == 60
    assert sorted(store.get(pid) for pid in store.list()) == sorted(
        (w, i) for w in range(3) for i in range(20))


def test_processes_replacing_one_id_leave_one_whole_pipeline(backend):
    in_three_processes(_replace_many, backend)
    store = ModelStore(reopened(backend))
    winner = store.metadata("shared")["worker"]
    assert store.get("shared") == [winner] * 1000  # pipeline and metadata from the same writer
    assert len(backend.keys("artifacts")) == 1


def test_an_unreachable_redis_answers_503_not_a_crash():
    from automl.errors import StoreUnavailable
    from servers import free_port

    store_backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable) as raised:
        store_backend.keys("models")
    assert raised.value.status == 503 and "unreachable" in str(raised.value)
