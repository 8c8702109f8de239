"""A job's checkpoint: a training that stops part-way (its process killed) is taken up by the
next start where it stopped, within what is left of its budget, and ends with the model an
uninterrupted training would have made."""
from __future__ import annotations

import time

import numpy as np
import pytest

from automl.backends import DirectoryBackend
from automl.checkpoints import JobCheckpoint
from automl.jobs import JobState, JobStore, Keys
from automl.params import parse_training_params
from automl.store import ModelStore
from automl.training import train
from automl.uploads import Upload

from test_engines import _series, no_search

# Every engine and a search that finds nothing, so the run ends with their ensemble; every
# member kept whatever its measured prediction time, so two runs choose the same members.
PARAMS = b"""
extract_features: {engine: auto, column_kind: channel, column_sort: time,
                   default_fc_parameters: minimal}
model_training: {model: tpot, cv: 3, ensemble_cost: 100, model_args: {max_time_mins: 2, n_jobs: 1}}
"""


class Killed(BaseException):
    """What stops a run part-way, as a SIGKILL would (nothing in training catches it)."""


def killed_at_engine(victim: str, heard: list):
    """A progress callback that records every stage and stops the run as it starts
    extracting ``victim``'s features."""
    def progress(**fields):
        heard.append(fields)
        if fields.get("stage") == "features" and fields.get("engine") == victim \
                and not fields.get("estimating"):
            raise Killed
    return progress


@pytest.fixture
def checkpoint(tmp_path):
    backend = DirectoryBackend(tmp_path / "state")
    return JobCheckpoint(backend, ModelStore(backend, secret=b"s" * 32), "0000000001abcd")


def test_a_training_stopped_part_way_resumes_without_redoing_its_candidates(checkpoint):
    raw, y = _series(24, lengths=(40, 36))
    params = parse_training_params(PARAMS)
    _, uninterrupted = train(raw, y, params, search=no_search)
    engines = [c["engine"] for c in uninterrupted["candidates"]]
    victim = engines[3]

    first: list[dict] = []
    with pytest.raises(Killed):
        train(raw, y, params, search=no_search, progress=killed_at_engine(victim, first),
              checkpoint=checkpoint)
    # As if the first start had searched for 42 s (on other features) before it was killed.
    checkpoint.save("search", {"key": "other features", "population": b"", "generations": 1,
                               "seconds": 42.0})
    second: list[dict] = []
    classifier, report = train(raw, y, params, search=no_search, checkpoint=checkpoint,
                               progress=lambda **fields: second.append(fields))

    assert report["resumed"]["candidatesRestored"] == sorted(engines[:3])
    assert checkpoint.restored[0] == "run" and len(checkpoint.restored) > 3  # progress: resumed
    # The engines the first start extracted are not extracted again: their features are
    # recomputed by the engines it fitted, and their models are not cross-validated again.
    extracted_again = {f["engine"] for f in second
                       if f.get("stage") in ("features", "baseline")}
    assert extracted_again.isdisjoint(engines[:3]) and victim in extracted_again
    assert second[0]["stage"] == "resuming" and "resuming" in report["stageSeconds"]
    assert report["stageSeconds"]["search"] >= 42.0  # the job's search time, over its starts
    # The same candidates, scores and model as a training that was never stopped.
    assert [(c["engine"], c["cvScore"]) for c in report["candidates"]] == \
        [(c["engine"], c["cvScore"]) for c in uninterrupted["candidates"]]
    assert report["ensemble"]["members"] == uninterrupted["ensemble"]["members"]
    assert report["mean_cv_score"] == uninterrupted["mean_cv_score"]
    assert (classifier.predict(raw).loc[y.index].to_numpy() == y.to_numpy()).mean() > 0.9


