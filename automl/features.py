"""tsfresh feature extraction as a scikit-learn transformer over long-format series.

Fitting extracts the whole settings set, learns how to impute, and keeps the relevant
features; transforming afterwards computes only those (tsfresh's ``from_columns``), which is
what makes prediction cheap.

Where the time goes (per calculator, and ``bench/features.py``, on 2 cores): on short series
tsfresh's cost is per series-channel rather than per point, about 55-65 ms with ``efficient``
whether a series has 24 or 150 points; its own per-series overhead is ~0.07 ms. So:

* ``change_quantiles`` alone was ~45 % of ``efficient`` (60 ``pd.qcut`` calls per series);
  :func:`change_quantiles` computes the same values some 30x faster, in every settings set.
  :func:`cwt_coefficients` (6x) and :func:`lempel_ziv_complexity` (3x) likewise: they
  dominated the compact sets that predictions compute (:mod:`automl.feature_cost`); and
  :func:`agg_linear_trend` (10x), then a third of the calculators' time in ``fast``.
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
import functools
import logging
import math
import multiprocessing
import sys
import time

import numpy as np
import pandas as pd
import pywt
from scipy import special
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from tsfresh import extract_features
from tsfresh.feature_extraction import settings as fc_settings
from tsfresh.utilities.distribution import ClusterDaskDistributor
from tsfresh.utilities.string_manipulation import convert_to_output_format

from .compute import available_cpus
from .parsing import LongFormatInput
from .selection import RelevanceSelector

log = logging.getLogger(__name__)

# Calculators of EfficientFCParameters left out of "fast", with their cost in ms per
# series-channel (2 cores; mean over GunPoint, ItalyPowerDemand and BasicMotions): together
# ~14 ms, when all of efficient costs 21-33 ms once change_quantiles is fast. Their features
# carry 2-6 % of an ExtraTrees model's importance on those sets, and leaving them out did not
# move cross-validated accuracy beyond its standard error there nor on ArrowHead and
# JapaneseVowels (bench/features.py measures it again).
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


def change_quantiles(x, param):
    """tsfresh's ``change_quantiles`` for a whole parameter list at once, same values.

    tsfresh computes each of the 60 (ql, qh, isabs, f_agg) combinations with its own
    ``pd.qcut`` (~0.4 ms each). ``pd.qcut(x, [ql, qh], labels=False) == 0`` is
    ``quantile(x, ql) <= x <= quantile(x, qh)`` (qcut includes the lowest edge), with the
    quantiles computed as pandas does (``np.quantile``, linear, NaN left out). A change
    counts when it starts and ends inside that corridor; no such change gives 0.
    ``tests/test_features.py`` checks equality with tsfresh's function on odd inputs.
    """
    x = np.asarray(x, dtype=np.float64)
    div = np.diff(x)
    changes = {False: div, True: np.abs(div)}
    finite = x[~np.isnan(x)]
    levels = sorted({p["ql"] for p in param} | {p["qh"] for p in param})
    quantiles = dict(zip(levels, np.quantile(finite, levels))) if finite.size else {}
    corridors: dict[tuple, np.ndarray] = {}
    result = []
    for p in param:
        ql, qh = p["ql"], p["qh"]
        value = 0.0
        if ql < qh and quantiles:
            if (ql, qh) not in corridors:
                inside = (x >= quantiles[ql]) & (x <= quantiles[qh])
                corridors[ql, qh] = inside[1:] & inside[:-1]
            inside = corridors[ql, qh]
            if inside.any():
                value = getattr(np, p["f_agg"])(changes[bool(p["isabs"])][inside])
        try:
            name = _output_name(tuple(p.items()))
        except TypeError:  # an unhashable parameter value: no cache
            name = convert_to_output_format(p)
        result.append((name, value))
    return result


@functools.lru_cache(maxsize=4096)
def _output_name(items: tuple) -> str:
    """tsfresh's name suffix for one parameter combination (a third of the time, uncached)."""
    return convert_to_output_format(dict(items))


def cwt_coefficients(x, param):
    """tsfresh's ``cwt_coefficients``, same values, without pywt's per-call set-up.

    tsfresh calls ``pywt.cwt(x, widths, "mexh")``, which integrates the wavelet afresh on
    every call and also computes frequencies nobody reads: ~0.5 ms a series, against
    ~0.02 ms for the convolutions themselves. Here the sampled wavelet of each width is
    computed once (:func:`_mexican_hat`), and only the widths asked for are transformed, with
    pywt's own operations ("conv" method), so the values are identical.
    """
    x = np.asarray(x, dtype=np.float64)
    rows: dict[int, np.ndarray] = {}
    result = []
    for p in param:
        widths, w, coeff = tuple(p["widths"]), p["w"], p["coeff"]
        widths.index(w)  # tsfresh's ValueError for a width outside widths
        if x.size <= coeff:
            value = np.nan
        else:
            if w not in rows:
                rows[w] = _cwt_row(x, w)
            value = rows[w][coeff]
        result.append((f"coeff_{coeff}__w_{w}__widths_{widths}", value))
    return result


