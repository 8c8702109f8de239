"""tsfresh feature extraction as a scikit-learn transformer over long-format series.

Fitting extracts the whole settings set, learns how to impute, and keeps the relevant
features; transforming afterwards computes only those (tsfresh's ``from_columns``), which is
what makes prediction cheap.

Where the time goes (per calculator, and ``bench/features.py``, on 2 cores): on short series
tsfresh's cost is per series-channel rather than per point, about 55-65 ms with ``efficient``
whether a series has 24 or 150 points; its own per-series overhead is ~0.07 ms. So:

* four calculators are rewritten to compute the same values much faster
  (:mod:`automl.tsfresh_calculators`): ``change_quantiles`` alone was ~45 % of ``efficient``.
* rows are sorted by time once for the whole upload, not by tsfresh series by series.
* the ``fast`` settings also drop six calculators whose cost is out of proportion to their
  value (:data:`FAST_DROPPED`).
* ``n_jobs`` > 0, or -1 for an automatic choice, splits whole series between forked worker
  processes that each run tsfresh in-process (see :func:`worker_processes`).

Limiting BLAS/OpenMP threads (threadpoolctl) was measured and left out: the calculators'
arrays are too small for OpenBLAS to use threads, so it changed nothing beyond noise, in-process
or with processes, even on 3,000-point series, and costs ~15 ms per call.
"""
from __future__ import annotations

import copy
import logging
import multiprocessing
import sys
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted
from tsfresh import extract_features
from tsfresh.feature_extraction import settings as fc_settings
from tsfresh.utilities.distribution import ClusterDaskDistributor

from .compute import available_cpus
from .feature_engine import FeatureEngine
from .selection import RelevanceSelector
from .tsfresh_calculators import with_fast_settings

log = logging.getLogger(__name__)

# Calculators of EfficientFCParameters left out of "fast", with their cost in ms per
# series-channel (2 cores; mean over GunPoint, ItalyPowerDemand and BasicMotions): together
# ~14 ms, when all of efficient costs 21-33 ms once change_quantiles is fast. Their features
# carry 2-6 % of an ExtraTrees model's importance on those sets, and leaving them out did not
# move cross-validated accuracy beyond its standard error there (bench/features.py measures
# it again).
FAST_DROPPED = {
    "max_langevin_fixed_point": 3.0,  # fits a polynomial to the drift (as below)
    "friedrich_coefficients": 2.9,    # the same fit again, for 4 coefficients
    "number_cwt_peaks": 2.6,          # scipy's find_peaks_cwt, twice
    "augmented_dickey_fuller": 2.5,   # statsmodels' adfuller with automatic lag search
    "ar_coefficient": 1.8,            # a statsmodels AutoReg fit
    "fourier_entropy": 1.6,           # five Welch spectra
}


class FastFCParameters(fc_settings.EfficientFCParameters):
    """EfficientFCParameters minus :data:`FAST_DROPPED`: about 2x faster than efficient, and
    4x faster than efficient was with tsfresh's own change_quantiles."""

    def __init__(self):
        super().__init__()
        for name in FAST_DROPPED:
            self.pop(name, None)


SETTINGS = {
    "minimal": fc_settings.MinimalFCParameters,
    "fast": FastFCParameters,
    "efficient": fc_settings.EfficientFCParameters,
    "comprehensive": fc_settings.ComprehensiveFCParameters,
}

# n_jobs = -1 (automatic): extract a sample of series in-process, extrapolate, and start
# worker processes only for the rest and only if each gets at least MIN_SECONDS_PER_PROCESS of
# work (starting and collecting a pool costs ~0.1-0.4 s on 2 cores; measured speed-ups with 2
# processes: 1.3-1.5x for ~1-2 s of work, 1.7-2x for ~4 s).
AUTO = -1
SAMPLE_SERIES = 8
MIN_SECONDS_PER_PROCESS = 1.0
# Work units per process, so that one slow unit does not leave the other cores idle.
PARTS_PER_PROCESS = 4


def resolve_fc_parameters(spec: str | dict) -> dict:
    """A settings name or {calculator: params|None} as tsfresh's ``default_fc_parameters``."""
    if isinstance(spec, str):
        return dict(SETTINGS[spec]())
    defaults = fc_settings.ComprehensiveFCParameters()
    # A bare calculator name means "with tsfresh's usual parameters", not "without any".
    return {name: params if params is not None else defaults[name] for name, params in spec.items()}


