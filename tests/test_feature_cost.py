"""The compact tsfresh feature set: the most important features that are cheap to compute."""
from __future__ import annotations

from automl.feature_cost import compact, extraction_ms

# Two channels x three calculators, named as tsfresh names them.
EXTRACTED = ([f"x__agg_linear_trend__attr_\"slope\"__chunk_len_{i}" for i in range(48)]
             + [f"x__quantile__q_0.{i}" for i in range(1, 9)]
             + ["x__mean", "y__mean", "y__maximum"])


def test_cost_grows_with_each_parameter_of_a_calculator_and_each_channel():
    one = extraction_ms(EXTRACTED[:1], EXTRACTED)
    half = extraction_ms(EXTRACTED[:24], EXTRACTED)
    every = extraction_ms(EXTRACTED[:48], EXTRACTED)
    assert 0 < one < half < every
    assert extraction_ms(["x__mean", "y__mean"], EXTRACTED) > extraction_ms(["x__mean"], EXTRACTED)


def test_compact_keeps_the_most_important_features_that_fit_the_budget():
    # Most important first: an expensive calculator's many parameters, then cheap features.
    ranked = EXTRACTED[:48] + ["x__mean", "y__maximum", "x__quantile__q_0.1"]
    chosen = compact(ranked, EXTRACTED, speedup=3, max_features=30)
    assert chosen[0] == ranked[0]  # the most important always stays
    assert 15 < len(chosen) < 30
    assert extraction_ms(chosen, EXTRACTED) <= extraction_ms(EXTRACTED, EXTRACTED) / 3
    # Expensive parameters beyond the budget are passed over for cheap, less important ones.
    assert {"x__mean", "y__maximum"} <= set(chosen)
    assert len(compact(ranked, EXTRACTED, speedup=1, max_features=3)) == 3


def test_cheap_features_are_all_kept_however_high_the_speedup():
    cheap = ["x__mean", "x__maximum", "x__standard_deviation", "x__median"]
    assert compact(cheap, cheap, speedup=100, max_features=30) == cheap