def _cwt_row(x: np.ndarray, scale) -> np.ndarray:
    """``pywt.cwt(x, [scale], "mexh")[0][0]`` for a 1-D float64 ``x`` (pywt 1.x, "conv")."""
    convolved = np.convolve(x, _mexican_hat(scale))
    coef = -np.sqrt(scale) * np.diff(convolved)
    d = (coef.size - x.size) / 2.0
    if d > 0:
        coef = coef[math.floor(d):-math.ceil(d)]
    elif d < 0:
        raise ValueError(f"Selected scale of {scale} too small.")
    return coef


@functools.lru_cache(maxsize=64)
def _mexican_hat(scale) -> np.ndarray:
    """pywt.cwt's integrated Mexican hat wavelet, sampled for one scale (precision 12)."""
    int_psi, grid = _integrated_mexican_hat()
    step = grid[1] - grid[0]
    j = (np.arange(scale * (grid[-1] - grid[0]) + 1) / (scale * step)).astype(int)
    if j[-1] >= int_psi.size:
        j = np.extract(j < int_psi.size, j)
    return int_psi[j][::-1]


@functools.lru_cache(maxsize=1)
def _integrated_mexican_hat() -> tuple[np.ndarray, np.ndarray]:
    int_psi, grid = pywt.integrate_wavelet(pywt.DiscreteContinuousWavelet("mexh"), precision=12)
    return np.asarray(int_psi, dtype=np.float64), np.asarray(grid, dtype=np.float64)


def lempel_ziv_complexity(x, bins):
    """tsfresh's ``lempel_ziv_complexity``, same values, some 3x faster.

    The same parse of the binned series into new words, but a word is a slice of the bins'
    bytes (4 per point) rather than a tuple built from a numpy slice at every step.
    """
    x = np.asarray(x)
    edges = np.linspace(np.min(x), np.max(x), bins + 1)[1:]
    symbols = np.searchsorted(edges, x, side="left").astype(np.int32).tobytes()
    n, width = len(x), 4
    words = set()
    ind, inc = 0, 1
    while ind + inc <= n:
        word = symbols[ind * width:(ind + inc) * width]
        if word in words:
            inc += 1
        else:
            words.add(word)
            ind += inc
            inc = 1
    return len(words) / n


def agg_linear_trend(x, param):
    """tsfresh's ``agg_linear_trend``, the same values to rounding, without its overheads.

    For each (f_agg, chunk_len) tsfresh aggregates the chunks one numpy call at a time and
    fits them with ``scipy.stats.linregress``, whose checks and result object cost more than
    the arithmetic: ~0.3 ms a pair, 12 pairs a series in ``fast``. Here the full chunks are
    aggregated in one call and the fit is linregress's own formulas (``_linear_fit``).
    """
    x = np.asarray(x, dtype=np.float64)
    fits: dict[tuple, dict] = {}
    result = []
    for p in param:
        f_agg, chunk_len, attr = p["f_agg"], p["chunk_len"], p["attr"]
        value = np.nan
        if chunk_len < len(x):
            if (f_agg, chunk_len) not in fits:
                fits[f_agg, chunk_len] = _linear_fit(_aggregate_on_chunks(x, f_agg, chunk_len))
            value = fits[f_agg, chunk_len][attr]
        result.append((f'attr_"{attr}"__chunk_len_{chunk_len}__f_agg_"{f_agg}"', value))
    return result


def _aggregate_on_chunks(x: np.ndarray, f_agg: str, chunk_len: int) -> np.ndarray:
    """``f_agg`` (a numpy reduction: max, min, mean, median, var, std...) of each chunk of
    ``chunk_len`` points, the last chunk possibly shorter."""
    reduce = getattr(np, f_agg)
    full = len(x) // chunk_len * chunk_len
    chunks = reduce(x[:full].reshape(-1, chunk_len), axis=1)
    if full < len(x):
        chunks = np.append(chunks, reduce(x[full:]))
    return chunks