def worker_processes(n_jobs: int, n_series: int, seconds: float | None = None) -> int:
    """How many processes to extract ``n_series`` series (ids) with; 0 means in-process.

    ``n_jobs`` > 0 asks for that many, but no more than there are series or CPUs; -1 (automatic) takes
    one per available CPU, but no more than one per ``MIN_SECONDS_PER_PROCESS`` of the
    estimated work (``seconds``). Fewer than two means in-process. So does a daemonic process
    (e.g. a multiprocessing pool worker), which cannot have children.
    """
    if n_jobs == AUTO:
        n_jobs = min(available_cpus(), int((seconds or 0.0) / MIN_SECONDS_PER_PROCESS))
    n_jobs = min(n_jobs, n_series, available_cpus())
    if n_jobs < 2:
        return 0
    if multiprocessing.current_process().daemon:
        log.info("extracting in-process: a daemonic process cannot start workers")
        return 0
    return n_jobs


class TsfreshFeatures(FeatureEngine):
    """Long-format series (one row per measurement) -> one row of features per series id.

    ``n_jobs`` (fitting only): 0 extracts in the calling process; N > 0 splits the series
    between N worker processes (forked on Linux; possible in a non-daemonic process such as the
    training worker, else it falls back to in-process); -1 extracts a few series in-process,
    extrapolates, and uses one process per CPU only when each gets a second of work or more
    (:func:`worker_processes`). The values are the same either way. Prediction
    (``transform``) always runs in-process: it computes only the selected features, and it
    runs in the web server's threads.
    """

    engine_tags = {"model": "trees", "selects": True, "unequal": "native", "channels": "stacked"}

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

    def fit_transform(self, X: pd.DataFrame, y: pd.Series, dask_address: str | None = None,
                      **_) -> pd.DataFrame:
        """``y`` is indexed by series id; the returned rows follow ``y``'s order.

        With ``dask_address`` the full extraction runs on that Dask cluster; prediction, which
        computes only the selected features, always runs in-process.
        """
        X = self._columns(X)
        self.channels_ = self.learn_channels(X)
        settings = {"default_fc_parameters": resolve_fc_parameters(self.fc_parameters)}
        if dask_address:
            processes = 0
            features = self._extract(X, dask_address, 0, **settings)
        elif self.n_jobs == AUTO:
            features, processes = self._extract_auto(X, settings)
        else:
            processes = worker_processes(self.n_jobs, X[self.column_id].nunique())
            features = self._extract(X, None, processes, **settings)
        features = features.reindex(y.index)
        self._learn_imputation(features)
        features = self._impute(features)
        self.selected_features_, self.selection_fallback_ = self._select(features, y)
        self.kind_to_fc_parameters_ = fc_settings.from_columns(self.selected_features_)
        self.n_features_extracted_ = features.shape[1]
        return features[self.selected_features_]

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "selected_features_")
        self.channel_codes(X)  # every series has every trained channel, and no other
        features = self._extract(self._columns(X), None, 0,
                                 kind_to_fc_parameters=self.kind_to_fc_parameters_)
        # A calculator can come back with fewer columns on odd inputs; the model needs them all.
        features = features.reindex(columns=self.selected_features_)
        return self._impute(features)

    def _columns(self, X: pd.DataFrame) -> pd.DataFrame:
        """Only the columns extraction reads: feature names do not depend on the rest."""
        kept = [c for c in (self.column_id, self.column_sort, self.column_kind, self.column_value)
                if c is not None]
        return X[kept]

    def _extract_auto(self, X: pd.DataFrame, settings: dict) -> tuple[pd.DataFrame, int]:
        """n_jobs=-1: a sample of series here, then the rest with as many processes as pay."""
        ids = X[self.column_id]
        unique = ids.unique()
        sample = ids.isin(unique[:SAMPLE_SERIES])
        began = time.perf_counter()
        first = self._extract(X[sample], None, 0, **settings)
        rest = len(unique) - min(len(unique), SAMPLE_SERIES)
        if not rest:
            return first, 0
        seconds = (time.perf_counter() - began) * rest / SAMPLE_SERIES
        processes = worker_processes(AUTO, rest, seconds)
        log.debug("extraction: %d series left, ~%.1f s, %d processes", rest, seconds, processes)
        features = pd.concat([first, self._extract(X[~sample], None, processes, **settings)])
        return features, processes

    def _extract(self, X: pd.DataFrame, dask_address: str | None, processes: int,
                 **settings) -> pd.DataFrame:
        # Sorted here in one stable sort, rather than by tsfresh one series at a time (~0.15 ms
        # each, 12 % of GunPoint's compact prediction); equal times keep the upload's order.
        if self.column_sort is not None:
            X = X.sort_values(self.column_sort, kind="stable").drop(columns=self.column_sort)
        # Channel named after the value column when there is no kind column, as tsfresh does.
        options = dict(column_id=self.column_id, column_sort=None,
                       column_kind=self.column_kind, column_value=self.column_value,
                       disable_progressbar=True)
        if dask_address:
            features = extract_features(X, n_jobs=0, **options, **settings,
                                        distributor=ClusterDaskDistributor(dask_address))
        else:
            settings = with_fast_settings(settings)
            if processes:
                features = _extract_in_processes(X, self.column_id, processes, options, settings)
            else:
                features = _extract_here(X, options, settings)
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
        if self.select:
            selector = RelevanceSelector(self.fdr_level).fit(features, y.to_numpy())
            return selector.selected_, selector.fallback_
        informative = features.loc[:, features.nunique() > 1]
        return list((informative if informative.shape[1] else features).columns), False

    def legacy_channels(self) -> list[str]:
        # Pickled before channels_ was kept: the channels its selected features read.
        return sorted(self.kind_to_fc_parameters_) if self.column_kind else [self.column_value]

    def output_columns(self) -> list[str]:
        check_is_fitted(self, "selected_features_")
        return list(self.selected_features_)

    def narrowed(self, columns: list[str]) -> TsfreshFeatures:
        """A copy computing only those of ``columns`` that are its features (chosen outside,
        e.g. by selection per fold), in ``columns``' order."""
        mine = set(self.selected_features_)
        return self.restricted([c for c in columns if c in mine])

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


