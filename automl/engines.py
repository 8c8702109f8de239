"""Feature engines: which ones a parameter file may name, how each is built, how they combine.

Every engine is a scikit-learn transformer from long-format series to one row of features per
series id, with ``fit_transform(X, y, dask_address=None)``, ``transform(X)``,
``input_columns()`` and ``describe()``.
"""
from __future__ import annotations

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from .features import TsfreshFeatures
from .kernels import KERNEL_ENGINES, KernelFeatures

TSFRESH = "tsfresh"  # the names a parameter file may use are in params.ENGINES


def build(name: str, params) -> TsfreshFeatures | KernelFeatures:
    """An unfitted engine reading the parameter file's columns.

    tsfresh is built without its own selection: training selects relevant features inside
    each cross-validation fold (``selection.RelevanceSelector``), then narrows the fitted
    engine to what the final model uses (``TsfreshFeatures.restrict``).
    """
    columns = params.features.columns
    where = {"column_id": columns.id, "column_value": columns.value,
             "column_sort": columns.sort, "column_kind": columns.kind}
    if name == TSFRESH:
        return TsfreshFeatures(**where, fc_parameters=params.features.default_fc_parameters,
                               impute=params.features.impute_function, select=False,
                               n_jobs=params.features.n_jobs)
    return KernelFeatures(kind=name, **where, random_state=params.model.search.random_state or 0)


def feature_kind(names) -> str:
    """``kernel`` when any part is random-kernel features (thousands, suited to linear models),
    else ``tabular`` (tsfresh's statistics, suited to trees)."""
    return "kernel" if any(n in KERNEL_ENGINES for n in names) else "tabular"


class CombinedFeatures(TransformerMixin, BaseEstimator):
    """Several engines side by side: their feature tables joined column-wise."""

    def __init__(self, parts=()):
        self.parts = parts

    @classmethod
    def from_fitted(cls, fitted) -> CombinedFeatures:
        """Join engines fitted already (each extracted once), without refitting them."""
        combined = cls(parts=tuple(fitted))
        combined.parts_ = list(fitted)
        return combined

    def input_columns(self):
        return self.parts[0].input_columns()

    def fit_transform(self, X, y=None, dask_address=None, **_) -> pd.DataFrame:
        self.parts_ = [clone(p) for p in self.parts]
        return pd.concat([p.fit_transform(X, y, dask_address=dask_address) for p in self.parts_],
                         axis=1)

    def fit(self, X, y=None):
        self.fit_transform(X, y)
        return self

    def transform(self, X) -> pd.DataFrame:
        check_is_fitted(self, "parts_")
        return pd.concat([p.transform(X) for p in self.parts_], axis=1)

    def describe(self) -> dict:
        parts = [p.describe() for p in self.parts_]
        return {"engine": "+".join(p["engine"] for p in parts),
                "featuresExtracted": sum(p["featuresExtracted"] for p in parts), "parts": parts}
