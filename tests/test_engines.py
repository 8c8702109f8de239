"""Feature engines: kernels over any channels and lengths, joins, and the choice by CV."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from automl.engines import CombinedFeatures, build
from automl.feature_cost import COMPACT_MAX_FEATURES, COMPACT_SPEEDUP
from automl.errors import InvalidData, InvalidParameters
from automl.kernels import KernelFeatures
from automl.candidates import Candidate
from automl.choice import choice_of_engine
from automl.engines import prior_rank
from automl.params import parse_training_params
from automl.training import evaluate_candidates, train
from automl.training_data import cv_rows

AUTO = {"minirocket", "hydra", "quant", "multirocket", "multirocket+hydra", "rdst", "tsfresh",
        "minirocket+tsfresh"}


class NothingInTime(ClassifierMixin, BaseEstimator):
    """A search that evaluates nothing in time, as TPOT's does: the run keeps its baseline
    (or ensemble) without spending the tests' time on a search."""

    def fit(self, X, y):
        raise Exception("No individuals could be evaluated in the initial population")


def no_search(*args, **kwargs):
    """``train``'s ``search`` seam: every job's search is :class:`NothingInTime`."""
    return NothingInTime()


def _series(n: int, lengths=(40,), channels=("x",), seed=0):
    """Long-format series whose class shows as a bump in the middle; lengths vary by series."""
    rng = np.random.default_rng(seed)
    rows, labels = [], {}
    for sid in range(n):
        label = sid % 2
        length = lengths[sid % len(lengths)]
        for channel in channels:
            t = np.linspace(0, 1, length)
            signal = label * np.exp(-((t - 0.5) ** 2) / 0.01) + 0.3 * rng.normal(size=length)
            rows += [(f"s{sid}", channel, i, v) for i, v in enumerate(signal)]
        labels[f"s{sid}"] = label
    raw = pd.DataFrame(rows, columns=["example_id", "channel", "time", "measurement"])
    return raw, pd.Series(labels)


@pytest.mark.parametrize("kind", ["minirocket", "multirocket"])
def test_kernel_features_take_several_channels_and_unequal_lengths(kind):
    raw, y = _series(12, lengths=(30, 45, 8), channels=("a", "b"))
    features = KernelFeatures(kind=kind, column_kind="channel", column_sort="time")
    train_matrix = features.fit_transform(raw, y)
    assert list(train_matrix.index) == list(y.index)
    assert features.resampled_ and features.length_ == 45 and features.channels_ == ["a", "b"]
    assert train_matrix.shape[1] == features.n_features_extracted_ > 1000
    # Prediction: the same series give the same features, in any batch and row order.
    shuffled = raw.sample(frac=1.0, random_state=0).sort_values(["example_id", "time"],
                                                                  kind="stable")
    again = features.transform(shuffled).loc[train_matrix.index]
    np.testing.assert_allclose(again.to_numpy(), train_matrix.to_numpy(), rtol=1e-5)


def test_prediction_data_must_have_the_trained_channels():
    raw, y = _series(6, channels=("a", "b"))
    features = KernelFeatures(column_kind="channel").fit(raw, y)
    with pytest.raises(InvalidData, match="lack channel 'b'"):
        features.transform(raw[raw["channel"] == "a"])
    with pytest.raises(InvalidData, match="not trained on"):
        features.transform(raw.assign(channel=raw["channel"].replace("b", "c")))


def test_combined_engines_join_columns_and_predict_with_both():
    raw, y = _series(10)
    params = parse_training_params(b"extract_features: {column_kind: channel, column_sort: time,"
                                   b" default_fc_parameters: minimal}")
    parts = [build("minirocket", params), build("tsfresh", params)]
    combined = CombinedFeatures(parts=parts)
    matrix = combined.fit_transform(raw, y)
    assert matrix.shape[1] > 9996 and matrix.columns.is_unique
    assert combined.describe()["engine"] == "minirocket+tsfresh"
    pd.testing.assert_frame_equal(combined.transform(raw).loc[matrix.index], matrix,
                                  check_exact=False, rtol=1e-5)


