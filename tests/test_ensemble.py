"""The ensemble: CAWPE weights on out-of-fold probabilities, an honest outer estimate, and one
served estimator that predicts from raw series."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from automl.candidates import Candidate
from automl.ensemble import (CAWPE_ALPHA, WeightedEnsemble, cawpe_fit, combine,
                             fitted_temperature, scaled, select)
from automl.params import parse_training_params
from automl.training import train

from test_engines import _series, no_search


def _proba(y: np.ndarray, right: np.ndarray, confidence: float, n_classes: int = 2) -> np.ndarray:
    """Probabilities putting ``confidence`` on the true class where ``right``, else on another."""
    predicted = np.where(right, y, (y + 1) % n_classes)
    proba = np.full((len(y), n_classes), (1 - confidence) / (n_classes - 1))
    proba[np.arange(len(y)), predicted] = confidence
    return proba


def _candidate(name: str, oof: np.ndarray) -> Candidate:
    return Candidate(names=(name,), features=None, matrix=None, columns=[], model=None,
                     metrics={"score": None, "accuracy": None}, oof=oof)


def test_more_accurate_members_weigh_more_by_the_power_of_their_accuracy():
    y = np.arange(100) % 2
    rows = np.arange(100)
    perfect = _proba(y, np.ones(100, bool), 0.9)
    half = _proba(y, rows % 4 < 2, 0.9)
    weights, _ = cawpe_fit([perfect, half], y, rows)
    assert weights.sum() == pytest.approx(1)
    assert weights[0] / weights[1] == pytest.approx(0.5 ** -CAWPE_ALPHA)


def test_an_overconfident_member_is_tempered_without_changing_its_answers():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 3
    overconfident = _proba(y, rng.random(200) < 0.7, 0.999, n_classes=3)
    temperature = fitted_temperature(overconfident, y)
    tempered = scaled(overconfident, temperature)
    assert temperature > 1
    assert (tempered.argmax(axis=1) == overconfident.argmax(axis=1)).all()
    assert np.allclose(tempered.sum(axis=1), 1)

    def loss(p):
        return -np.log(p[np.arange(len(y)), y]).mean()

    assert loss(tempered) < loss(overconfident) / 3


def test_the_outer_estimate_fits_weights_without_the_fold_it_scores():
    """Specialists, each right (and sure) on one fold only and a little wrong elsewhere:
    weights fitted on every row, the scored fold included, make them look perfect together;
    fitted on the other folds, each fold's specialist weighs nothing where it is right."""
    y = np.arange(100) % 2
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(y, y))
    specialists = []
    for _, test in folds:
        right = np.zeros(len(y), bool)
        right[test] = True
        proba = _proba(y, right, 0.55)
        proba[test] = _proba(y[test], np.ones(len(test), bool), 0.99)
        specialists.append(_candidate(f"fold{len(specialists)}", proba))
    oofs = [c.oof for c in specialists]
    everything = np.arange(len(y))
    weights, temperatures = cawpe_fit(oofs, y, everything)
    in_sample = (combine(oofs, weights, temperatures).argmax(axis=1) == y).mean()
    assert in_sample == 1.0  # what reusing the scored rows would report
    selection = select(specialists, y, folds, "accuracy")
    assert selection.metrics["accuracy"] < 0.5
    assert (selection.oof.argmax(axis=1) == y).mean() < 0.5


def test_a_member_right_where_others_err_makes_the_ensemble_beat_each_member():
    y = np.arange(90) % 3
    rows = np.arange(90)
    # Three members, each wrong on a different third, confident when right and unsure when wrong.
    members = []
    for third in range(3):
        wrong = rows % 3 == third
        proba = _proba(y, ~wrong, 0.9, n_classes=3)
        proba[wrong] = _proba(y[wrong], np.zeros(wrong.sum(), bool), 0.4, n_classes=3)
        members.append(_candidate(f"m{third}", proba))
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(y, y))
    selection = select(members, y, folds, "accuracy")
    assert selection.metrics["accuracy"] == 1.0
    assert sorted(selection.weights) == pytest.approx([1 / 3] * 3, abs=0.01)