def _linear_fit(y: np.ndarray) -> dict:
    """``scipy.stats.linregress(range(len(y)), y)``'s attributes, by its formulas (n >= 2)."""
    attrs = ("slope", "intercept", "rvalue", "pvalue", "stderr", "intercept_stderr")
    if np.isnan(y).any():  # linregress's nan_policy="propagate": every attribute NaN
        return dict.fromkeys(attrs, np.nan)
    n = len(y)
    t = np.arange(n, dtype=np.float64)
    t_mean, y_mean = t.mean(), y.mean()
    dt, dy = t - t_mean, y - y_mean
    ss_t, ss_ty, ss_y = dt @ dt / n, dt @ dy / n, dy @ dy / n
    if ss_y == 0.0:
        r = np.nan if ss_ty == 0 else 0.0
    else:  # clipped to [-1, 1] against rounding; NaN (from an infinite y) stays NaN
        r = ss_ty / np.sqrt(ss_t * ss_y)
        r = 1.0 if r > 1.0 else -1.0 if r < -1.0 else r
    slope = ss_ty / ss_t
    if n == 2:
        pvalue = 1.0 if y[0] == y[1] else 0.0
        stderr = intercept_stderr = 0.0
    else:
        df = n - 2
        tiny = 1.0e-20  # linregress's guard against r = +-1
        t_stat = r * np.sqrt(df / ((1.0 - r + tiny) * (1.0 + r + tiny)))
        pvalue = 2.0 * special.stdtr(df, -abs(t_stat))
        stderr = np.sqrt((1 - r ** 2) * ss_y / ss_t / df)
        intercept_stderr = stderr * np.sqrt(ss_t + t_mean ** 2)
    return dict(zip(attrs, (slope, y_mean - slope * t_mean, r, pvalue, stderr,
                            intercept_stderr)))


change_quantiles.fctype = "combiner"  # tsfresh passes the whole parameter list
cwt_coefficients.fctype = "combiner"
agg_linear_trend.fctype = "combiner"
lempel_ziv_complexity.fctype = "simple"
# Drop-in replacements tsfresh calls instead of its own calculator of the same name. Only
# for extraction on this machine: Dask workers get tsfresh's names (they may not have us).
FAST_CALCULATORS = {"change_quantiles": change_quantiles, "cwt_coefficients": cwt_coefficients,
                    "lempel_ziv_complexity": lempel_ziv_complexity,
                    "agg_linear_trend": agg_linear_trend}


def with_fast_calculators(fc_parameters: dict) -> dict:
    """``{name: params}`` with our faster calculators as keys where we have them."""
    return {FAST_CALCULATORS.get(name, name) if isinstance(name, str) else name: params
            for name, params in fc_parameters.items()}


def _with_fast_calculators(settings: dict) -> dict:
    """extract_features' ``default_fc_parameters`` / ``kind_to_fc_parameters`` likewise."""
    settings = dict(settings)
    if settings.get("default_fc_parameters") is not None:
        settings["default_fc_parameters"] = with_fast_calculators(settings["default_fc_parameters"])
    if settings.get("kind_to_fc_parameters") is not None:
        settings["kind_to_fc_parameters"] = {
            kind: with_fast_calculators(params)
            for kind, params in settings["kind_to_fc_parameters"].items()}
    return settings


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


class TsfreshFeatures(LongFormatInput, TransformerMixin, BaseEstimator):
    """Long-format series (one row per measurement) -> one row of features per series id.

    ``n_jobs`` (fitting only): 0 extracts in the calling process; N > 0 splits the series
    between N worker processes (forked on Linux; possible in a non-daemonic process such as the
    training worker, else it falls back to in-process); -1 extracts a few series in-process,
    extrapolates, and uses one process per CPU only when each gets a second of work or more
    (:func:`worker_processes`). The values are the same either way. Prediction
    (``transform``) always runs in-process: it computes only the selected features, and it
    runs in the web server's threads.
    """

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

    def fit(self, X: pd.DataFrame, y: pd.Series):
        self.fit_transform(X, y)
        return self

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
            settings = _with_fast_calculators(settings)
            if processes:
                features = _extract_in_processes(X, self.column_id, processes, options, settings)
            else:
                features = extract_features(X, n_jobs=0, **options, **settings)
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


def _extract_part(X: pd.DataFrame, options: dict, settings: dict) -> pd.DataFrame:
    return extract_features(X, n_jobs=0, **options, **settings)


def _split_by_series(X: pd.DataFrame, column_id: str, n_parts: int) -> list[pd.DataFrame]:
    """At most ``n_parts`` slices of ``X`` with about as many rows each, no series cut in two."""
    codes, ids = pd.factorize(X[column_id], sort=True)
    rows_per_id = np.bincount(codes, minlength=len(ids))
    rows_before = np.cumsum(rows_per_id) - rows_per_id
    part_of_row = (rows_before * max(1, n_parts) // max(1, len(X)))[codes]
    return [X[part_of_row == p] for p in np.unique(part_of_row)]
