"""The rules that choose between candidates whose cross-validated scores differ.

They all follow the "one standard error rule" (Hastie, Tibshirani and Friedman, *The
Elements of Statistical Learning*, 7.10): on a few dozen series, cross-validation cannot tell
apart scores within a standard error of each other, and picking the top score then picks noise.
"""
from __future__ import annotations


def choice_of_engine(candidates):
    """Of the candidates whose CV score is within one standard error of the best score, the
    engine ranked highest in published comparisons (``engines.prior_rank``).

    Over ItalyPowerDemand's resamples 0-9 (67 training series, ``bench/resamples.py``), taking
    the top CV score chose tsfresh, MiniRocket or the join on 7 of 10 and averaged 0.963 test
    accuracy; this rule chose MultiRocket on 8 of 10 and averaged 0.964. With many series the
    standard error shrinks and the scores decide.
    """
    top = max(candidates, key=lambda c: c.rank)
    if top.metrics["score"] is None:
        return top
    bar = top.metrics["score"] - top.metrics["score_se"]
    close = [c for c in candidates if c.metrics["score"] is not None and c.metrics["score"] >= bar]
    return max(close, key=lambda c: (c.prior, *c.scores))


def prefer_compact(compact, full) -> bool:
    """Keep tsfresh's compact set unless the full set is better by more than one standard
    error of its fold scores: cheaper predictions, same evidence."""
    small, large = compact.metrics, full.metrics
    return small["score"] is not None and (
        large["score"] is None or small["score"] >= large["score"] - large["score_se"])


def beats(score: float | None, incumbent) -> bool:
    """Whether a challenger's CV score (the search's best, an ensemble's) beats the incumbent
    by more than the standard error of the incumbent's fold scores. On small data, smaller
    gains are noise, and did not hold on test data (ItalyPowerDemand, 67 series: SGD beat
    ridge in CV, and lost 0.003 accuracy on test)."""
    reference = incumbent.metrics["score"]
    return score is not None and (reference is None
                                  or score > reference + incumbent.metrics["score_se"])