def test_the_served_ensemble_is_one_estimator_that_clones_and_refits():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + X[:, 2] > 0).astype(int)
    members = [LogisticRegression().fit(X[:, [0, 1]], y), LogisticRegression().fit(X[:, [2, 3]], y)]
    served = WeightedEnsemble.from_fitted(members, [[0, 1], [2, 3]], [0.7, 0.3], classes=[0, 1],
                                          temperatures=[2.0, 0.5])
    proba = served.predict_proba(X)
    assert np.allclose(proba.sum(axis=1), 1)
    assert served.get_params()["temperatures"] == (2.0, 0.5)
    refitted = clone(served).fit(X, y)
    assert np.allclose(refitted.predict_proba(X), proba)
    assert (served.predict(X) == y).mean() > 0.9


def test_a_search_job_serves_the_ensemble_and_reports_its_members():
    """With a search the candidates are ensembled before TPOT runs; a search that finds
    nothing leaves the ensemble served, predicting from raw series."""
    raw, y = _series(24, lengths=(40, 36))
    params = parse_training_params(b"""
extract_features: {engine: auto, column_kind: channel, column_sort: time,
                   default_fc_parameters: minimal}
model_training: {model: tpot, cv: 3, model_args: {max_time_mins: 0.5, n_jobs: 1}}
""")
    classifier, report = train(raw, y, params, search=no_search)
    ensemble = report["ensemble"]
    assert ensemble is not None and ensemble["rule"].startswith("CAWPE")
    weights = [m["weight"] for m in ensemble["members"]]
    assert len(weights) >= 2 and sum(weights) == pytest.approx(1, abs=1e-3)
    assert weights == sorted(weights, reverse=True)
    assert all(m["temperature"] > 0 for m in ensemble["members"])
    assert ensemble["candidatesConsidered"] == len(report["candidates"])
    assert (classifier.predict(raw).loc[y.index].to_numpy() == y.to_numpy()).mean() > 0.9


def test_members_a_job_cannot_afford_to_predict_with_are_left_out_and_reported():
    y = np.arange(60) % 2
    rows = np.arange(60)
    members = [_candidate(name, _proba(y, rows % 20 >= wrong, 0.8))  # wrong on `wrong` in 20
               for name, wrong in (("fast", 2), ("slow", 1), ("cheap", 3))]
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(y, y))

    def affordable(heaviest):
        assert [c.engine for c in heaviest] == ["slow", "fast", "cheap"]  # heaviest first
        return [c for c in heaviest if c.engine != "slow"]

    selection = select(members, y, folds, "accuracy", keep=affordable)
    assert [m.engine for m in selection.members] == ["fast", "cheap"]
    assert [m.engine for m in selection.left_out] == ["slow"]
    assert sum(selection.weights) == pytest.approx(1, abs=1e-3)
    assert select(members, y, folds, "accuracy", keep=lambda heaviest: heaviest[:1]) is None


def test_ensemble_cost_zero_serves_no_ensemble_and_the_cost_has_a_range():
    from automl.errors import InvalidParameters

    raw, y = _series(24, lengths=(40, 36))
    params = parse_training_params(b"""
extract_features: {engine: auto, column_kind: channel, column_sort: time,
                   default_fc_parameters: minimal}
model_training: {model: tpot, cv: 3, ensemble_cost: 0,
                 model_args: {max_time_mins: 0.5, n_jobs: 1}}
""")
    _, report = train(raw, y, params, search=no_search)
    assert report["ensemble"] is None
    for bad in (b"-1", b"101", b".inf", b"lots"):
        with pytest.raises(InvalidParameters, match="ensemble_cost"):
            parse_training_params(b"model_training: {model: tpot, ensemble_cost: " + bad + b"}")
