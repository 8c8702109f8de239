"""The pipeline registry, on each backend: versions, aliases, restarts, several processes,
tampering and damaged records."""
import hashlib
import hmac
import json
import multiprocessing
import pickle

import pytest

from automl.backends import DirectoryBackend, RedisBackend
from automl.config import ConfigurationError
from automl.errors import PipelineNotFound, PipelineUnreadable
from automl.store import Keys, ModelStore, VersionNotFound


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle")


def reopened(backend):
    """The same shared state as another process (or a restarted one) sees it."""
    if isinstance(backend, DirectoryBackend):
        return DirectoryBackend(backend.root)
    return RedisBackend(backend.url)


def test_a_restarted_store_serves_what_was_saved(backend):
    assert ModelStore(backend).save({"weights": [1, 2]}, {"mean_cv_roc_auc": 0.9}, "7") == ("7", 1)
    restarted = ModelStore(reopened(backend))
    assert restarted.get("7") == {"weights": [1, 2]}
    meta = restarted.metadata("7")
    assert meta["mean_cv_roc_auc"] == 0.9 and meta["modelId"] == 7 and meta["version"] == 1
    assert meta["current"] is True and meta["provisional"] is False
    assert list(restarted.list()) == ["7"]


def test_ids_are_assigned_in_order_and_kept_exactly_as_written(backend):
    store = ModelStore(backend)
    assert [store.save(i, {})[0] for i in range(3)] == ["1", "2", "3"]
    store.save("named", {}, "alpha")
    store.save("padded", {}, "010")
    assert list(store.list()) == ["1", "2", "3", "010", "alpha"]
    assert store.metadata("010")["modelId"] == "010" and store.get("010") == "padded"
    assert store.save("next", {})[0] == "11"  # after the largest number, 010 included


def test_retraining_adds_a_version_and_rollback_serves_the_old_one_again(backend):
    store = ModelStore(backend)
    store.save("old", {"v": 1}, "1", created_by="alice")
    other_instance = ModelStore(reopened(backend))
    assert other_instance.get("1") == "old"
    assert store.save("new", {"v": 2}, "1", created_by="bob") == ("1", 2)
    assert other_instance.get("1") == "new"  # the cached copy noticed the new current version
    assert other_instance.get("1", version=1) == "old"
    versions = other_instance.versions("1")
    assert [(v["version"], v["current"], v["createdBy"]) for v in versions] == [
        (1, False, "alice"), (2, True, "bob")]
    assert other_instance.owner("1") == "alice"  # who created the pipeline

    assert store.rollback("1")["version"] == 1
    assert other_instance.get("1") == "old" and other_instance.metadata("1")["v"] == 1
    assert store.rollback("1", to=2)["version"] == 2
    with pytest.raises(VersionNotFound):
        store.rollback("1", to=9)


def test_a_provisional_version_never_displaces_a_finished_one(backend):
    store = ModelStore(backend)
    store.save("final", {}, "1")
    pid, version = store.save("baseline", {}, "1", provisional=True, job_id="j2")
    assert (pid, version) == ("1", 2)
    assert store.get("1") == "final" and store.get("1", version=2) == "baseline"
    store.save("better", {}, "1", version=2, provisional=True)  # replaced in place
    assert store.get("1", version=2) == "better" and len(store.versions("1")) == 2
    store.save("searched", {"done": True}, "1", version=2)  # the job's final model
    assert store.get("1") == "searched" and store.metadata("1")["provisional"] is False
    assert len(backend.keys(Keys.ARTIFACTS)) == 2  # replaced artifacts are removed


def test_a_new_pipeline_serves_its_provisional_model_and_a_failed_job_removes_it(backend):
    store = ModelStore(backend)
    pid, version = store.save("baseline", {}, provisional=True, job_id="j1")
    assert store.get(pid) == "baseline" and store.metadata(pid)["provisional"] is True
    store.discard(pid, version)
    assert store.list() == {} and backend.keys(Keys.ARTIFACTS) == []
    with pytest.raises(PipelineNotFound):
        store.get(pid)


def test_discarding_a_retraining_falls_back_to_the_finished_version(backend):
    store = ModelStore(backend)
    store.save("v1", {}, "p")
    _, version = store.save("baseline", {}, "p", provisional=True)
    store.discard("p", version)
    assert store.get("p") == "v1" and [v["version"] for v in store.versions("p")] == [1]


def test_only_the_newest_finished_versions_are_kept(backend):
    store = ModelStore(backend, keep_versions=2)
    for n in range(1, 4):
        store.save(f"v{n}", {}, "p")
    assert [v["version"] for v in store.versions("p")] == [2, 3]
    assert store.rollback("p")["version"] == 2  # the current alias may point at an old one
    _, version = store.save("baseline", {}, "p", provisional=True)  # a training runs meanwhile
    assert [v["version"] for v in store.versions("p")] == [2, 3, 4]  # provisional: no pruning
    assert store.get("p") == "v2"
    store.save("v4", {}, "p", version=version)
    assert [v["version"] for v in store.versions("p")] == [3, 4]
    assert store.get("p") == "v4" and len(backend.keys(Keys.ARTIFACTS)) == 2


