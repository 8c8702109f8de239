"""The memory a training may use (AUTOML_JOB_MEMORY_MB): engines narrowed or skipped to stay
within it, and an upload that cannot fit refused at submission with what to change."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from automl import engines, memory
from automl.config import ConfigurationError, from_environment
from automl.params import parse_training_params
from automl.training import train
from conftest import files

MIB = memory.MIB


def _series(n: int, length: int = 30) -> tuple[pd.DataFrame, pd.Series]:
    """Series whose class shows as a bump in the middle."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, length)
    rows, labels = [], {}
    for sid in range(n):
        signal = (sid % 2) * np.exp(-((t - 0.5) ** 2) / 0.01) + 0.3 * rng.normal(size=length)
        rows += [(f"s{sid}", i, v) for i, v in enumerate(signal)]
        labels[f"s{sid}"] = sid % 2
    return (pd.DataFrame(rows, columns=["example_id", "time", "measurement"]),
            pd.Series(labels))


def _memory_for(series: int, length: int, width: float, names=("minirocket",)) -> int:
    """The job memory (MiB) in which ``names`` fits at about ``width`` of its full size."""
    full = engines.feature_bytes(names, series, 1, length)
    return int((memory.PROCESS_BYTES + width * memory.fitting_bytes(full)) / MIB) + 1


def test_an_engine_gets_fewer_kernels_to_fit_and_the_report_says_so():
    raw, y = _series(120)
    params = parse_training_params(b"extract_features: {engine: minirocket, column_sort: time}\n"
                                   b"model_training: {model: k_neighbors, cv: 3}")
    job_mb = _memory_for(120, 30, 0.4)
    expected = (job_mb * MIB - memory.PROCESS_BYTES) / memory.fitting_bytes(
        engines.feature_bytes(("minirocket",), 120, 1, 30))
    classifier, report = train(raw, y, params, job_memory_mb=job_mb)
    assert 0.4 < expected < 0.5
    assert report["enginesNarrowed"] == {"minirocket": pytest.approx(expected, abs=0.001)}
    assert report["featuresExtracted"] <= expected * 9_996
    assert (classifier.predict(raw).loc[y.index].to_numpy() == y.to_numpy()).mean() > 0.9
    _, roomy = train(raw, y, params, job_memory_mb=_memory_for(120, 30, 1.5))
    assert roomy["enginesNarrowed"] is None and roomy["featuresExtracted"] == 9_996


def test_auto_narrows_the_wide_engines_and_skips_a_join_that_no_longer_fits():
    raw, y = _series(120)
    params = parse_training_params(b"extract_features: {engine: auto, column_sort: time}\n"
                                   b"model_training: {model: k_neighbors, cv: 3}")
    # Room for MiniRocket at full width, and the wider engines beside it only narrowed.
    _, report = train(raw, y, params, job_memory_mb=_memory_for(120, 30, 1.05))
    narrowed = report["enginesNarrowed"]
    assert "minirocket" not in narrowed  # the first engine fitted at full width
    assert narrowed["multirocket"] < 0.5 and narrowed["rdst"] < 0.5
    tried = {c["engine"]: c["featuresExtracted"] for c in report["candidates"]}
    assert tried["minirocket"] == 9_996 and tried["multirocket"] < 0.5 * 49_728
    # A join is fitted on a joined copy of its parts: it cannot be narrowed, so it is skipped.
    assert "AUTOML_JOB_MEMORY_MB" in report["enginesSkipped"]["multirocket+hydra"]


def test_a_width_below_a_tenth_is_not_offered():
    full = 100 * MIB
    job = memory.PROCESS_BYTES + memory.fitting_bytes(full) // 2
    assert memory.width_that_fits(full, 0, job) == pytest.approx(0.5)
    assert memory.width_that_fits(full, 0, job * 10) == 1.0
    assert memory.width_that_fits(full, 0, memory.PROCESS_BYTES + 1) is None
    assert memory.width_that_fits(full, job, job) is None  # what is held counts


@pytest.mark.parametrize("engine", ["minirocket", "tsfresh", "[multirocket, hydra]"])
def test_submission_refuses_exactly_the_jobs_the_run_could_not_fit(engine):
    """One memory model: an upload accepted at submission is one the run finds a width for,
    and one refused is one it would have had to skip (a join needs its parts and a joined
    copy, more than its features alone)."""
    params = parse_training_params(f"extract_features: {{engine: {engine}}}".encode())
    names = params.features.engine
    names = names if isinstance(names, tuple) else (names,)
    panel = memory.Panel(series=2_000, channels=1, length=150)
    least = int(memory.PROCESS_BYTES + memory.narrowest_bytes(names, panel))
    for job_mb in np.linspace(0.5 * least / MIB, 2 * least / MIB, 61).astype(int):
        runs = memory.width_for(names, panel, {}, job_mb * MIB) is not None
        try:
            memory.refuse_what_cannot_fit(params, panel, job_mb)
            accepted = True
        except memory.PayloadTooLarge:
            accepted = False
        assert accepted == runs, (engine, job_mb)


