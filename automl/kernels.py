"""Convolution-kernel features (MiniRocket, MultiRocket from aeon) over long-format series.

The kernels are random and fitted without labels, so the feature matrix can be computed once
for all series and reused by every cross-validation fold without leaking labels. aeon's
transformers need equal-length series of at least a few points: series of another length are
linearly resampled to the training length, which also makes unequal lengths work.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .parsing import LongFormatInput

KERNEL_ENGINES = ("minirocket", "multirocket")
# MultiRocket's first differences need 10 points; shorter series are stretched to this.
MIN_LENGTH = 10


def _transformer(kind: str, n_kernels: int | None, random_state: int):
    from aeon.transformations.collection.convolution_based import MiniRocket, MultiRocket

    cls = {"minirocket": MiniRocket, "multirocket": MultiRocket}[kind]
    kwargs = {"n_kernels": n_kernels} if n_kernels else {}
    # One thread: predictions run in the web server's threads, where numba's parallel
    # layer is not safe to enter concurrently; the kernels are fast enough without it.
    return cls(random_state=random_state, n_jobs=1, **kwargs)


class KernelFeatures(LongFormatInput, TransformerMixin, BaseEstimator):
    """Long-format series -> one row of kernel features per series id (ids as strings)."""

    def __init__(self, kind="minirocket", column_id="example_id", column_value="measurement",
                 column_sort=None, column_kind=None, n_kernels=None, random_state=0):
        self.kind = kind
        self.column_id = column_id
        self.column_value = column_value
        self.column_sort = column_sort
        self.column_kind = column_kind
        self.n_kernels = n_kernels
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: pd.Series | None = None):
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: pd.Series | None = None, **_) -> pd.DataFrame:
        """Rows follow ``y``'s index when given (series ids), else the order of first appearance."""
        self.channels_ = self.learn_channels(X)
        ids, series = self._series(X)
        lengths = [len(s) for s in series]
        self.length_ = max(MIN_LENGTH, max(lengths))
        self.resampled_ = len(set(lengths)) > 1 or lengths[0] < MIN_LENGTH
        self.transformer_ = _transformer(self.kind, self.n_kernels, self.random_state)
        self.transformer_.fit(self._panel(series, len(ids)))
        matrix = self.transformer_.transform(self._panel(series, len(ids)))
        self.feature_names_ = pd.Index([f"{self.kind}_{i}" for i in range(matrix.shape[1])])
        self.n_features_extracted_ = len(self.feature_names_)
        features = self._features(ids, matrix)
        return features.reindex(y.index) if y is not None else features

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "transformer_")
        ids, series = self._series(X)
        return self._features(ids, self.transformer_.transform(self._panel(series, len(ids))))

    def describe(self) -> dict:
        check_is_fitted(self, "transformer_")
        return {"engine": self.kind, "featuresExtracted": self.n_features_extracted_,
                "channels": list(self.channels_), "seriesLength": self.length_,
                "resampled": self.resampled_}

    def _series(self, X: pd.DataFrame) -> tuple[pd.Index, list[np.ndarray]]:
        """Each series' channels in ``channels_`` order, in the rows' order within a series."""
        id_codes, ids, channel_codes = self.channel_codes(X)
        keys = id_codes * len(self.channels_) + channel_codes
        order = np.argsort(keys, kind="stable")  # stable: keeps each series' time order
        counts = np.bincount(keys, minlength=len(ids) * len(self.channels_))
        values = X[self.column_value].to_numpy(dtype=np.float64)[order]
        return ids, np.split(values, np.cumsum(counts)[:-1])

    def _panel(self, series: list[np.ndarray], n_ids: int) -> np.ndarray:
        """(series, channels, length_) array, resampling any channel of another length."""
        length = self.length_
        if all(len(s) == length for s in series):
            return np.stack(series).reshape(n_ids, len(self.channels_), length)
        target = np.linspace(0.0, 1.0, length)
        resampled = [s if len(s) == length else
                     np.interp(target, np.linspace(0.0, 1.0, len(s)), s) if len(s) > 1 else
                     np.full(length, s[0]) for s in series]
        return np.stack(resampled).reshape(n_ids, len(self.channels_), length)

    def _features(self, ids: pd.Index, matrix: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(np.asarray(matrix, dtype=np.float32), index=ids,
                            columns=self.feature_names_)


def warm_up() -> None:
    """Compile the kernels' numba code into its on-disk cache (``make setup`` runs this).

    The first MiniRocket/MultiRocket call in a fresh environment spends ~15-30 s compiling;
    paid once at install, it does not delay the first model of the first training job.
    """
    rng = np.random.default_rng(0)
    raw = pd.DataFrame({"example_id": np.repeat(np.arange(4), 20),
                        "measurement": rng.normal(size=80)})
    for kind in KERNEL_ENGINES:
        KernelFeatures(kind=kind).fit(raw).transform(raw)
