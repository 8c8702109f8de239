"""A served model's class probabilities on a small batch: the same values as the model's own
``predict_proba``, without a forest's per-tree joblib machinery (most of a one-series
request's time with a tree model)."""
from __future__ import annotations

import numpy as np
import pytest
import sklearn.ensemble._forest as forest_module
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from automl.ensemble import WeightedEnsemble
from automl.probabilities import SMALL_BATCH, class_probabilities


def _data(n_classes: int):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 12)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (n_classes == 3) * (X[:, 1] > 0.5)
    return X, y


def _models(X, y):
    forest = ExtraTreesClassifier(n_estimators=30, random_state=0).fit(X, y)
    return {
        "extra trees": forest,
        "random forest, 2 workers": RandomForestClassifier(n_estimators=30, random_state=0,
                                                           n_jobs=2).fit(X, y),
        "scaled forest": make_pipeline(StandardScaler(), RandomForestClassifier(
            n_estimators=20, random_state=0)).fit(X, y),
    }


def _ensemble(X, y):
    forest = ExtraTreesClassifier(n_estimators=30, random_state=0).fit(X, y)
    linear = LogisticRegression().fit(X[:, :4], y)
    return WeightedEnsemble.from_fitted([forest, linear], [range(12), range(4)], [0.7, 0.3],
                                        np.unique(y)), forest, linear


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("rows", [1, 7, SMALL_BATCH + 1])
def test_probabilities_are_the_models_own_to_the_last_bit(n_classes, rows):
    X, y = _data(n_classes)
    for name, model in _models(X, y).items():
        batch = X[-rows:].astype(np.float64)  # as the engines hand them over: any float dtype
        assert np.array_equal(class_probabilities(model, batch), model.predict_proba(batch)), name
    # The ensemble's members each as their own predict_proba gives it, weighted. Each member
    # gets its columns as a copy, as the ensemble takes them: a strided view of them changes
    # the last bit of a BLAS product on some CPUs (seen on an Intel Xeon, not on an AMD EPYC).
    ensemble, forest, linear = _ensemble(X, y)
    expected = (0.7 * forest.predict_proba(batch)
                + 0.3 * linear.predict_proba(batch[:, [0, 1, 2, 3]])) / sum((0.7, 0.3))
    assert np.array_equal(ensemble.predict_proba(batch), expected)


def test_a_small_batch_skips_joblib_and_a_large_one_keeps_sklearns_path(monkeypatch):
    X, y = _data(2)
    models = _models(X, y)
    forest, scaled = models["extra trees"], models["scaled forest"]
    ensemble = _ensemble(X, y)[0]

    def no_joblib(*args, **kwargs):
        raise AssertionError("the forest went through joblib")

    monkeypatch.setattr(forest_module, "Parallel", no_joblib)
    assert class_probabilities(forest, X[:1]).shape == (1, 2)
    assert class_probabilities(scaled, X[:5]).shape == (5, 2)
    assert ensemble.predict_proba(X[:3]).shape == (3, 2)  # its forest member's too
    with pytest.raises(AssertionError, match="joblib"):
        class_probabilities(forest, X[:SMALL_BATCH + 1])
