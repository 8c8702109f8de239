"""What computing a set of tsfresh features costs, and the cheapest set that serves a model.

Prediction computes only the features the model reads, but tsfresh's cost is per calculator,
not per feature: one feature of an expensive calculator can cost more than fifty cheap ones.
So a model that reads "the relevant features" (often a third of all) is barely cheaper to
serve than a full extraction. :func:`compact` picks the most important features whose
calculators fit a small share of a full extraction's cost.

The costs are in ms per series-channel on 2 cores, tsfresh 0.21 with this package's
``change_quantiles``, averaged over ItalyPowerDemand (24 points), GunPoint (150) and
BasicMotions (100): for one parameter of the calculator, and for all of EfficientFCParameters'.
They rank calculators rather than time them: on GunPoint's 150-point series a compact set
estimated at 1/12 of a full extraction measured 1/7 (bench/features.py), since per-series
overhead and growth with length are not modelled. Calculators not listed cost less than 0.005 ms, except those of comprehensive settings
only (entropies, matrix profile, ...), taken as :data:`UNKNOWN_MS`.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier
from tsfresh.feature_extraction.settings import ComprehensiveFCParameters, EfficientFCParameters

CALCULATOR_MS = {  # name: (one parameter, every efficient parameter)
    "agg_linear_trend": (0.380, 3.165),
    "max_langevin_fixed_point": (3.033, 3.033),
    "friedrich_coefficients": (2.820, 2.820),
    "augmented_dickey_fuller": (2.376, 2.376),
    "number_cwt_peaks": (0.856, 2.040),
    "fourier_entropy": (0.278, 1.255),
    "ar_coefficient": (1.016, 1.016),
    "change_quantiles": (0.118, 0.804),
    "cwt_coefficients": (0.543, 0.699),
    "permutation_entropy": (0.116, 0.613),
    "fft_coefficient": (0.038, 0.573),
    "lempel_ziv_complexity": (0.122, 0.542),
    "large_standard_deviation": (0.021, 0.364),
    "autocorrelation": (0.036, 0.363),
    "quantile": (0.050, 0.361),
    "number_peaks": (0.010, 0.321),
    "linear_trend": (0.298, 0.298),
    "ratio_beyond_r_sigma": (0.039, 0.243),
    "benford_correlation": (0.224, 0.224),
    "spkt_welch_density": (0.213, 0.224),
    "energy_ratio_by_chunks": (0.036, 0.193),
    "percentage_of_reoccurring_datapoints_to_all_datapoints": (0.191, 0.191),
    "partial_autocorrelation": (0.000, 0.100),
    "agg_autocorrelation": (0.040, 0.099),
    "binned_entropy": (0.087, 0.087),
    "fft_aggregated": (0.045, 0.079),
    "symmetry_looking": (0.026, 0.073),
    "longest_strike_above_mean": (0.045, 0.045),
    "cid_ce": (0.025, 0.042),
    "longest_strike_below_mean": (0.040, 0.040),
    "index_mass_quantile": (0.011, 0.040),
    "time_reversal_asymmetry_statistic": (0.011, 0.038),
    "kurtosis": (0.037, 0.037),
    "mean_n_absolute_max": (0.035, 0.035),
    "skewness": (0.034, 0.034),
    "c3": (0.009, 0.032),
    "sum_of_reoccurring_values": (0.029, 0.029),
    "range_count": (0.026, 0.026),
    "percentage_of_reoccurring_values_to_all_values": (0.025, 0.025),
    "sum_of_reoccurring_data_points": (0.024, 0.024),
    "median": (0.022, 0.022),
    "variance_larger_than_standard_deviation": (0.020, 0.020),
    "variation_coefficient": (0.020, 0.020),
    "number_crossing_m": (0.005, 0.017),
    "standard_deviation": (0.016, 0.016),
    "variance": (0.012, 0.012),
    "count_above": (0.007, 0.007),
    "has_duplicate_max": (0.006, 0.006),
    "mean_abs_change": (0.006, 0.006),
    "count_below": (0.006, 0.006),
    "has_duplicate_min": (0.005, 0.005),
}
# The compact set: at most this many features, whose calculators cost at most 1/COMPACT_SPEEDUP
# of a full extraction (every relevant feature: 1.5-14x less). With 20 and 30, served models
# lost 1.5-2.7 points of test accuracy on GunPoint and ItalyPowerDemand (ExtraTrees, standard
# splits), which cross-validation on 50-67 series could not see; with 12 and 50, -0.003 to
# +0.007, and an estimated 12-13x.
COMPACT_SPEEDUP, COMPACT_MAX_FEATURES = 12, 50
# The budget is never below this, in ms per series-channel (tsfresh's own overhead is ~0.1 ms):
# with cheap settings such as minimal, every relevant feature is cheap enough already.
COMPACT_MIN_BUDGET_MS = 0.5
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
    cost plus (m - 1) / (n - 1) of the rest.
    """
    available = _calculators(extracted)
    total = 0.0
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