def test_deleting_removes_every_version_and_artifact(backend):
    store = ModelStore(backend)
    store.save("a", {}, "p")
    store.save("b", {}, "p")
    store.save("other", {}, "q")
    store.delete_version("p", 1)
    assert [v["version"] for v in store.versions("p")] == [2]
    store.delete("p")
    assert list(store.list()) == ["q"] and len(backend.keys(Keys.ARTIFACTS)) == 1
    assert backend.keys(Keys.versions("p")) == []
    with pytest.raises(PipelineNotFound):
        ModelStore(reopened(backend)).get("p")


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
    record = json.loads(backend.get(Keys.version("1", 1)))
    marker = tmp_path / "pwned"
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    backend.put(record["artifact"], evil)
    with pytest.raises(PipelineUnreadable) as raised:
        ModelStore(reopened(backend), secret=b"server-secret").get("1")
    assert "signature" in raised.value.message
    assert not marker.exists()


def test_another_ids_artifact_and_signature_copied_in_are_refused(backend):
    store = ModelStore(backend, secret=b"s")
    store.save("victim's model", {}, "victim")
    store.save("attacker's model", {}, "attacker")
    stolen = json.loads(backend.get(Keys.version("attacker", 1)))
    victim = json.loads(backend.get(Keys.version("victim", 1)))
    victim.update(artifact=stolen["artifact"], signature=stolen["signature"])
    backend.put(Keys.version("victim", 1), json.dumps(victim).encode())
    with pytest.raises(PipelineUnreadable):
        ModelStore(reopened(backend), secret=b"s").get("victim")
    assert ModelStore(reopened(backend), secret=b"s").get("attacker") == "attacker's model"


def test_a_store_with_another_secret_refuses_the_pipelines(backend):
    ModelStore(backend, secret=b"one").save("real", {}, "1")
    with pytest.raises(PipelineUnreadable):
        ModelStore(reopened(backend), secret=b"two").get("1")


def test_a_lost_generated_secret_with_pipelines_left_is_refused_at_start(backend):
    ModelStore(backend).save("real", {}, "1")
    backend.delete("secret_key")
    with pytest.raises(ConfigurationError) as refused:
        ModelStore(reopened(backend))
    assert "secret" in str(refused.value) and "AUTOML_SECRET_KEY" in str(refused.value)
    assert ModelStore(reopened(backend), secret=b"given").list()  # a given key still starts


@pytest.mark.parametrize("damage", ["record", "version", "artifact"])
def test_one_damaged_pipeline_is_listed_as_unreadable_and_the_others_served(backend, damage):
    store = ModelStore(backend)
    store.save("fine", {"modelType": "A"}, "1")
    store.save("broken", {"modelType": "B"}, "2")
    if damage == "record":
        backend.put(Keys.pipeline("2"), b"\x00garbage")
    elif damage == "version":
        backend.put(Keys.version("2", 1), b"[]")
    else:
        backend.delete(json.loads(backend.get(Keys.version("2", 1)))["artifact"])
    fresh = ModelStore(reopened(backend))
    listed = fresh.list()
    assert listed["1"]["modelType"] == "A"
    assert listed["2"]["unreadable"] is True and "Pipeline '2'" in listed["2"]["message"]
    with pytest.raises(PipelineUnreadable):
        fresh.get("2")
    assert fresh.get("1") == "fine"


def test_pipelines_stored_before_versions_are_migrated_at_start(backend):
    secret = b"old-secret"
    payload = pickle.dumps({"legacy": True})
    backend.put("artifacts/5-abc", payload)
    backend.put("models/5", json.dumps({
        "artifact": "artifacts/5-abc",
        "signature": hmac.new(secret, payload, hashlib.sha256).hexdigest(),
        "metadata": {"modelId": 5, "mean_cv_roc_auc": 0.8, "provisional": False}}).encode())
    store = ModelStore(reopened(backend), secret=secret)
    assert store.get("5") == {"legacy": True}
    assert store.metadata("5")["version"] == 1 and store.metadata("5")["mean_cv_roc_auc"] == 0.8
    assert store.save({"new": 1}, {}, "5") == ("5", 2)


@pytest.mark.parametrize("bad_id", ["missing", "../etc/passwd", "secret_key"])
def test_unknown_ids_are_not_found(backend, bad_id):
    store = ModelStore(backend)
    with pytest.raises(PipelineNotFound):
        store.get(bad_id)
    with pytest.raises(PipelineNotFound):
        store.metadata(bad_id)
    with pytest.raises(PipelineNotFound):
        store.versions(bad_id)


def _save_many(backend, worker):
    store = ModelStore(reopened(backend))
    for i in range(20):
        store.save((worker, i), {"worker": worker})


def _replace_many(backend, worker):
    store = ModelStore(reopened(backend), keep_versions=100)
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


def test_processes_adding_versions_to_one_id_never_share_a_version(backend):
    in_three_processes(_replace_many, backend)
    store = ModelStore(reopened(backend))
    versions = store.versions("shared")
    assert [v["version"] for v in versions] == list(range(1, 61))
    for v in versions:  # each version's pipeline and metadata come from the same writer
        assert store.get("shared", v["version"]) == [v["worker"]] * 1000
    assert len(backend.keys(Keys.ARTIFACTS)) == 60


def test_an_unreachable_redis_answers_503_not_a_crash():
    from automl.errors import StoreUnavailable
    from servers import free_port

    store_backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable) as raised:
        store_backend.keys("models")
    assert raised.value.status == 503 and "unreachable" in str(raised.value)
