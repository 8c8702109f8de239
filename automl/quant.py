"""QUANT (Dempster, Schmidt and Webb, 2024, "QUANT: a minimalist interval method for time series
classification") in numpy, without torch.

It computes what aeon 1.6.0's ``QUANTTransformer`` computes (the reference code of
github.com/angus924/quant):

- four representations of each channel: the series; its first difference smoothed by a moving
  mean of width 5 over the difference padded by repeating its end values twice
  (``avg_pool1d(pad(diff(X), (2, 2), "replicate"), 5, 1)``); the second difference; the
  magnitude of the real FFT (``length // 2 + 1`` values);
- dyadic intervals of each: at depth 0 .. min(interval_depth, int(log2(n)) + 1) - 1 the
  representation (n values) is cut into 2**depth intervals at floor(i * n / 2**depth), and,
  from depth 1 on and when the median interval is longer than 1 value, the same intervals but
  the last shifted right by ceil(n / 2**depth / 2);
- in each interval of m values, 1 + (m - 1) // quantile_divisor quantiles at evenly spaced
  probabilities from 0 to 1 (linear interpolation, numpy's and torch's default); with more than
  one, the interval's mean is subtracted from every second quantile (odd positions); with one,
  it is the median; an interval of one value gives that value.

Features come out as aeon orders them: per channel (channel-major), the four representations in
the order above, their intervals in the order above, each interval's quantiles in increasing
probability. Values are computed in float64 and returned as float32 (aeon computes in float32:
they agree to float32 rounding, see ``bench/transforms.py``).

QUANT's classifier (the paper's and aeon's ``QUANTClassifier``) is
``ExtraTreesClassifier(n_estimators=200, max_features=0.1, criterion="entropy")`` on these
features, unscaled: :func:`quant_classifier` builds it.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .hydra import as_panel  # one reading of (series, channels, length) arrays for both

MIN_LENGTH = 3  # the second difference needs one value


def representation_lengths(length: int) -> tuple[int, int, int, int]:
    """Values in each representation of a series of ``length`` points."""
    return length, length - 1, length - 2, length // 2 + 1


def dyadic_intervals(n: int, depth: int) -> np.ndarray:
    """aeon's ``_make_intervals``: (intervals, 2) start/stop indices into ``n`` values."""
    exponent = min(depth, int(np.log2(n)) + 1)
    intervals = []
    for level in range(exponent):
        parts = 2 ** level
        # torch.linspace(0, n, parts + 1).long(): exact in float32 for a power-of-two count
        bounds = (np.arange(parts + 1, dtype=np.int64) * n) // parts
        level_intervals = np.stack((bounds[:-1], bounds[1:]), axis=1)
        intervals.append(level_intervals)
        # torch's median of an even count is the lower middle value
        lengths = np.sort(level_intervals[:, 1] - level_intervals[:, 0])
        if parts > 1 and lengths[(len(lengths) - 1) // 2] > 1:
            shift = int(np.ceil(n / parts / 2))
            intervals.append(level_intervals[:-1] + shift)
    return np.concatenate(intervals)


def representations(X: np.ndarray) -> list[np.ndarray]:
    """The four representations of (series, channels, length) values."""
    first = np.diff(X, axis=-1)
    padded = np.concatenate([first[..., :1], first[..., :1], first,
                             first[..., -1:], first[..., -1:]], axis=-1)
    n = first.shape[-1]
    smoothed = sum(padded[..., j:j + n] for j in range(5)) / 5.0
    return [X, smoothed, np.diff(X, n=2, axis=-1), np.abs(np.fft.rfft(X, axis=-1))]


class QuantTransformer(TransformerMixin, BaseEstimator):
    """QUANT features of equal-length series.

    Parameters
    ----------
    interval_depth : levels of dyadic intervals (6: 1, 2, 4, ... 32 intervals plus shifted ones).
    quantile_divisor : an interval of m values gives 1 + (m - 1) // quantile_divisor quantiles.
    batch_size : series transformed per chunk (bounds the working copies of the input).

    ``transform`` returns a float32 array (series, channels * features per channel); the number
    per channel depends on the length only, about 9-10 per point with the defaults: 212 for 24
    points, 1,556 for 150, 17,752 for 2,000 (4 bytes each per series).
    QUANT draws nothing at random: ``random_state`` is accepted for a uniform interface and
    unused.
    """

    def __init__(self, interval_depth=6, quantile_divisor=4, batch_size=256, random_state=None):
        self.interval_depth = interval_depth
        self.quantile_divisor = quantile_divisor
        self.batch_size = batch_size
        self.random_state = random_state

    def fit(self, X, y=None):
        X = as_panel(X)
        if self.quantile_divisor < 1:
            raise ValueError("quantile_divisor must be >= 1")
        if self.interval_depth < 1:
            raise ValueError("interval_depth must be >= 1")
        length = X.shape[2]
        if length < MIN_LENGTH:
            raise ValueError(f"QUANT needs series of at least {MIN_LENGTH} points, got {length}")
        self.n_channels_ = X.shape[1]
        self.n_timepoints_ = length
        self.intervals_ = [dyadic_intervals(n, self.interval_depth)
                           for n in representation_lengths(length)]
        self.n_features_per_channel_ = int(sum(
            _n_quantiles(ivs[:, 1] - ivs[:, 0], self.quantile_divisor).sum()
            for ivs in self.intervals_))
        self.n_features_out_ = self.n_features_per_channel_ * self.n_channels_
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "intervals_")
        X = np.asarray(X)
        if X.ndim == 2:
            X = X[:, np.newaxis, :]
        if X.shape[1:] != (self.n_channels_, self.n_timepoints_):
            raise ValueError(f"expected (series, {self.n_channels_}, {self.n_timepoints_}) "
                             f"values, got shape {X.shape}")
        out = np.empty((len(X), self.n_features_out_), dtype=np.float32)
        step = max(1, int(self.batch_size))
        for start in range(0, len(X), step):
            chunk = np.asarray(X[start:start + step], dtype=np.float64)
            out[start:start + step] = self._features(chunk).reshape(len(chunk), -1)
        return out

    def _features(self, X: np.ndarray) -> np.ndarray:
        """(series, channels, features per channel) float32."""
        out = np.empty((X.shape[0], X.shape[1], self.n_features_per_channel_), dtype=np.float32)
        column = 0
        for Z, intervals in zip(representations(X), self.intervals_):
            # The intervals of each length together, one sort for them all: interval by
            # interval, the calls' own cost was most of a few series' transform.
            lengths = intervals[:, 1] - intervals[:, 0]
            counts = _n_quantiles(lengths, self.quantile_divisor)
            offsets = column + np.cumsum(counts) - counts  # each interval's first feature
            for m in np.unique(lengths):
                chosen = np.flatnonzero(lengths == m)
                q = int(counts[chosen[0]])
                values = Z[..., intervals[chosen, 0][:, None] + np.arange(m)]  # (.., k, m)
                columns = (offsets[chosen][:, None] + np.arange(q)).ravel()
                out[..., columns] = _quantiles(values, q).reshape(*values.shape[:-2], -1)
            column += int(counts.sum())
        return out

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "intervals_")
        return np.asarray([f"quant_{i}" for i in range(self.n_features_out_)], dtype=object)