def test_auto_picks_by_cross_validation_and_reports_every_candidate():
    raw, y = _series(24, lengths=(40, 36))
    params = parse_training_params(b"""
extract_features: {engine: auto, column_kind: channel, column_sort: time,
                   default_fc_parameters: minimal}
model_training: {model: logistic_regression, cv: 3}
""")
    classifier, report = train(raw, y, params)
    tried = report["candidates"]
    assert {c["engine"] for c in tried} == AUTO
    # The one standard error rule over the full sets; a compact tsfresh set may stand in for
    # tsfresh's, never compete on its own.
    full = [c for c in tried if not c["compact"]]
    top = max(full, key=lambda c: (c["cvScore"], c["cvAccuracy"]))
    close = {c["engine"] for c in full if c["cvScore"] >= top["cvScore"] - top["cvScoreStandardError"]}
    assert top["engine"] in close
    assert report["engine"] == max(close, key=lambda engine: prior_rank(engine.split("+")))
    assert report["engine"] == report["features"]["engine"]
    assert (classifier.predict(raw).loc[y.index].to_numpy() == y.to_numpy()).mean() > 0.9


def _scored(engine: str, score: float, se: float, accuracy: float | None = None) -> Candidate:
    metrics = {"score": score, "score_se": se, "accuracy": score if accuracy is None else accuracy}
    return Candidate(tuple(engine.split("+")), None, None, [], None, metrics)


@pytest.mark.parametrize("scores, chosen", [
    # Within one standard error of the top score, the engine more accurate in published
    # comparisons wins: small training sets cannot tell the engines apart.
    ({"tsfresh": (0.97, 0.02), "minirocket": (0.96, 0.01), "multirocket": (0.955, 0.02)},
     "multirocket"),
    # Further below than the top score's standard error: the scores decide.
    ({"tsfresh": (0.99, 0.005), "minirocket": (0.96, 0.01), "multirocket": (0.95, 0.01)},
     "tsfresh"),
    ({"multirocket": (0.80, 0.01), "minirocket+tsfresh": (0.85, 0.04), "minirocket": (0.84, 0.0)},
     "minirocket"),
    # Every fold perfect: a tie, the standard error is 0.
    ({"tsfresh": (1.0, 0.0), "multirocket": (1.0, 0.0), "minirocket": (1.0, 0.0)}, "multirocket"),
])
def test_engines_within_one_standard_error_go_to_the_published_favourite(scores, chosen):
    candidates = [_scored(engine, *score) for engine, score in scores.items()]
    assert choice_of_engine(candidates).engine == chosen


def test_an_engine_without_a_score_is_never_chosen_over_one_with():
    candidates = [_scored("multirocket", None, 0.0, accuracy=None), _scored("tsfresh", 0.7, 0.1)]
    assert choice_of_engine(candidates).engine == "tsfresh"


def test_tsfresh_is_scored_with_its_selection_redone_in_each_fold():
    """Labels unrelated to the series: selection on all series would look good in CV."""
    raw, _ = _series(30)
    noise = pd.Series(np.random.default_rng(1).integers(0, 2, 30), index=[f"s{i}" for i in range(30)])
    params = parse_training_params(b"""
extract_features: {column_kind: channel, column_sort: time, default_fc_parameters: minimal}
feature_selection: {fdr_level: 0.5}
model_training: {model: extra_trees, cv: 5}
""")
    _, report = train(raw, noise, params)
    assert report["mean_cv_accuracy"] < 0.8


