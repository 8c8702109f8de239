"""tsfresh's relevance test as a fast pipeline step, so cross-validation can redo it per fold.

Selecting features on every training series and then cross-validating on the survivors
scores a pipeline optimistically (the held-out fold helped choose the features). Redone
inside each fold, the score is honest, and engines whose features need no labels (the
convolution kernels) can be compared with tsfresh on equal terms. That needs the test many
times, so it is computed here column-vectorised; it decides exactly as tsfresh's
``select_features`` does for classification (tests/test_selection.py checks this): per class
one-vs-rest, Mann-Whitney U for real-valued features and Fisher's exact test for two-valued
ones, Benjamini-Yekutieli at ``fdr_level`` over each class's tests, relevant for any class.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from statsmodels.stats.multitest import multipletests


def relevant(X: np.ndarray, y: np.ndarray, fdr_level: float = 0.05) -> np.ndarray:
    """Boolean mask of the columns of ``X`` relevant to the class labels ``y``."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    n_unique = np.array([len(np.unique(column)) for column in X.T])
    real, binary = n_unique > 2, n_unique == 2
    tested = real | binary
    result = np.zeros(X.shape[1], dtype=bool)
    if not tested.any():
        return result
    for label in np.unique(y):
        inside = y == label
        p = np.ones(X.shape[1])
        if real.any():
            p[real] = stats.mannwhitneyu(X[inside][:, real], X[~inside][:, real], axis=0,
                                         use_continuity=True, alternative="two-sided").pvalue
        for column in np.flatnonzero(binary):
            low = X[:, column] == X[:, column].min()
            table = [[np.sum(inside & ~low), np.sum(inside & low)],
                     [np.sum(~inside & ~low), np.sum(~inside & low)]]
            p[column] = stats.fisher_exact(table, alternative="two-sided")[1]
        result[tested] |= multipletests(p[tested], fdr_level, "fdr_by")[0]
    return result


class RelevanceSelector(TransformerMixin, BaseEstimator):
    """Keep the columns relevant to ``y`` (see ``relevant``).

    When the test keeps nothing (too few series to trust any feature), every informative
    column is kept and ``fallback_`` is set, rather than failing.
    """

    def __init__(self, fdr_level=0.05):
        self.fdr_level = fdr_level

    def fit(self, X, y):
        columns = X.columns if isinstance(X, pd.DataFrame) else pd.RangeIndex(np.shape(X)[1])
        values = np.asarray(X, dtype=np.float64)
        self.support_ = relevant(values, y, self.fdr_level)
        self.fallback_ = not self.support_.any()
        if self.fallback_:
            informative = np.ptp(values, axis=0) > 0 if len(values) else np.zeros(0, bool)
            self.support_ = informative if informative.any() else np.ones(len(columns), bool)
        self.selected_ = list(columns[self.support_])
        return self

    def transform(self, X):
        check_is_fitted(self, "support_")
        if isinstance(X, pd.DataFrame):
            return X.loc[:, self.support_]
        return np.asarray(X)[:, self.support_]
