"""The base class of every feature engine: long-format series in, one row of features per
series id out.

An engine says what it is with capability tags (class attribute ``engine_tags``) rather than
by which methods it happens to have, as aeon's estimators do:

    model       "linear" (thousands of random features: a scaled linear model, the ROCKET
                papers' choice) or "trees" (heterogeneous statistics: tree ensembles)
    selects     whether training selects among its columns with labels, inside each
                cross-validation fold (tsfresh's relevance test)
    unequal     "native" if it takes series of different lengths as they are, "resampled"
                if they are resampled to the training length
    channels    "native" if it reads several channels together, "stacked" if each channel
                is processed on its own and the features put side by side

Everything an engine is fitted on is unlabelled (labels only order the rows), so computing
its features once for all training series leaks nothing into cross-validation.
"""
from __future__ import annotations

from typing import ClassVar

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from .parsing import LongFormatInput


class FeatureEngine(LongFormatInput, TransformerMixin, BaseEstimator):
    engine_tags: ClassVar[dict] = {"model": "linear", "selects": False, "unequal": "resampled",
                                   "channels": "native"}

    def fit(self, X: pd.DataFrame, y: pd.Series | None = None):
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: pd.Series | None = None,
                      dask_address: str | None = None, **_) -> pd.DataFrame:
        """Learn what the engine needs from ``X`` and return its features, one row per series,
        in ``y``'s order when given (series ids as text)."""
        raise NotImplementedError

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def describe(self) -> dict:
        """What the report says of the fitted engine: at least ``engine`` and
        ``featuresExtracted``."""
        raise NotImplementedError

    def output_columns(self) -> list[str]:
        """The columns ``transform`` returns, in its order."""
        raise NotImplementedError

    def narrowed(self, columns: list[str]) -> FeatureEngine:
        """The fitted engine computing only ``columns`` of its features, where it can save
        work that way (tsfresh); engines that compute all features at once return
        themselves."""
        return self

    def tag(self, name: str):
        return self.engine_tags[name]