def test_each_engine_extracts_once_per_job_whatever_the_candidates_and_folds(monkeypatch):
    from automl.features import TsfreshFeatures

    calls = []
    for cls in (KernelFeatures, TsfreshFeatures):
        original = cls.fit_transform

        def counted(self, X, *args, _original=original, **kwargs):
            calls.append((getattr(self, "kind", "tsfresh"), X["example_id"].nunique()))
            return _original(self, X, *args, **kwargs)

        monkeypatch.setattr(cls, "fit_transform", counted)
    raw, y = _series(20)
    params = parse_training_params(b"""
extract_features: {engine: auto, column_kind: channel, column_sort: time,
                   default_fc_parameters: minimal}
model_training: {model: extra_trees, cv: 4}
""")
    _, report = train(raw, y, params)
    full = [kind for kind, n_series in calls if n_series == 20]
    # 8 candidates x 4 folds, each engine extracted once for all of them
    assert sorted(full) == ["hydra", "minirocket", "multirocket", "quant", "rdst", "tsfresh"]
    assert {c["engine"] for c in report["candidates"]} == AUTO and report["cvFolds"] == 4


def test_a_search_that_evaluates_nothing_in_time_keeps_the_baseline(monkeypatch):
    """TPOT raises when no pipeline finishes within its time (seen at 1,000 series on MultiRocket's
    50,000 features): the job must still succeed with the baseline it already has."""
    raw, y = _series(12)
    params = parse_training_params(b"""
extract_features: {engine: minirocket, column_kind: channel, column_sort: time}
model_training: {model: tpot, cv: 3, model_args: {max_time_mins: 0.5, n_jobs: 1}}
""")
    classifier, report = train(raw, y, params, search=no_search)
    assert "No individuals" in report["keptBaseline"] and report["provisional"] is False
    assert report["modelFamily"] == "RidgeClassifierProba"
    assert (classifier.predict(raw).loc[y.index].to_numpy() == y.to_numpy()).mean() > 0.9


def test_tsfresh_keeps_a_compact_feature_set_that_cross_validates_as_well(monkeypatch):
    """Prediction computes only the compact set's few calculators, and says what it saves."""
    from automl import training

    trained = []
    finished = training.finished
    monkeypatch.setattr(training, "finished", lambda pool, classifier, choice, *args, **kwargs: (
        trained.append(choice), finished(pool, classifier, choice, *args, **kwargs))[1])
    raw, y = _series(40)
    params = parse_training_params(b"""
extract_features: {column_kind: channel, column_sort: time, default_fc_parameters: fast}
model_training: {model: extra_trees, cv: 4}
""")
    classifier, report = train(raw, y, params)
    outcome = report["compactFeatures"]
    assert outcome["kept"] and outcome["featuresUsed"] <= COMPACT_MAX_FEATURES
    assert outcome["cvScore"] >= outcome["fullCvScore"] - outcome["fullCvScoreStandardError"]
    assert outcome["speedupOverFullExtraction"] >= COMPACT_SPEEDUP
    assert outcome["speedupOverRelevant"] > 1
    assert report["features"]["featuresUsed"] == outcome["featuresUsed"] == report["trainShape"][1]
    assert [c["compact"] for c in report["candidates"]] == [False, True]
    # What is served is the model that was cross-validated, reading its features in the order
    # it was fitted on (the compact set is chosen by importance, not in column order).
    served = classifier.predict_proba(raw).loc[y.index].to_numpy()
    kept = trained[-1]
    fitted = kept.model.predict_proba(kept.matrix.loc[y.index, kept.columns].to_numpy())
    np.testing.assert_allclose(served, fitted)

    params = parse_training_params(b"""
extract_features: {column_kind: channel, column_sort: time, default_fc_parameters: fast}
feature_selection: {compact: false}
model_training: {model: extra_trees, cv: 4}
""")
    _, report = train(raw, y, params)
    assert report["compactFeatures"] is None
    assert report["features"]["featuresUsed"] > outcome["featuresUsed"]


def test_a_tsfresh_job_that_cannot_extract_within_its_budget_fails_at_once_with_advice():
    from automl.errors import TrainingFailed

    raw, y = _series(12)
    params = parse_training_params(b"""
extract_features: {column_kind: channel, column_sort: time}
model_training: {model: tpot, model_args: {max_time_mins: 1}}
""")
    with pytest.raises(TrainingFailed, match=r"10000 s, more than the whole budget of \d+ s "
                                             r".*engine: minirocket or auto"):
        train(raw, y, params, estimate_extraction=lambda engine: 10_000.0)


