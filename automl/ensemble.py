"""An ensemble of candidates, weighted on their out-of-fold probabilities.

Every candidate was cross-validated on the same folds and kept its out-of-fold class
probabilities (``candidates``). The ensemble is HIVE-COTE's CAWPE (Large, Lines and Bagnall,
2019) over all of them: each member's weight is its out-of-fold accuracy to the power
``CAWPE_ALPHA``, so a few points of accuracy separate members sharply while a weaker member
still breaks ties. Before averaging, each member's probabilities are temperature-scaled (the
temperature minimising its out-of-fold log loss): a ridge's near-uniform scores and a forest's
confident ones then count alike. Scaling never changes a member's own predicted class.

Choosing the weights on the same out-of-fold rows that then score the ensemble would flatter
it. So the reported score is an outer estimate: for each fold, the temperatures and weights
are fitted on the other folds' rows and the ensemble scored on this fold's; the final ones are
then fitted on every row. ``WeightedEnsemble`` is the served estimator: each member reads its
own columns of the joined feature matrix, and the weighted average of their scaled
probabilities is the answer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss, roc_auc_score

from .candidates import mean_score, standard_error
from .probabilities import class_probabilities

# HIVE-COTE's exponent; on the development sets' resamples it beat Caruana's greedy selection
# and the best single candidate (docs/benchmarks.md, "ensemble rules").
CAWPE_ALPHA = 4
TEMPERATURES = np.geomspace(0.02, 50, 81)
PROBABILITY_FLOOR = 1e-12


def proba_score(scoring: str, y: np.ndarray, proba: np.ndarray) -> float:
    """The job's ``scoring`` (``params.SCORERS``) of class probabilities."""
    if scoring == "roc_auc_ovr":
        if proba.shape[1] == 2:
            return float(roc_auc_score(y, proba[:, 1]))
        return float(roc_auc_score(y, proba, multi_class="ovr", labels=np.arange(proba.shape[1])))
    if scoring == "neg_log_loss":
        return -float(log_loss(y, np.clip(proba, 1e-15, 1), labels=np.arange(proba.shape[1])))
    predicted = proba.argmax(axis=1)
    if scoring == "balanced_accuracy":
        return float(balanced_accuracy_score(y, predicted))
    if scoring == "f1_macro":
        return float(f1_score(y, predicted, average="macro"))
    return float(accuracy_score(y, predicted))


def scaled(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``proba`` with temperature scaling: softmax(log(proba) / temperature)."""
    logits = np.log(np.clip(proba, PROBABILITY_FLOOR, 1)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def fitted_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature of ``TEMPERATURES`` with the least log loss of ``proba`` on ``y``."""
    rows = np.arange(len(y))
    losses = [-np.log(np.clip(scaled(proba, t)[rows, y], PROBABILITY_FLOOR, 1)).mean()
              for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def cawpe_fit(oofs: list[np.ndarray], y: np.ndarray,
              rows: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """(weights summing to 1, temperatures) of ``oofs`` fitted on ``rows``."""
    temperatures = [fitted_temperature(p[rows], y[rows]) for p in oofs]
    accuracy = np.array([(p[rows].argmax(axis=1) == y[rows]).mean() for p in oofs])
    weights = accuracy ** CAWPE_ALPHA
    if weights.sum() <= 0:  # every member wrong on every row: nothing to prefer
        weights = np.ones(len(oofs))
    return weights / weights.sum(), temperatures


def combine(oofs: list[np.ndarray], weights, temperatures) -> np.ndarray:
    return sum(w * scaled(p, t) for w, p, t in zip(weights, oofs, temperatures) if w)


@dataclass
class Selection:
    members: list          # the candidates with a weight, best first
    weights: list[float]
    metrics: dict          # outer estimate: score, accuracy, roc_auc means; score_se
    oof: np.ndarray        # the outer folds' predictions, each from weights fitted without it
    considered: int        # candidates it weighed
    temperatures: list[float]
    left_out: tuple = ()   # candidates ``keep`` refused (e.g. too slow to predict)


def select(candidates: list, y: np.ndarray, folds, scoring: str,
           keep=None) -> Selection | None:
    """The ensemble of ``candidates`` (preferred ones first) with its outer estimate; None
    when fewer than two members remain. ``scoring`` only scores it: CAWPE's weights are
    accuracies whatever the job optimises. ``keep(candidates)``, given them heaviest first,
    returns those the ensemble may have (e.g. within a prediction-time budget)."""
    usable = [c for c in candidates if c.oof is not None and np.isfinite(c.oof).all()]
    if len(usable) < 2:
        return None
    weights, _ = cawpe_fit([c.oof for c in usable], y, np.arange(len(y)))
    # Members weighing nothing would only cost prediction time; stable sort: preference breaks ties
    heaviest = [usable[i] for i in sorted(range(len(usable)), key=lambda i: -weights[i])
                if weights[i] > 0]
    members = keep(heaviest) if keep else heaviest
    if len(members) < 2:
        return None
    oofs = [c.oof for c in members]
    outer = np.zeros_like(oofs[0])
    scores = {"score": [], "accuracy": [], "roc_auc": []}
    for train, test in folds:
        weights, temperatures = cawpe_fit(oofs, y, train)
        outer[test] = combine([p[test] for p in oofs], weights, temperatures)
        for name, metric in (("score", scoring), ("accuracy", "accuracy"),
                             ("roc_auc", "roc_auc_ovr")):
            scores[name].append(proba_score(metric, y[test], outer[test]))
    weights, temperatures = cawpe_fit(oofs, y, np.arange(len(y)))
    metrics = {**{name: mean_score(values) for name, values in scores.items()},
               "score_se": standard_error(scores["score"])}
    return Selection(members, [round(float(w), 4) for w in weights], metrics, outer,
                     len(usable), [round(t, 4) for t in temperatures],
                     tuple(c for c in heaviest if c not in members))


class WeightedEnsemble(ClassifierMixin, BaseEstimator):
    """The weighted average of members' temperature-scaled class probabilities; member i
    reads the columns ``columns[i]`` of the matrix it is given and its probabilities are
    scaled by ``temperatures[i]`` (none given: 1, unscaled). ``fit`` refits every member (so
    ``clone`` gives a working copy); ``from_fitted`` adopts members fitted already."""

    def __init__(self, members=(), columns=(), weights=(), temperatures=()):
        self.members = members
        self.columns = columns
        self.weights = weights
        self.temperatures = temperatures

    @classmethod
    def from_fitted(cls, members, columns, weights, classes,
                    temperatures=()) -> WeightedEnsemble:
        ensemble = cls(tuple(members), tuple(tuple(c) for c in columns), tuple(weights),
                       tuple(temperatures))
        ensemble.members_ = list(members)
        ensemble.classes_ = np.asarray(classes)
        return ensemble

    def fit(self, X, y):
        X = np.asarray(X)
        self.members_ = [clone(m).fit(X[:, list(c)], y) for m, c in zip(self.members, self.columns)]
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        X = np.asarray(X)
        temperatures = self.temperatures or (1.0,) * len(self.weights)
        total = sum(w * (p if t == 1 else scaled(p, t))
                    for m, c, w, t in zip(self.members_, self.columns, self.weights, temperatures)
                    for p in [class_probabilities(m, X[:, list(c)])])
        return total / sum(self.weights)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