def test_a_checkpoint_not_signed_by_this_service_is_ignored_and_the_training_starts_over(
        checkpoint):
    raw, y = _series(12)
    params = parse_training_params(b"""
extract_features: {engine: minirocket, column_kind: channel, column_sort: time}
model_training: {model: tpot, cv: 3, model_args: {max_time_mins: 1, n_jobs: 1}}
""")
    train(raw, y, params, search=no_search, checkpoint=checkpoint)
    assert checkpoint.load("run") is not None
    # Someone with write access to the store, but not the secret, swaps a part.
    key = Keys.checkpoint(checkpoint.job_id, "run")
    stored = checkpoint.backend.get(key)
    checkpoint.backend.put(key, stored[:64] + b"\x80\x04K*.")  # a pickle of 42, unsigned
    assert checkpoint.load("run") is None

    _, report = train(raw, y, params, search=no_search, checkpoint=checkpoint)
    assert report["resumed"] is None and report["candidates"][0]["engine"] == "minirocket"


def test_a_job_started_again_has_only_what_its_earlier_start_left_of_its_budget(tmp_path):
    jobs = JobStore(DirectoryBackend(tmp_path / "state"), max_attempts=2)
    uploads = {"raw_data": Upload(b"id,time,value\n", "raw.csv", "text/csv")}
    job_id = jobs.create(uploads, None, budget_s=300).job_id
    first = jobs.claim("runner-a")
    time.sleep(0.5)
    jobs.beat(job_id)  # its last sign of life, then it is lost
    assert jobs.requeue(job_id, "its runner went away")

    waiting = jobs.get(job_id)
    assert waiting.state == JobState.QUEUED and 0.4 < waiting.spent_seconds < 5
    second = jobs.claim("runner-b")
    assert second.attempt == 2 and second.spent_seconds == waiting.spent_seconds
    assert second.deadline - second.started_epoch == pytest.approx(300 - second.spent_seconds)
    assert second.hard_deadline() - first.hard_deadline() == pytest.approx(
        second.started_epoch - first.started_epoch - second.spent_seconds)


def test_a_finished_job_leaves_no_checkpoint_behind(tmp_path):
    backend = DirectoryBackend(tmp_path / "state")
    jobs = JobStore(backend)
    job_id = jobs.create({}, None, budget_s=60).job_id
    jobs.claim("runner")
    saved = JobCheckpoint(backend, ModelStore(backend, secret=b"s" * 32), job_id)
    assert saved.save("run", {"parts": []}) and saved.load("run") == {"parts": []}
    jobs.succeed(job_id, {"modelId": 1})
    assert backend.keys(Keys.checkpoints(job_id)) == [] and saved.load("run") is None


def test_the_searchs_population_is_kept_and_a_second_search_starts_from_it(checkpoint, tmp_path):
    """TPOT rewrites its population file after each generation; the job's checkpoint gets a
    copy, and a search resumed from it carries on from the generations it had done."""
    from automl.search import checkpointed, searched_seconds

    from tpot import TPOTClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)

    def search(folder, generations):
        return TPOTClassifier(search_space="linear-light", scorers=["accuracy"], cv=3,
                              generations=generations, population_size=4, max_time_mins=1,
                              random_state=0, verbose=0, n_jobs=1,
                              periodic_checkpoint_folder=folder)

    began = time.monotonic()
    with checkpointed(checkpoint, "features-1", every_s=0.2) as (folder, done):
        assert done == 0
        first = search(folder, 2).fit(X, y)
        time.sleep(0.6)  # the copier's next look
    saved = checkpoint.load("search")
    assert saved["key"] == "features-1" and saved["generations"] == 2
    # The seconds searched so far, for the job's stageSeconds after a resume.
    assert 0 < searched_seconds(saved) <= time.monotonic() - began
    scored_first = len(first.evaluated_individuals)

    with checkpointed(checkpoint, "other features", every_s=0.2) as (folder, done):
        assert done == 0  # a population scored on other features is not taken up
    with checkpointed(checkpoint, "features-1", every_s=0.2) as (folder, done):
        assert done == 2
        second = search(folder, 1).fit(X, y)
        time.sleep(0.6)
    evaluated = second.evaluated_individuals
    assert len(evaluated) > scored_first and evaluated["Generation"].max() == 2
    assert searched_seconds(checkpoint.load("search")) > searched_seconds(saved)  # the sum
