"""The strong defaults each kind of feature matrix starts from, before any search."""
from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import RidgeClassifierCV, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .compute import available_cpus


class RidgeClassifierProba(RidgeClassifierCV):
    """MiniRocket's classifier (ridge, regularisation chosen by leave-one-out), with scores.

    The service answers probabilities; ridge has only a decision function, so its margins are
    squashed through a logistic (binary) or softmax (multiclass). They rank like the margins,
    which is what ROC AUC and the argmax need; they are not calibrated probabilities.
    """

    def predict_proba(self, X):
        margins = self.decision_function(X)
        if margins.ndim == 1:
            positive = expit(margins)
            return np.column_stack([1.0 - positive, positive])
        return softmax(margins, axis=1)


# Above this many series, ridge's leave-one-out over an n x n problem costs minutes and
# gigabytes; the ROCKET papers switch to logistic regression trained by gradient descent.
RIDGE_MAX_SERIES = 2000


def baseline(feature_kind: str, n_series: int, random_state: int = 0):
    """The default model for a feature matrix: ``"kernel"`` (thousands of random-kernel
    features: a scaled linear model, as in the ROCKET papers) or ``"tabular"`` (tsfresh's
    hundreds of heterogeneous statistics: a tree ensemble, which needs no scaling)."""
    if feature_kind == "kernel" and n_series <= RIDGE_MAX_SERIES:
        return make_pipeline(StandardScaler(), RidgeClassifierProba(alphas=np.logspace(-3, 3, 10)))
    if feature_kind == "kernel":
        return make_pipeline(StandardScaler(), SGDClassifier(
            loss="log_loss", alpha=1e-4, max_iter=30, tol=1e-3, random_state=random_state))
    return ExtraTreesClassifier(n_estimators=300, random_state=random_state, n_jobs=available_cpus())