def _extract_in_processes(X: pd.DataFrame, column_id: str, processes: int, options: dict,
                          settings: dict) -> pd.DataFrame:
    """Split the series between ``processes`` forked workers, each running tsfresh in-process.

    Each worker gets whole series (a slice of the frame) and sends back its feature table,
    rather than, as tsfresh's own multiprocessing does, the parent cutting out every series and
    pivoting (series x features) result tuples itself: the parent stays nearly idle.
    """
    parts = _split_by_series(X, column_id, processes * PARTS_PER_PROCESS)
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
    with context.Pool(processes) as pool:
        tables = pool.starmap(_extract_part, [(part, options, settings) for part in parts],
                              chunksize=1)
    features = pd.concat(tables)
    return features.sort_index()  # tsfresh's order: by series id


def _extract_here(X: pd.DataFrame, options: dict, settings: dict) -> pd.DataFrame:
    """``extract_features(X, n_jobs=0, ...)``, the same frame: tsfresh's own per-series step
    (``_do_extraction_on_chunk``) on each series in tsfresh's order, and its pivot (a column
    per feature as computed, rows by id), without its data adapter, distributor and progress
    machinery, whose fixed cost was most of a one-series prediction's extraction."""
    from tsfresh.feature_extraction.extraction import _do_extraction_on_chunk

    default, per_kind = settings.get("default_fc_parameters"), settings.get("kind_to_fc_parameters")
    if default is None:  # as extract_features: everything, unless only per-channel settings
        default = fc_settings.ComprehensiveFCParameters() if per_kind is None else {}
    column_id, column_kind = options["column_id"], options["column_kind"]
    column_value = options["column_value"]
    keys = [column_id] + ([column_kind] if column_kind else [])
    rows: dict = {}      # series id -> its row, in the order tsfresh's groupby gives them
    columns: dict = {}   # feature -> its column, in the order first computed (tsfresh's pivot)
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # extract_features' show_warnings=False
        for key, values in X.groupby(keys)[column_value]:  # sorted by id (and channel)
            kind = str(key[1]) if column_kind else column_value
            for series_id, name, value in _do_extraction_on_chunk(
                    (key[0], kind, values), default, per_kind, show_warnings=False):
                found.append((rows.setdefault(series_id, len(rows)),
                              columns.setdefault(name, len(columns)), value))
    matrix = np.full((len(rows), len(columns)), np.nan)
    for row, column, value in found:
        matrix[row, column] = value
    features = pd.DataFrame(matrix, index=pd.Index(list(rows)).astype(X[column_id].dtype),
                            columns=list(columns))
    return features.sort_index()


def _extract_part(X: pd.DataFrame, options: dict, settings: dict) -> pd.DataFrame:
    return extract_features(X, n_jobs=0, **options, **settings)


def _split_by_series(X: pd.DataFrame, column_id: str, n_parts: int) -> list[pd.DataFrame]:
    """At most ``n_parts`` slices of ``X`` with about as many rows each, no series cut in two."""
    codes, ids = pd.factorize(X[column_id], sort=True)
    rows_per_id = np.bincount(codes, minlength=len(ids))
    rows_before = np.cumsum(rows_per_id) - rows_per_id
    part_of_row = (rows_before * max(1, n_parts) // max(1, len(X)))[codes]
    return [X[part_of_row == p] for p in np.unique(part_of_row)]
