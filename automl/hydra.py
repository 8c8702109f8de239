"""Hydra (Dempster, Schmidt and Webb, 2023, "Hydra: competing convolutional kernels for fast and
accurate time series classification") in numpy and numba, without torch.

It computes what aeon 1.6.0's ``HydraTransformer`` computes (aeon's ``_HydraInternal``, itself
the reference code of github.com/angus924/hydra with its multivariate extension):

- random kernels of length 9 (standard normal weights, then mean 0 and absolute sum 1),
  ``n_groups`` groups of ``n_kernels`` kernels per dilation; dilations 2**0 .. 2**e with
  e = int(log2((length - 1) / 8)), each with zero padding 4 * dilation (output as long as input);
- half the groups (``n_groups // 2``) convolve the series, the other half its first difference
  (with ``n_groups=1``, only the series);
- at each time point the kernels of a group compete: the one with the largest response adds that
  response to its count ("soft" max count), the one with the smallest adds 1 ("hard" min count);
- multivariate series (more than one channel): each group convolves the sum of a random subset
  of clip(channels // 2, 2, max_num_channels) channels, drawn with replacement, per dilation and
  representation (aeon's multivariate Hydra).

Features come out in aeon's order: dilation, then representation (series, difference), then max
counts before min counts, then group, then kernel: ``n_dilations * 2 * n_groups * n_kernels``
float32 values per series (``n_groups * n_kernels`` per dilation and count when n_groups=1).

The random draws use numpy (``random_state``), not torch's generator, so the same seed gives other
kernels than aeon's; with aeon's kernels copied in (``weights_``, ``channel_indices_``),
99.99 % of the features on the development sets agree to float32 rounding and the rest differ
by one count where two kernels tie in float32 (``bench/transforms.py`` documents the check).

Hydra's classifier in the paper and in aeon is ridge regression with leave-one-out
cross-validation (``RidgeClassifierCV(alphas=np.logspace(-3, 3, 10))``) on the features scaled by
:class:`SparseScaler` (square root of the counts, then standardised, zeros kept at zero):
:func:`hydra_classifier` builds that pipeline, :func:`multirocket_hydra_classifier` the
MultiRocket+Hydra one (aeon's MultiRocket features, standardised, joined to Hydra's).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

KERNEL_LENGTH = 9


def as_panel(X) -> np.ndarray:
    """(series, channels, length) float64 array from a 3-D array, or a 2-D one (univariate)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 2:
        X = X[:, np.newaxis, :]
    if X.ndim != 3:
        raise ValueError(f"expected (series, channels, length) values, got shape {X.shape}")
    return X


def dilations_for(length: int) -> np.ndarray:
    """aeon's dilations: 2**0 .. 2**int(log2((length - 1) / 8)) for a kernel of length 9.

    aeon gets none below 6 points (and fails below 2); here series of 2-5 points get dilation 1.
    """
    if length < 2:
        raise ValueError(f"Hydra needs series of at least 2 points, got {length}")
    exponent = int(np.log2((length - 1) / (KERNEL_LENGTH - 1)))
    return 2 ** np.arange(max(exponent, 0) + 1, dtype=np.int64)


