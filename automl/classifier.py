"""The trained artifact: feature extraction plus the chosen model, as one estimator.

It is fitted, saved and loaded as a unit and takes raw long-format series. ``fit`` runs in
halves (labels, features, model) so that training can extract each engine's features once
and reuse them for every cross-validation fold and candidate model.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import check_is_fitted

from .probabilities import class_probabilities

# Series predicted at once: bounds the feature matrix a large prediction upload builds.
PREDICT_CHUNK_SERIES = 2_048


class TimeSeriesClassifier(ClassifierMixin, BaseEstimator):
    """``X``: long-format series; ``y``: labels indexed by series id.

    ``model`` is any scikit-learn classifier, or a search (TPOT) that leaves its best pipeline
    in ``fitted_pipeline_``; only that pipeline is kept, never the search object.
    """

    def __init__(self, features=None, model=None, positive_class=None):
        self.features = features
        self.model = model
        self.positive_class = positive_class

    def fit(self, X: pd.DataFrame, y: pd.Series):
        self.fit_model(*self.fit_features(X, y))
        return self

    def fit_features(self, X: pd.DataFrame, y: pd.Series, dask_address: str | None = None
                     ) -> tuple[pd.DataFrame, np.ndarray]:
        """Fit the label encoding and feature extraction; return the training feature matrix."""
        encoded = self.fit_labels(y)
        self.features_ = clone(self.features if self.features is not None else _tsfresh())
        matrix = self.features_.fit_transform(X, encoded, dask_address=dask_address)
        return matrix, encoded.to_numpy()

    def fit_labels(self, y: pd.Series) -> pd.Series:
        """Learn the classes; return the labels encoded as 0..n-1, still indexed by series id."""
        self.label_encoder_ = LabelEncoder().fit(y.to_numpy())
        self.classes_ = self.label_encoder_.classes_
        self.positive_class_ = self._positive_class()
        return pd.Series(self.label_encoder_.transform(y.to_numpy()), index=y.index)

    def fit_model(self, matrix: pd.DataFrame, encoded_y: np.ndarray, client=None,
                  watch=nullcontext):
        """Fit the model on the feature matrix; ``client`` is a Dask client for a search.

        The client is a runtime resource, not a hyperparameter: it is handed to the clone
        after cloning because a live client cannot be copied. ``watch(estimator)`` is a
        context manager around the fit, for following a long search.
        """
        search = clone(self.model)
        if client is not None and "client" in search.get_params(deep=False):
            search.set_params(client=client)
        with watch(search):
            search.fit(np.asarray(matrix), encoded_y)  # models see arrays, fitted or served
        self.search_ = search if hasattr(search, "fitted_pipeline_") else None
        self.model_ = getattr(search, "fitted_pipeline_", search)
        return self

    def use(self, features, model) -> TimeSeriesClassifier:
        """Adopt an engine and a model fitted elsewhere (training fits them separately, to
        share one extraction among candidates); the labels must have been fitted here."""
        check_is_fitted(self, "classes_")
        self.features_, self.model_, self.search_ = features, model, None
        return self

    def predict_proba(self, X: pd.DataFrame) -> pd.DataFrame:
        """One row per series id, one column per class (in ``classes_`` order); a large upload
        ``PREDICT_CHUNK_SERIES`` series at a time, so that its features are never all held at
        once (an ensemble's are tens of thousands per series)."""
        parts = [self._predict_proba(X[rows]) for rows in self._batches(X)]
        return parts[0] if len(parts) == 1 else pd.concat(parts)

    def _predict_proba(self, X: pd.DataFrame) -> pd.DataFrame:
        matrix = self.features_.transform(X)
        return pd.DataFrame(class_probabilities(self.model_, matrix.to_numpy()),
                            index=matrix.index, columns=self.classes_)

    def predict(self, X: pd.DataFrame) -> pd.Series:
        proba = self.predict_proba(X)
        return pd.Series(self.classes_[proba.to_numpy().argmax(axis=1)], index=proba.index)

    def scores(self, X: pd.DataFrame) -> dict:
        """What the API returns: P(positive class) per id when binary, else every class."""
        return self._scores(self.predict_proba(X))

    def scores_in_batches(self, X: pd.DataFrame) -> tuple[int, Iterator[dict]]:
        """``scores`` a batch of at most ``PREDICT_CHUNK_SERIES`` series at a time: how many
        batches there are, and their scores as each is computed (what a large prediction
        streams out)."""
        batches = self._batches(X)
        return len(batches), (self._scores(self._predict_proba(X[rows])) for rows in batches)

    def _batches(self, X: pd.DataFrame) -> list:
        """The rows of ``X`` in each batch of at most ``PREDICT_CHUNK_SERIES`` series, in the
        order of their first rows, taken from ``X`` only when a batch is predicted (all of
        them, uncopied, when ``X`` is one batch)."""
        check_is_fitted(self, "model_")
        if len(X) <= PREDICT_CHUNK_SERIES:  # at most as many series as rows: one batch
            return [slice(None)]
        codes, ids = pd.factorize(X[self.features_.input_columns().id])
        if len(ids) <= PREDICT_CHUNK_SERIES:
            return [slice(None)]
        return [(codes >= start) & (codes < start + PREDICT_CHUNK_SERIES)
                for start in range(0, len(ids), PREDICT_CHUNK_SERIES)]

    def _scores(self, proba: pd.DataFrame) -> dict:
        if len(self.classes_) == 2:
            return {sid: float(p) for sid, p in proba[self.positive_class_].items()}
        return {sid: {str(c): float(p) for c, p in row.items()}
                for sid, row in proba.iterrows()}

    def __getstate__(self):
        # The search object holds a Dask client and does not pickle; its best pipeline is model_.
        state = self.__dict__.copy()
        state.pop("search_", None)
        return state

    def _positive_class(self):
        if len(self.classes_) != 2:
            return None
        if self.positive_class is None:
            return self.classes_[1]  # the larger label in sorted order, as 1 in 0/1
        matches = [c for c in self.classes_ if str(c) == str(self.positive_class)]
        if not matches:
            raise ValueError(f"positive_class {self.positive_class!r} is not one of the labels "
                             f"({', '.join(map(str, self.classes_))})")
        return matches[0]


def _tsfresh():
    """The default features, imported only when used: tsfresh takes seconds to import, which
    every training process would pay before its first (kernel) model."""
    from .features import TsfreshFeatures

    return TsfreshFeatures()