def quant_classifier(random_state=None, n_jobs=1):
    """QUANT features and the paper's ExtraTrees (aeon's ``QUANTClassifier``)."""
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.pipeline import make_pipeline

    return make_pipeline(QuantTransformer(), ExtraTreesClassifier(
        n_estimators=200, max_features=0.1, criterion="entropy", random_state=random_state,
        n_jobs=n_jobs))


def warm_up() -> None:
    """Nothing to compile (numpy only); here for the same interface as :mod:`automl.hydra`."""
    X = np.random.default_rng(0).normal(size=(2, 1, 12))
    QuantTransformer().fit(X).transform(X)


def _n_quantiles(m, divisor: int):
    """Quantiles of an interval of ``m`` values (an int, or an array of lengths)."""
    return np.where(m == 1, 1, 1 + (m - 1) // divisor)


def _quantiles(values: np.ndarray, q: int) -> np.ndarray:
    """aeon's ``_find_quantiles`` over the last axis of (series, channels, m) values."""
    m = values.shape[-1]
    if m == 1:
        return values
    ordered = np.sort(values, axis=-1)
    if q == 1:
        positions = np.array([0.5 * (m - 1)])
    else:
        positions = np.linspace(0.0, 1.0, q) * (m - 1)
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, m - 1)
    weight = positions - below
    low, high = ordered[..., below], ordered[..., above]
    # torch.lerp's and numpy's two-sided formula
    result = np.where(weight < 0.5, low + weight * (high - low),
                      high - (high - low) * (1.0 - weight))
    if q > 1:
        result[..., 1::2] -= values.mean(axis=-1, keepdims=True)
    return result