class HydraTransformer(TransformerMixin, BaseEstimator):
    """Hydra features of equal-length series.

    Parameters
    ----------
    n_kernels : kernels per group (``k`` in the paper, 8).
    n_groups : groups per dilation (``g``, 64); half of them see the first difference.
    max_num_channels : most channels summed into one group's input (multivariate only).
    random_state : seed (or ``RandomState``) for the kernels and channel subsets.
    batch_size : series transformed per chunk (bounds the float32 copy of the input; the
        numba kernel itself needs only O(n_kernels * length) scratch per series).
    n_jobs : threads of numba's parallel loop over series (1: plain serial code, safe in any
        thread; numba's default threading layer must not be entered by two threads at once).

    ``transform`` returns a float32 array (series, n_dilations * 2 * n_groups * n_kernels) when
    n_groups > 1: 4 KiB per dilation per series with the defaults.
    """

    def __init__(self, n_kernels=8, n_groups=64, max_num_channels=8, random_state=None,
                 batch_size=256, n_jobs=1):
        self.n_kernels = n_kernels
        self.n_groups = n_groups
        self.max_num_channels = max_num_channels
        self.random_state = random_state
        self.batch_size = batch_size
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        X = as_panel(X)
        _, n_channels, length = X.shape
        if self.n_kernels < 1 or self.n_groups < 1:
            raise ValueError("n_kernels and n_groups must be at least 1")
        rng = check_random_state(self.random_state)
        self.n_channels_ = n_channels
        self.n_timepoints_ = length
        self.dilations_ = dilations_for(length)
        self.divisor_ = min(2, self.n_groups)  # representations: series (and difference)
        self.groups_per_representation_ = self.n_groups // self.divisor_
        n_dil, h, k = len(self.dilations_), self.groups_per_representation_, self.n_kernels
        weights = rng.standard_normal((n_dil, self.divisor_, h, k, KERNEL_LENGTH))
        weights -= weights.mean(axis=-1, keepdims=True)
        weights /= np.abs(weights).sum(axis=-1, keepdims=True)
        self.weights_ = weights
        if n_channels > 1:
            per_group = int(np.clip(n_channels // 2, 2, self.max_num_channels))
            self.channel_indices_ = rng.randint(
                0, n_channels, size=(n_dil, self.divisor_, h, per_group)).astype(np.int64)
        else:
            self.channel_indices_ = np.zeros((n_dil, self.divisor_, h, 1), dtype=np.int64)
        self.n_features_out_ = n_dil * self.divisor_ * 2 * h * k
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "weights_")
        X = np.asarray(X)
        if X.ndim == 2:
            X = X[:, np.newaxis, :]
        if X.ndim != 3 or X.shape[1] != self.n_channels_:
            raise ValueError(f"expected (series, {self.n_channels_}, length) values, "
                             f"got shape {X.shape}")
        if X.shape[2] < 2:
            raise ValueError("Hydra needs series of at least 2 points")
        out = np.empty((len(X), self.n_features_out_), dtype=np.float32)
        step = max(1, int(self.batch_size))
        threads = max(1, int(self.n_jobs)) if self.n_jobs != -1 else _cpu_count()
        weights = np.ascontiguousarray(self.weights_, dtype=np.float32)
        for start in range(0, len(X), step):
            chunk = np.ascontiguousarray(X[start:start + step], dtype=np.float32)
            if threads > 1:
                _hydra_parallel_threads(chunk, weights, self.channel_indices_,
                                        self.dilations_, self.n_channels_ > 1,
                                        out[start:start + step], threads)
            else:
                _hydra_serial(chunk, weights, self.channel_indices_, self.dilations_,
                              self.n_channels_ > 1, out[start:start + step])
        return out

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "weights_")
        return np.asarray([f"hydra_{i}" for i in range(self.n_features_out_)], dtype=object)


class SparseScaler(TransformerMixin, BaseEstimator):
    """Hydra's feature scaling (aeon's ``_SparseScaler``, the reference code's ``SparseScaler``).

    Counts are clipped at 0 and square-rooted, then standardised with the training mean and
    standard deviation (ddof=1, as torch's ``std``) plus epsilon = (fraction of zeros)**exponent
    + 1e-8; with ``mask``, values that were zero stay zero.
    """

    def __init__(self, mask=True, exponent=4):
        self.mask = mask
        self.exponent = exponent

    def fit(self, X, y=None):
        X = np.sqrt(np.clip(np.asarray(X, dtype=np.float64), 0, None))
        epsilon = (X == 0).mean(axis=0) ** self.exponent + 1e-8
        self.mean_ = X.mean(axis=0)
        self.scale_ = (X.std(axis=0, ddof=1) if len(X) > 1 else np.zeros(X.shape[1])) + epsilon
        return self

    def transform(self, X):
        check_is_fitted(self, "mean_")
        X = np.sqrt(np.clip(np.asarray(X, dtype=np.float64), 0, None))
        scaled = X - self.mean_
        if self.mask:
            scaled *= X != 0
        return (scaled / self.scale_).astype(np.float32)


def hydra_classifier(random_state=None, n_kernels=8, n_groups=64, n_jobs=1):
    """Hydra features, :class:`SparseScaler`, ridge with leave-one-out CV over 10 alphas (aeon's
    ``HydraClassifier``); the ridge answers ``predict_proba`` like the service's other models."""
    from sklearn.pipeline import make_pipeline

    from .models import RidgeClassifierProba

    return make_pipeline(
        HydraTransformer(n_kernels=n_kernels, n_groups=n_groups, random_state=random_state,
                         n_jobs=n_jobs),
        SparseScaler(), RidgeClassifierProba(alphas=np.logspace(-3, 3, 10)))


def multirocket_hydra_classifier(random_state=None, n_jobs=1):
    """aeon's ``MultiRocketHydraClassifier`` without torch: Hydra's features through
    :class:`SparseScaler` joined to aeon's MultiRocket features through a ``StandardScaler``,
    then the same ridge."""
    from aeon.transformations.collection.convolution_based import MultiRocket
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .models import RidgeClassifierProba

    features = FeatureUnion([
        ("hydra", make_pipeline(HydraTransformer(random_state=random_state, n_jobs=n_jobs),
                                SparseScaler())),
        ("multirocket", make_pipeline(MultiRocket(random_state=random_state, n_jobs=n_jobs),
                                      StandardScaler())),
    ])
    return make_pipeline(features, RidgeClassifierProba(alphas=np.logspace(-3, 3, 10)))


