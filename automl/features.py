"""tsfresh feature extraction as a scikit-learn transformer over long-format series.

Fitting extracts the whole settings set, learns how to impute, and keeps the relevant
features; transforming afterwards computes only those (tsfresh's ``from_columns``), which is
what makes prediction cheap.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from tsfresh import extract_features, select_features
from tsfresh.feature_extraction import settings as fc_settings
from tsfresh.utilities.distribution import ClusterDaskDistributor

from .parsing import Columns

SETTINGS = {
    "minimal": fc_settings.MinimalFCParameters,
    "efficient": fc_settings.EfficientFCParameters,
    "comprehensive": fc_settings.ComprehensiveFCParameters,
}


def resolve_fc_parameters(spec: str | dict) -> dict:
    """A settings name or {calculator: params|None} as tsfresh's ``default_fc_parameters``."""
    if isinstance(spec, str):
        return dict(SETTINGS[spec]())
    defaults = fc_settings.ComprehensiveFCParameters()
    # A bare calculator name means "with tsfresh's usual parameters", not "without any".
    return {name: params if params is not None else defaults[name] for name, params in spec.items()}


class TsfreshFeatures(TransformerMixin, BaseEstimator):
    """Long-format series (one row per measurement) -> one row of features per series id."""

    def __init__(self, column_id="example_id", column_value="measurement", column_sort=None,
                 column_kind=None, fc_parameters="efficient", impute="median", select=True,
                 fdr_level=0.05, n_jobs=0):
        self.column_id = column_id
        self.column_value = column_value
        self.column_sort = column_sort
        self.column_kind = column_kind
        self.fc_parameters = fc_parameters
        self.impute = impute
        self.select = select
        self.fdr_level = fdr_level
        self.n_jobs = n_jobs

    def input_columns(self) -> Columns:
        """The long-format columns this extractor reads (prediction uploads must match)."""
        return Columns(id=self.column_id, value=self.column_value, sort=self.column_sort,
                       kind=self.column_kind)

    def fit(self, X: pd.DataFrame, y: pd.Series):
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: pd.Series, dask_address: str | None = None,
                      **_) -> pd.DataFrame:
        """``y`` is indexed by series id; the returned rows follow ``y``'s order.

        With ``dask_address`` the full extraction runs on that Dask cluster; prediction, which
        computes only the selected features, always runs in-process.
        """
        features = self._extract(X, dask_address,
                                 default_fc_parameters=resolve_fc_parameters(self.fc_parameters))
        features = features.reindex(y.index)
        self._learn_imputation(features)
        features = self._impute(features)
        self.selected_features_, self.selection_fallback_ = self._select(features, y)
        self.kind_to_fc_parameters_ = fc_settings.from_columns(self.selected_features_)
        self.n_features_extracted_ = features.shape[1]
        return features[self.selected_features_]

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "selected_features_")
        features = self._extract(X, None, kind_to_fc_parameters=self.kind_to_fc_parameters_)
        # A calculator can come back with fewer columns on odd inputs; the model needs them all.
        features = features.reindex(columns=self.selected_features_)
        return self._impute(features)

    def _extract(self, X: pd.DataFrame, dask_address: str | None, **settings) -> pd.DataFrame:
        kind, value = self.column_kind, self.column_value
        if kind is None:
            # Name the channel after the value column, as tsfresh does, but explicitly so that
            # feature names do not depend on what else is in the frame.
            X = X[[c for c in (self.column_id, self.column_sort, value) if c is not None]]
        features = extract_features(
            X, column_id=self.column_id, column_sort=self.column_sort, column_kind=kind,
            column_value=value, n_jobs=self.n_jobs, disable_progressbar=True,
            distributor=ClusterDaskDistributor(dask_address) if dask_address else None, **settings,
        )
        features.index = features.index.astype(str)
        return features.astype(np.float64)

    def _learn_imputation(self, features: pd.DataFrame) -> None:
        finite = features.replace([np.inf, -np.inf], np.nan)
        if self.impute == "zero":
            zeros = pd.Series(0.0, index=features.columns)
            self.fill_nan_, self.fill_posinf_, self.fill_neginf_ = zeros, zeros, zeros
        else:  # tsfresh's impute(): median for NaN, column max for +inf, min for -inf
            self.fill_nan_ = finite.median().fillna(0.0)
            self.fill_posinf_ = finite.max().fillna(0.0)
            self.fill_neginf_ = finite.min().fillna(0.0)

    def _impute(self, features: pd.DataFrame) -> pd.DataFrame:
        # Fill values are learned at fit time so one prediction does not depend on its batch.
        columns = features.columns
        values = features.to_numpy(copy=True)
        for fill, mask in ((self.fill_posinf_, np.isposinf(values)),
                           (self.fill_neginf_, np.isneginf(values)),
                           (self.fill_nan_, np.isnan(values))):
            if mask.any():
                values = np.where(mask, fill.reindex(columns).to_numpy()[None, :], values)
        return pd.DataFrame(values, index=features.index, columns=columns)

    def _select(self, features: pd.DataFrame, y: pd.Series) -> tuple[list[str], bool]:
        informative = features.loc[:, features.nunique() > 1]
        if self.select and informative.shape[1]:
            relevant = select_features(informative, y, fdr_level=self.fdr_level,
                                       multiclass=y.nunique() > 2, n_jobs=self.n_jobs)
            if relevant.shape[1]:
                return list(relevant.columns), False
        # Too few series for the relevance test to trust any feature: keep every informative
        # one and let the model decide, rather than fail.
        kept = informative if informative.shape[1] else features
        return list(kept.columns), bool(self.select)

    def restricted(self, columns: list[str]) -> TsfreshFeatures:
        """A copy that computes only ``columns`` (chosen outside, e.g. by selection per fold)."""
        check_is_fitted(self, "selected_features_")
        narrowed = copy.copy(self)
        narrowed.selected_features_ = list(columns)
        narrowed.kind_to_fc_parameters_ = fc_settings.from_columns(narrowed.selected_features_)
        return narrowed

    def describe(self) -> dict:
        check_is_fitted(self, "selected_features_")
        return {"engine": "tsfresh", "featuresExtracted": self.n_features_extracted_,
                "featuresUsed": len(self.selected_features_)}