@pytest.fixture
def app_overrides():
    # Room for 500 series of 30 points with the narrowest MiniRocket, not for 2,000.
    return {"JOB_MEMORY_MB": _memory_for(500, 30, memory.MIN_WIDTH)}


def _csv(raw: pd.DataFrame, y: pd.Series) -> dict:
    labels = pd.DataFrame({"example_id": y.index, "label": y.to_numpy()})
    return files(raw_data=raw.to_csv(index=False), labels=labels.to_csv(index=False),
                 params="extract_features: {engine: minirocket, column_sort: time}\n")


def test_an_upload_too_large_for_a_trainings_memory_is_refused_at_submission(client, app):
    raw, y = _series(2_000)
    response = client.post("/train_model", data=_csv(raw, y), content_type="multipart/form-data",
                           headers={"Prefer": "respond-async"})
    assert response.status_code == 413, response.data
    body = response.get_json()
    assert body["error"] == "payload_too_large"
    assert "AUTOML_JOB_MEMORY_MB" in body["message"]
    most = int(re.search(r"at most ([\d,]+) series", body["message"]).group(1).replace(",", ""))
    assert 450 <= most < 2_000
    assert client.get("/jobs").get_json() == []  # nothing was queued


def test_the_default_job_memory_is_the_instances_shared_by_concurrent_trainings():
    one, two = (from_environment({"AUTOML_MAX_CONCURRENT_TRAININGS": n})["JOB_MEMORY_MB"]
                for n in ("1", "2"))
    assert one > 0 and abs(one / 2 - two) <= 1
    assert from_environment({"AUTOML_JOB_MEMORY_MB": "3000"})["JOB_MEMORY_MB"] == 3000
    with pytest.raises(ConfigurationError, match="AUTOML_JOB_MEMORY_MB"):
        from_environment({"AUTOML_JOB_MEMORY_MB": "-5"})


def test_kernel_features_of_a_large_upload_grow_no_faster_than_their_matrix(monkeypatch):
    """Fitted on a few series, transformed in chunks into one float32 matrix in the labels'
    order: twice the series cost about one more matrix, not a float64 transform of every
    series or a second full copy on top."""
    import tracemalloc

    from automl import kernels

    monkeypatch.setattr(kernels, "FIT_SERIES", 500)  # 'large' from 500 series
    peaks, sizes = [], []
    for n in (3_000, 6_000):
        raw, y = _series(n, length=24)
        y = y.sample(frac=1.0, random_state=0)  # labels in another order than the rows
        tracemalloc.start()
        try:
            matrix = kernels.KernelFeatures(kind="hydra", column_sort="time").fit_transform(raw, y)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert list(matrix.index) == list(y.index)
        sizes.append(matrix.to_numpy().nbytes)
    assert peaks[1] - peaks[0] < 1.3 * (sizes[1] - sizes[0]), (
        [p / MIB for p in peaks], [s / MIB for s in sizes])


def test_a_large_prediction_is_computed_a_chunk_of_series_at_a_time(monkeypatch):
    """The same probabilities as at once, while memory grows with the answer, not with every
    series' features held together."""
    import tracemalloc

    from automl import classifier as classifier_module

    raw, y = _series(200, length=24)
    params = parse_training_params(b"extract_features: {engine: minirocket, column_sort: time}\n"
                                   b"model_training: {model: random_forest, "
                                   b"model_args: {n_estimators: 10, random_state: 0}, cv: 3}")
    fitted, _ = train(raw, y, params)
    big, _ = _series(4_000, length=24)
    at_once = fitted.predict_proba(big)
    peaks = {}
    for chunk in (4_000, 250):
        monkeypatch.setattr(classifier_module, "PREDICT_CHUNK_SERIES", chunk)
        tracemalloc.start()
        try:
            chunked = fitted.predict_proba(big)
            peaks[chunk] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert chunked.index.equals(at_once.index)
        assert np.allclose(chunked.to_numpy(), at_once.to_numpy())
    matrix_bytes = 4_000 * 9_996 * 4
    assert peaks[4_000] > matrix_bytes  # at once: every series' features
    assert peaks[250] < matrix_bytes / 4, {k: v / MIB for k, v in peaks.items()}
