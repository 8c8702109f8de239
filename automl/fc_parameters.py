"""tsfresh calculator settings from a parameter file, checked before a job is queued.

``default_fc_parameters`` may name tsfresh's settings, list calculators, or give
``{calculator: [ {param: value}, ... ]}``. tsfresh itself checks none of it until the
extraction runs: an unknown parameter name fails inside the job, ``binned_entropy``'s
``max_bins: 1e10`` asks for 75 GB. Here every parameter of every calculator has a rule
(:data:`RULES`, each value with a range), the number of parameter sets is bounded, and each
calculator is then run once on a short series to catch what only it can know (``w`` not in
``widths``, ``segment_focus`` past ``num_segments``).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .checks import (Flag, ListOf, Nullable, Number, OneOf, Rule, Text, Whole, Wrong,
                     MAX_TEXT_CHARS)
from .errors import excerpt

SETTINGS = ("minimal", "fast", "efficient", "comprehensive")
SETTINGS_ALIASES = {"minimalfcparameters": "minimal", "efficientfcparameters": "efficient",
                    "comprehensivefcparameters": "comprehensive"}
MAX_PARAMETER_SETS = 1_000        # per calculator (tsfresh's largest, fft_coefficient, has 400)
MAX_TOTAL_PARAMETER_SETS = 5_000  # over all calculators (comprehensive has about 780)

LAG, SMALL = Whole(0, 10_000), Whole(1, 100)
FRACTION = Number(0.0, 1.0)
VALUE = Number(-1e15, 1e15)
ATTR = OneOf(["pvalue", "rvalue", "intercept", "slope", "stderr"])
# calculator -> ({required parameter: rule}, {optional parameter: rule})
RULES: dict[str, tuple[dict[str, Rule], dict[str, Rule]]] = {
    "time_reversal_asymmetry_statistic": ({"lag": Whole(1, 10_000)}, {}),
    "c3": ({"lag": Whole(1, 10_000)}, {}),
    "cid_ce": ({"normalize": Flag()}, {}),
    "symmetry_looking": ({"r": FRACTION}, {}),
    "large_standard_deviation": ({"r": FRACTION}, {}),
    "quantile": ({"q": FRACTION}, {}),
    "autocorrelation": ({"lag": LAG}, {}),
    "agg_autocorrelation": ({"f_agg": OneOf(["mean", "median", "var"]),
                             "maxlag": Whole(1, 10_000)}, {}),
    "partial_autocorrelation": ({"lag": Whole(0, 100)}, {}),
    "number_cwt_peaks": ({"n": Whole(1, 50)}, {}),
    "number_peaks": ({"n": Whole(1, 10_000)}, {}),
    "binned_entropy": ({"max_bins": Whole(1, 10_000)}, {}),
    "index_mass_quantile": ({"q": FRACTION}, {}),
    "cwt_coefficients": ({"widths": ListOf(Whole(1, 1_000), max_items=20),
                          "coeff": Whole(0, 100_000), "w": Whole(1, 1_000)}, {}),
    "spkt_welch_density": ({"coeff": Whole(0, 10_000)}, {}),
    "ar_coefficient": ({"coeff": Whole(0, 100), "k": SMALL}, {}),
    "change_quantiles": ({"ql": FRACTION, "qh": FRACTION, "isabs": Flag(),
                          "f_agg": OneOf(["mean", "var", "std", "median", "min", "max",
                                          "sum"])}, {}),
    "fft_coefficient": ({"coeff": Whole(0, 100_000),
                         "attr": OneOf(["real", "imag", "abs", "angle"])}, {}),
    "fft_aggregated": ({"aggtype": OneOf(["centroid", "variance", "skew", "kurtosis"])}, {}),
    "value_count": ({"value": VALUE}, {}),
    "range_count": ({"min": VALUE, "max": VALUE}, {}),
    "approximate_entropy": ({"m": Whole(1, 10), "r": Number(0.0, 1_000.0)}, {}),
    "friedrich_coefficients": ({"coeff": Whole(0, 10), "m": Whole(1, 10),
                                "r": Number(1.0, 1_000.0)}, {}),
    "max_langevin_fixed_point": ({"m": Whole(1, 10), "r": Number(1.0, 1_000.0)}, {}),
    "linear_trend": ({"attr": ATTR}, {}),
    "linear_trend_timewise": ({"attr": ATTR}, {}),
    "agg_linear_trend": ({"attr": OneOf([*ATTR.choices, "intercept_stderr"]),
                          "chunk_len": Whole(1, 100_000),
                          "f_agg": OneOf(["max", "min", "mean", "median", "var", "std"])}, {}),
    "augmented_dickey_fuller": ({"attr": OneOf(["teststat", "pvalue", "usedlag"])},
                                {"autolag": Nullable(OneOf(["AIC", "BIC", "t-stat"]))}),
    "number_crossing_m": ({"m": VALUE}, {}),
    "energy_ratio_by_chunks": ({"num_segments": Whole(1, 10_000),
                                "segment_focus": Whole(0, 9_999)}, {}),
    "ratio_beyond_r_sigma": ({"r": Number(0.0, 1_000.0)}, {}),
    "count_above": ({"t": VALUE}, {}),
    "count_below": ({"t": VALUE}, {}),
    "lempel_ziv_complexity": ({"bins": Whole(2, 10_000)}, {}),
    "fourier_entropy": ({"bins": Whole(2, 10_000)}, {}),
    "permutation_entropy": ({"tau": SMALL, "dimension": Whole(2, 10)}, {}),
    "query_similarity_count": ({"query": Nullable(ListOf(VALUE, max_items=1_000)),
                                "threshold": Number(0.0, 1e15)}, {}),
    "mean_n_absolute_max": ({"number_of_maxima": Whole(1, 10_000)}, {}),
    "matrix_profile": ({"threshold": FRACTION,
                        "feature": OneOf(["min", "max", "mean", "median", "25", "75"])}, {}),
}
# tsfresh skips it unless the series are indexed by time, which the service never does.
_NOT_DRY_RUN = {"linear_trend_timewise"}


@lru_cache(maxsize=1)
def known_calculators() -> tuple[str, ...]:
    from tsfresh.feature_extraction.settings import ComprehensiveFCParameters

    return tuple(ComprehensiveFCParameters())


class FcParameters(Rule):
    """A settings name, a list of calculator names, or {calculator: null | [ {param: v} ]}."""

    allowed = ("must be minimal, fast, efficient, comprehensive, a list of tsfresh calculator "
               "names, or a mapping of calculator names to lists of parameter mappings")

    def __call__(self, value):
        if isinstance(value, str):
            name = value.strip().lower().removesuffix("()").rsplit(".", 1)[-1]
            name = SETTINGS_ALIASES.get(name, name)
            if name in SETTINGS:
                return name
            raise Wrong(self.allowed)
        if isinstance(value, list):
            if not all(isinstance(name, str) for name in value) or not value:
                raise Wrong(self.allowed)
            value = {name: None for name in value}
        if not isinstance(value, dict) or not value:
            raise Wrong(self.allowed)
        checked, total = {}, 0
        for name, param_sets in value.items():
            if name not in known_calculators():
                raise Wrong(f"names {excerpt(name, 40)}, which is not a tsfresh calculator")
            checked[name] = _parameter_sets(name, param_sets)
            total += len(checked[name] or ())
        if total > MAX_TOTAL_PARAMETER_SETS:
            raise Wrong(f"asks for {total} parameter sets; at most {MAX_TOTAL_PARAMETER_SETS}")
        _dry_run(checked)
        return checked

    def schema(self):
        parameter_set = {"type": "object", "additionalProperties": {
            "anyOf": [{"type": ["number", "boolean", "string", "null"]},
                      {"type": "array", "maxItems": 1_000}]}}
        return {"anyOf": [
            {"type": "string", "enum": list(SETTINGS)},
            {"type": "array", "items": {"type": "string", "maxLength": MAX_TEXT_CHARS},
             "minItems": 1, "maxItems": 200},
            {"type": "object", "minProperties": 1, "additionalProperties": {"anyOf": [
                {"type": "null"}, {"type": "array", "items": parameter_set,
                                   "maxItems": MAX_PARAMETER_SETS}]}},
        ]}


def _parameter_sets(name: str, param_sets) -> list[dict] | None:
    required, optional = RULES.get(name, ({}, {}))
    if param_sets is None:
        return None  # tsfresh's usual parameters
    if not required and not optional:
        raise Wrong(f"gives parameters to {name!r}, which takes none (give it null)")
    if not isinstance(param_sets, list) or not 1 <= len(param_sets) <= MAX_PARAMETER_SETS:
        raise Wrong(f"gives {name!r} parameters that are not a list of 1 to "
                    f"{MAX_PARAMETER_SETS} mappings")
    checked = []
    for given in param_sets:
        if not isinstance(given, dict):
            raise Wrong(f"gives {name!r} a parameter set that is not a mapping")
        unknown = sorted(str(k) for k in given if k not in required and k not in optional)
        missing = sorted(k for k in required if k not in given)
        if unknown or missing:
            raise Wrong(f"gives {name!r} the parameters {sorted(map(str, given))}; it takes "
                        f"{', '.join(required)}" + (f" (optional: {', '.join(optional)})"
                                                     if optional else ""))
        one = {}
        for key, raw in given.items():
            try:
                one[key] = {**required, **optional}[key](raw)
            except Wrong as wrong:
                raise Wrong(f"gives {name!r} {key}: {excerpt(raw, 30)}, which {wrong}") from None
        if "widths" in one:
            one["widths"] = tuple(one["widths"])  # tsfresh names its features by the tuple
        checked.append(one)
    return checked


def _dry_run(settings: dict) -> None:
    """Each calculator once on a short series: what its own checks refuse, refused now."""
    import pandas as pd
    from tsfresh.feature_extraction import feature_calculators

    from .tsfresh_calculators import FAST_CALCULATORS

    x = pd.Series(np.sin(np.linspace(0, 12, 64)) + np.linspace(0, 1, 64))
    for name, param_sets in settings.items():
        if param_sets is None or name in _NOT_DRY_RUN:
            continue
        function = FAST_CALCULATORS.get(name) or getattr(feature_calculators, name)
        try:
            if function.fctype == "combiner":
                list(function(x, param_sets))
            else:
                for one in param_sets:
                    function(x, **one)
        except Exception as err:  # noqa: BLE001 - the calculator's own refusal, reported
            raise Wrong(f"gives {name!r} parameters tsfresh cannot compute with "
                        f"({type(err).__name__}: {excerpt(str(err), 80)})") from None