def test_integer_series_ids_from_python_train_the_same_model_as_text_ids():
    """The upload parser spells ids as text; a Python caller's integer ids must not leave the
    kernel engines' rows unmatched (every feature NaN, then every fit failing)."""
    raw, y = _series(16)
    params = parse_training_params(b"""
extract_features: {engine: minirocket, column_kind: channel, column_sort: time}
model_training: {model: logistic_regression, cv: 3}
""")
    numbered = raw.assign(example_id=raw["example_id"].str[1:].astype(int))
    _, as_text = train(raw, y, params)
    classifier, as_int = train(numbered, y.set_axis(y.index.str[1:].astype(int)), params)
    assert as_int["mean_cv_accuracy"] == as_text["mean_cv_accuracy"] > 0.8
    assert list(classifier.predict(numbered).index[:2]) == ["0", "1"]


def test_a_large_upload_is_cross_validated_on_a_stratified_sample_keeping_rare_classes():
    y = np.array([0] * 900 + [1] * 94 + [2] * 6)
    params = parse_training_params(b"model_training: {model: tpot, cv: 5, cv_series: 200}")
    rows = cv_rows(y, params)
    counts = np.bincount(y[rows])
    assert abs(len(rows) - 200) <= 5 and len(set(rows)) == len(rows)
    assert abs(counts[0] - 180) <= 2 and abs(counts[1] - 19) <= 2
    assert counts[2] == 5  # a rare class keeps one series per fold at least
    assert list(cv_rows(y[:150], params)) == list(range(150))  # at or below the limit: all
    with pytest.raises(InvalidParameters, match="cv_series"):
        parse_training_params(b"model_training: {cv_series: 10}")


def test_above_cv_series_candidates_are_scored_on_a_sample_and_the_model_fits_every_series():
    raw, y = _series(260, lengths=(30,))
    params = parse_training_params(b"""
extract_features: {engine: minirocket, column_kind: channel, column_sort: time}
model_training: {cv: 3, cv_series: 120, model: k_neighbors}
""")
    classifier, report = train(raw, y, params)
    assert report["cvSeries"]["sampled"] and report["cvSeries"]["of"] == 260
    assert abs(report["cvSeries"]["series"] - 120) <= 2
    assert report["crossValidation"]["series"] == report["cvSeries"]["series"]
    assert report["trainShape"][0] == 260
    assert _final(classifier.model_).n_samples_fit_ == 260  # every series, not the sample
    assert (classifier.predict(raw).loc[y.index].to_numpy() == y.to_numpy()).mean() > 0.9


def test_a_large_upload_serves_a_first_model_fitted_on_the_sample_before_its_cv_ends():
    raw, y = _series(260, lengths=(30,))
    params = parse_training_params(b"""
extract_features: {engine: minirocket, column_kind: channel, column_sort: time}
model_training: {cv: 3, cv_series: 120, model: tpot}
""")
    stages, published = [], []
    classifier, report = train(
        raw, y, params, deadline=time.time() + 1,  # no time for a search: the two models only
        progress=lambda **fields: stages.append(fields["stage"]),
        publish_provisional=lambda served, report: published.append(
            (served, report, list(stages))))
    (first, first_report, stages_then), (second, second_report, _) = published
    assert "baseline" not in stages_then  # served before the candidates' CV began
    sampled = first_report["cvSeries"]["series"]
    assert first_report["heldOut"] == {"fittedOn": sampled, "scoredOn": sampled}
    assert first.model_.steps[0][1].n_samples_seen_ == sampled < 260
    assert first_report["provisional"] and first_report["mean_cv_accuracy"] > 0.8
    assert first.predict(raw).shape == (260,)
    # The cross-validated model replaces it, fitted on every series, as does the final one.
    assert second_report["heldOut"] is None and second.model_.steps[0][1].n_samples_seen_ == 260
    assert report["heldOut"] is None and classifier.model_.steps[0][1].n_samples_seen_ == 260


