"""The compact tsfresh feature set: the most important features that are cheap to compute."""
from __future__ import annotations

from automl.feature_cost import COMPACT_MIN_BUDGET_MS, compact, extraction_ms

# Two channels x three calculators, named as tsfresh names them.
EXTRACTED = ([f"x__fourier_entropy__bins_{i}" for i in range(48)]
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
    budget = extraction_ms(EXTRACTED, EXTRACTED) / 2
    chosen = compact(ranked, EXTRACTED, speedup=2, max_features=30)
    assert chosen[0] == ranked[0]  # the most important always stays
    assert 10 < len(chosen) < 30
    assert extraction_ms(chosen, EXTRACTED) <= budget
    assert all(extraction_ms(chosen + [column], EXTRACTED) > budget
               for column in ranked if column not in chosen)  # nothing left out would fit
    assert len(compact(ranked, EXTRACTED, speedup=1, max_features=3)) == 3


def test_compact_passes_over_an_expensive_feature_for_cheaper_later_ones():
    # fourier_entropy's parameters in order of importance, then a mean: with a budget that
    # holds the first k of them and the mean, the k+1-th is passed over and the mean taken.
    floor = COMPACT_MIN_BUDGET_MS * 2  # two channels
    k = next(k for k in range(1, 48) if extraction_ms(EXTRACTED[:k] + ["x__mean"], EXTRACTED) > floor)
    ranked = EXTRACTED[:k + 1] + ["x__mean"]
    just_enough = extraction_ms(EXTRACTED[:k] + ["x__mean"], EXTRACTED) + 1e-6
    speedup = extraction_ms(EXTRACTED, EXTRACTED) / just_enough
    assert compact(ranked, EXTRACTED, speedup=speedup, max_features=30) == EXTRACTED[:k] + ["x__mean"]


def test_cheap_features_are_all_kept_however_high_the_speedup():
    cheap = ["x__mean", "x__maximum", "x__standard_deviation", "x__median"]
    assert compact(cheap, cheap, speedup=100, max_features=30) == cheap
