"""An ensemble of candidates, chosen on their out-of-fold probabilities.

Every candidate was cross-validated on the same folds and kept its out-of-fold class
probabilities (``candidates``). Greedy ensemble selection (Caruana, Niculescu-Mizil, Crew and
Ksikes, 2004, as AutoGluon does) starts from the best candidate and adds, with replacement,
whichever candidate most improves the average's score, up to ``MAX_ADDITIONS`` times: how
often a candidate was added is its weight.

Choosing the weights on the same out-of-fold rows that then score the ensemble would flatter
it. So the reported score is an outer estimate: for each fold, the weights are chosen on the
other folds' rows and the ensemble scored on this fold's; the final weights are then chosen on
every row. ``WeightedEnsemble`` is the served estimator: each member reads its own columns of
the joined feature matrix, and the weighted average of their probabilities is the answer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss, roc_auc_score

from .candidates import mean_score, standard_error

MAX_ADDITIONS = 25


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


def greedy_weights(oofs: list[np.ndarray], y: np.ndarray, scoring: str,
                   rows: np.ndarray) -> np.ndarray:
    """Caruana's selection on ``rows``: the weights of ``oofs`` (summing to 1). Ties go to
    the earlier candidate, so list them by preference."""
    counts = np.zeros(len(oofs))
    total = np.zeros_like(oofs[0][rows])
    current = -np.inf
    for addition in range(MAX_ADDITIONS):
        scores = [proba_score(scoring, y[rows], (total + p[rows]) / (addition + 1)) for p in oofs]
        best = int(np.argmax(scores))  # the first of equal scores
        if addition and scores[best] <= current + 1e-12:
            break
        counts[best] += 1
        total += oofs[best][rows]
        current = scores[best]
    return counts / counts.sum()


def combine(oofs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    return sum(w * p for w, p in zip(weights, oofs) if w)


@dataclass
class Selection:
    members: list          # the candidates with a weight, best first
    weights: list[float]
    metrics: dict          # outer estimate: score, accuracy, roc_auc means; score_se
    oof: np.ndarray        # the outer folds' predictions, each from weights chosen without it
    considered: int        # candidates it chose from


def select(candidates: list, y: np.ndarray, folds, scoring: str) -> Selection | None:
    """The ensemble of ``candidates`` (preferred ones first) with its outer estimate; None
    when fewer than two have out-of-fold probabilities."""
    usable = [c for c in candidates if c.oof is not None and np.isfinite(c.oof).all()]
    if len(usable) < 2:
        return None
    oofs = [c.oof for c in usable]
    outer = np.zeros_like(oofs[0])
    scores = {"score": [], "accuracy": [], "roc_auc": []}
    for train, test in folds:
        outer[test] = combine(oofs, greedy_weights(oofs, y, scoring, train))[test]
        for name, metric in (("score", scoring), ("accuracy", "accuracy"),
                             ("roc_auc", "roc_auc_ovr")):
            scores[name].append(proba_score(metric, y[test], outer[test]))
    weights = greedy_weights(oofs, y, scoring, np.arange(len(y)))
    kept = [(c, w) for c, w in zip(usable, weights) if w > 0]
    metrics = {**{name: mean_score(values) for name, values in scores.items()},
               "score_se": standard_error(scores["score"])}
    return Selection([c for c, _ in kept], [round(float(w), 4) for _, w in kept], metrics,
                     outer, len(usable))


class WeightedEnsemble(ClassifierMixin, BaseEstimator):
    """The weighted average of members' class probabilities; member i reads the columns
    ``columns[i]`` of the matrix it is given. ``fit`` refits every member (so ``clone``
    gives a working copy); ``from_fitted`` adopts members fitted already."""

    def __init__(self, members=(), columns=(), weights=()):
        self.members = members
        self.columns = columns
        self.weights = weights

    @classmethod
    def from_fitted(cls, members, columns, weights, classes) -> WeightedEnsemble:
        ensemble = cls(tuple(members), tuple(tuple(c) for c in columns), tuple(weights))
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
        total = sum(w * m.predict_proba(X[:, list(c)])
                    for m, c, w in zip(self.members_, self.columns, self.weights))
        return total / sum(self.weights)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