def test_a_search_pipeline_fitted_on_the_sample_is_fitted_again_on_every_series():
    raw, y = _series(260, lengths=(30,))
    run = evaluate_candidates(raw, y, parse_training_params(b"""
extract_features: {engine: minirocket, column_kind: channel, column_sort: time}
model_training: {cv: 3, cv_series: 120, model: k_neighbors}
"""))
    baseline = run.baseline
    on_sample = clone(baseline.model).fit(baseline.selected_matrix()[run.pool.rows],
                                          run.pool.y_cv)
    searched = run.pool.evaluate_fitted(baseline, on_sample)
    assert _final(on_sample).n_samples_fit_ == len(run.pool.rows) < 260
    assert _final(searched.model).n_samples_fit_ == 260
    assert searched.metrics == baseline.metrics  # scored on the same sample and folds


def _final(model):
    return model.steps[-1][1] if hasattr(model, "steps") else model


def test_a_training_process_starts_without_importing_tsfresh():
    """tsfresh (with stumpy) takes seconds to import: a job whose engines are kernels should not
    wait for it before its first model."""
    import subprocess
    import sys

    probe = ("import sys, automl.worker, automl.training, automl.uploads, automl.report; "
             "print(sorted(m for m in ('tsfresh', 'stumpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_a_candidate_whose_full_fit_would_outlast_the_budget_is_left_out(monkeypatch):
    """Its CV folds' fits predict the fit on every series; the first cross-validated model is
    always fitted (something must be served), later ones only within the time left."""
    from automl import candidates, engines

    monkeypatch.setattr(candidates, "FIT_TIME_ALLOWANCE", 1e9)  # every later fit: too slow
    monkeypatch.setattr(engines, "auto_candidates", lambda: [("minirocket",), ("hydra",)])
    raw, y = _series(60, lengths=(30,))
    params = parse_training_params(b"""
extract_features: {engine: auto, column_kind: channel, column_sort: time}
model_training: {cv: 3, model: k_neighbors}
""")
    classifier, report = train(raw, y, params)
    assert [c["engine"] for c in report["candidates"]] == ["minirocket"]
    assert "would take about" in report["enginesSkipped"]["hydra"]
    assert report["engine"] == "minirocket"
    assert (classifier.predict(raw).loc[y.index].to_numpy() == y.to_numpy()).mean() > 0.9


def test_an_ensembles_prediction_cost_is_the_baselines_plus_each_members_addition_timed_once(
        monkeypatch):
    from automl import training
    from automl.ensemble import Selection

    raw, y = _series(40, lengths=(30,))
    run = evaluate_candidates(raw, y, parse_training_params(b"""
extract_features: {engine: minirocket, column_kind: channel, column_sort: time}
model_training: {cv: 3, ensemble_cost: 3}
"""))
    for names in (("multirocket",), ("quant",)):  # candidates of their own, as auto's are
        run.evaluate(names)
    others = [c for c in run.scored.values() if c is not run.baseline]
    # Timings as a served pipeline would show them: 5 ms of request machinery, then each
    # member's engine; the baseline's 10 ms, the others' 20 ms each.
    own = {id(run.baseline): 10.0, **{id(c): 20.0 for c in others}}
    timed = []

    def one_series_ms(pool, classifier, choice, repeats):
        members = choice.members if isinstance(choice, Selection) else [choice]
        timed.append([m.engine for m in members])
        return 5.0 + sum(own[id(m)] for m in members)

    monkeypatch.setattr(training, "one_series_ms", one_series_ms)
    heaviest = [others[0], run.baseline, others[1]]
    # The limit is 3 x 15 ms: the baseline and one other (15 + 20 ms) fit, a second does not.
    assert run.within_prediction_cost(heaviest) == [others[0], run.baseline]
    assert run.within_prediction_cost(heaviest[::-1]) == [others[1], run.baseline]
    # Each candidate timed once, beside the baseline, however often ensembles are weighed.
    assert len(timed) == 3
