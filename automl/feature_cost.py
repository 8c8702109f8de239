"""What computing a set of tsfresh features costs, and the cheapest set that serves a model.

Prediction computes only the features the model reads, but tsfresh's cost is per calculator,
not per feature: one feature of an expensive calculator can cost more than fifty cheap ones.
So a model that reads "the relevant features" (often a third of all) is barely cheaper to
serve than a full extraction. :func:`compact` picks the most important features whose
calculators fit a small share of a full extraction's cost.

The costs are in ms per series-channel on 2 cores, as ``scripts/calculator_costs.py``
measures them: what the service's extraction (this package's faster calculators included)
spends on each calculator, for its first parameter and for all of EfficientFCParameters',
tsfresh's work per feature included, averaged over ItalyPowerDemand (24 points), GunPoint
(150) and BasicMotions (100); plus tsfresh's work per series-channel. Growth with series
length is not modelled, so the table ranks calculators more than it times them: a compact set
estimated at 1/14 of a full extraction measured 1/13.7 on GunPoint (150 points) and 1/13.2 on
ItalyPowerDemand (24). Calculators not listed cost less than 0.005 ms, except those of
comprehensive settings only (entropies, matrix profile, ...), taken as :data:`UNKNOWN_MS`.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier
from tsfresh.feature_extraction.settings import ComprehensiveFCParameters, EfficientFCParameters

CALCULATOR_MS = {  # name: (one parameter, every efficient parameter)
    "friedrich_coefficients": (2.894, 2.843),
    "max_langevin_fixed_point": (2.871, 2.809),
    "augmented_dickey_fuller": (2.340, 2.421),
    "number_cwt_peaks": (0.803, 1.934),
    "fourier_entropy": (0.270, 1.247),
    "ar_coefficient": (1.103, 1.134),
    "change_quantiles": (0.083, 0.654),
    "permutation_entropy": (0.128, 0.648),
    "fft_coefficient": (0.018, 0.487),
    "agg_linear_trend": (0.044, 0.366),
    "autocorrelation": (0.051, 0.349),
    "quantile": (0.052, 0.345),
    "large_standard_deviation": (0.020, 0.325),
    "number_peaks": (0.021, 0.287),
    "linear_trend": (0.261, 0.264),
    "ratio_beyond_r_sigma": (0.034, 0.211),
    "lempel_ziv_complexity": (0.046, 0.194),
    "percentage_of_reoccurring_datapoints_to_all_datapoints": (0.187, 0.191),
    "benford_correlation": (0.204, 0.191),
    "spkt_welch_density": (0.195, 0.186),
    "energy_ratio_by_chunks": (0.031, 0.171),
    "cwt_coefficients": (0.022, 0.162),
    "partial_autocorrelation": (0.000, 0.091),
    "agg_autocorrelation": (0.050, 0.089),
    "binned_entropy": (0.086, 0.087),
    "fft_aggregated": (0.030, 0.079),
    "symmetry_looking": (0.040, 0.060),
    "longest_strike_above_mean": (0.039, 0.043),
    "kurtosis": (0.046, 0.043),
    "index_mass_quantile": (0.019, 0.038),
    "time_reversal_asymmetry_statistic": (0.014, 0.037),
    "c3": (0.012, 0.037),
    "cid_ce": (0.032, 0.037),
    "longest_strike_below_mean": (0.034, 0.035),
    "skewness": (0.037, 0.033),
    "sum_of_reoccurring_values": (0.034, 0.029),
    "percentage_of_reoccurring_values_to_all_values": (0.025, 0.027),
    "range_count": (0.010, 0.025),
    "sum_of_reoccurring_data_points": (0.029, 0.024),
    "number_crossing_m": (0.011, 0.023),
    "median": (0.022, 0.021),
    "variation_coefficient": (0.020, 0.020),
    "variance": (0.017, 0.018),
    "value_count": (0.004, 0.014),
    "standard_deviation": (0.013, 0.014),
    "mean_abs_change": (0.010, 0.014),
    "variance_larger_than_standard_deviation": (0.017, 0.013),
    "mean_n_absolute_max": (0.017, 0.012),
    "count_above": (0.011, 0.012),
    "count_above_mean": (0.004, 0.010),
    "has_duplicate_max": (0.005, 0.010),
    "count_below": (0.008, 0.006),
    "mean": (0.007, 0.006),
    "ratio_value_number_to_time_series_length": (0.010, 0.005),
    "count_below_mean": (0.006, 0.005),
    "has_duplicate_min": (0.006, 0.005),
}
# tsfresh's own work per series-channel, whatever it computes (the calculators' costs above
# include its work per feature: naming, collecting, tabulating).
TSFRESH_SERIES_MS = 0.058
# The compact set: at most this many features, whose calculators are estimated to cost at most
# 1/COMPACT_SPEEDUP of a full extraction (every relevant feature: 1.5-14x less). Measured on the
# standard splits (served ExtraTrees, fast settings; scripts/calculator_costs.py's table):
# at 1/12, ItalyPowerDemand's compact prediction was only 8.7x faster (its 24-point series make
# a full extraction cheaper than the table says); at 1/14, 13-15x on all three sets. Test
# accuracy (3 seeds) against every relevant feature's: GunPoint 0.969 vs 0.978, ItalyPowerDemand
# 0.959 vs 0.963 (1 of 150 GunPoint series is 0.007; 1/12 gave 0.971 and 0.959), while pooled
# 5-fold CV on 4-16x the series saw no loss (bench/features.py). Tighter budgets (30 features at
# 1/20) lost 1.5-2.7 points there, which cross-validation on 50-67 series could not see.
COMPACT_SPEEDUP, COMPACT_MAX_FEATURES = 14, 50
# The budget is never below this, in ms per series-channel (tsfresh's own work is 0.06 ms):
# with cheap settings such as minimal (~0.15 ms), every relevant feature is cheap enough
# already. Below 1/14 of fast settings (~6 ms), so that it never binds for them.
COMPACT_MIN_BUDGET_MS = 0.3
CHEAP_MS = 0.005
UNKNOWN_MS = 1.0
_EFFICIENT = set(EfficientFCParameters())
_KNOWN = set(ComprehensiveFCParameters())


def calculator_ms(name: str) -> tuple[float, float]:
    if name in CALCULATOR_MS:
        return CALCULATOR_MS[name]
    if name in _EFFICIENT or name not in _KNOWN:
        return CHEAP_MS, CHEAP_MS
    return UNKNOWN_MS, UNKNOWN_MS


def _calculators(columns) -> Counter:
    """Columns per (channel, calculator): tsfresh names them channel__calculator__params."""
    return Counter(tuple(column.split("__")[:2]) for column in columns)


def extraction_ms(columns, extracted) -> float:
    """Estimated ms per series to compute ``columns``, out of an extraction of ``extracted``.

    A calculator computing m of the n columns it gave in ``extracted`` costs its one-parameter
    cost plus (m - 1) / (n - 1) of the rest; tsfresh adds its own per series-channel (every
    channel of the upload is read).
    """
    available = _calculators(extracted)
    total = TSFRESH_SERIES_MS * len({channel for channel, _ in available})
    for key, m in _calculators(columns).items():
        one, every = calculator_ms(key[1])
        n = max(available.get(key, m), m)
        total += one + (every - one) * (m - 1) / max(n - 1, 1)
    return total


def compact(ranked, extracted, speedup: float, max_features: int) -> list:
    """The first columns of ``ranked`` (most important first) that keep the estimated cost
    within ``1 / speedup`` of extracting all of ``extracted`` (or :data:`COMPACT_MIN_BUDGET_MS`
    per channel, if more), at most ``max_features``.

    A column that would break the budget is passed over for later, cheaper ones; the most
    important column is always kept.
    """
    ranked = list(ranked)
    channels = len({key[0] for key in _calculators(extracted)})
    budget = max(extraction_ms(extracted, extracted) / speedup, COMPACT_MIN_BUDGET_MS * channels)
    chosen: list = []
    for column in ranked:
        if len(chosen) >= max_features:
            break
        if extraction_ms(chosen + [column], extracted) <= budget:
            chosen.append(column)
    return chosen or ranked[:1]


def compact_set(matrix, y, relevant: list, speedup: float = COMPACT_SPEEDUP,
                max_features: int = COMPACT_MAX_FEATURES, random_state: int = 0) -> list:
    """The compact set of a tsfresh feature ``matrix`` (every extracted column): the
    ``relevant`` columns ranked by a small ExtraTrees' importance on ``y``, then
    :func:`compact`."""
    ranker = ExtraTreesClassifier(n_estimators=100, random_state=random_state, n_jobs=1)
    ranker.fit(matrix[relevant].to_numpy(), y)
    ranked = [relevant[i] for i in np.argsort(-ranker.feature_importances_, kind="stable")]
    return compact(ranked, matrix.columns, speedup, max_features)