def warm_up() -> None:
    """Compile the numba kernels into their on-disk cache (install time; ``automl/__pycache__``).

    Measured here: ~5 s to compile the serial and threaded kernels, ~0.3 s to load them from
    the cache.
    """
    X = np.random.default_rng(0).normal(size=(3, 2, 12))
    for n_jobs in (1, 2):
        HydraTransformer(n_groups=4, random_state=0, n_jobs=n_jobs).fit(X).transform(X)


# ---------------------------------------------------------------------------------------------
# numba kernels


@njit(cache=True)
def _hydra_one(series, weights, channel_indices, dilations, multivariate, out):
    """One series' features into ``out`` (float32, n_features).

    ``series`` and ``weights`` are float32 (torch's precision, and twice numpy's SIMD width);
    counts add up in float64. Loops run over slices so that LLVM vectorises them (an index
    ``t + offset`` that may be negative keeps numba's wraparound check and a scalar loop).
    """
    n_channels, length = series.shape
    n_dil, divisor, h, k, width = weights.shape
    half = width // 2
    diff = np.empty((n_channels, max(length - 1, 0)), dtype=np.float32)
    for c in range(n_channels):
        for t in range(length - 1):
            diff[c, t] = series[c, t + 1] - series[c, t]
    source = np.empty(length, dtype=np.float32)
    response = np.empty((k, length), dtype=np.float32)
    best = np.empty(length, dtype=np.float32)
    worst = np.empty(length, dtype=np.float32)
    arg_best = np.empty(length, dtype=np.int64)
    arg_worst = np.empty(length, dtype=np.int64)
    count_max = np.empty(k)
    count_min = np.empty(k)
    position = 0
    for di in range(n_dil):
        d = dilations[di]
        for rep in range(divisor):
            n = length if rep == 0 else length - 1
            values = series if rep == 0 else diff
            for g in range(h):
                # the group's input: the series (univariate) or a sum of channels
                if multivariate:
                    source[:n] = 0.0
                    for j in range(channel_indices.shape[3]):
                        row = values[channel_indices[di, rep, g, j]]
                        for t in range(n):
                            source[t] += row[t]
                else:
                    row = values[0]
                    for t in range(n):
                        source[t] = row[t]
                # cross-correlation with zero padding (torch's conv1d): output as long as input
                for kk in range(k):
                    target = response[kk]
                    for t in range(n):
                        target[t] = 0.0
                    for j in range(width):
                        w = weights[di, rep, g, kk, j]
                        offset = (j - half) * d
                        lo = max(0, -offset)
                        hi = min(n, n - offset)
                        if hi <= lo:
                            continue
                        dst = target[lo:hi]
                        src = source[lo + offset:hi + offset]
                        for t in range(hi - lo):
                            dst[t] += w * src[t]
                # the kernels compete at each time point; strict comparisons: the first of
                # equal values wins, as torch's max/min along a dimension
                first = response[0]
                for t in range(n):
                    best[t] = first[t]
                    worst[t] = first[t]
                    arg_best[t] = 0
                    arg_worst[t] = 0
                for kk in range(1, k):
                    row = response[kk]
                    for t in range(n):
                        v = row[t]
                        if v > best[t]:
                            best[t] = v
                            arg_best[t] = kk
                        if v < worst[t]:
                            worst[t] = v
                            arg_worst[t] = kk
                for kk in range(k):
                    count_max[kk] = 0.0
                    count_min[kk] = 0.0
                for t in range(n):
                    count_max[arg_best[t]] += best[t]
                    count_min[arg_worst[t]] += 1.0
                for kk in range(k):
                    out[position + g * k + kk] = count_max[kk]
                    out[position + h * k + g * k + kk] = count_min[kk]
            position += 2 * h * k


@njit(cache=True)
def _hydra_serial(X, weights, channel_indices, dilations, multivariate, out):
    for i in range(X.shape[0]):
        _hydra_one(X[i], weights, channel_indices, dilations, multivariate, out[i])


@njit(cache=True, parallel=True)
def _hydra_parallel(X, weights, channel_indices, dilations, multivariate, out):
    for i in prange(X.shape[0]):
        _hydra_one(X[i], weights, channel_indices, dilations, multivariate, out[i])


def _hydra_parallel_threads(X, weights, channel_indices, dilations, multivariate, out,
                            threads):
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        _hydra_parallel(X, weights, channel_indices, dilations, multivariate, out)
    finally:
        numba.set_num_threads(previous)


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1
