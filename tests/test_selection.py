"""The fast relevance test decides as tsfresh's select_features does, in a fraction of the time."""
import numpy as np
import pandas as pd
import pytest
from tsfresh import select_features

from automl.selection import RelevanceSelector, relevant


def _features(n_classes: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Real-valued, two-valued and constant columns; some carry the class, most do not."""
    rng = np.random.default_rng(seed)
    y = np.arange(60) % n_classes
    columns = {f"noise_{i}": rng.normal(size=60) for i in range(40)}
    columns |= {f"signal_{i}": y * (0.3 + 0.2 * i) + rng.normal(size=60) for i in range(6)}
    columns |= {f"flag_{i}": (y == i % n_classes) ^ (rng.random(60) < 0.1 * i) for i in range(4)}
    columns |= {"ties": np.round(y + rng.normal(size=60)), "constant": np.ones(60)}
    return pd.DataFrame(columns).astype(float), y


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("fdr_level", [0.05, 0.2])
def test_selects_exactly_what_tsfresh_selects(n_classes, fdr_level):
    X, y = _features(n_classes)
    expected = select_features(X, pd.Series(y), fdr_level=fdr_level, multiclass=n_classes > 2,
                               n_jobs=0)
    mask = relevant(X.to_numpy(), y, fdr_level)
    assert set(X.columns[mask]) == set(expected.columns)
    assert 0 < mask.sum() < X.shape[1] - 1  # the data really separates signal from noise


def test_a_selector_with_nothing_relevant_keeps_every_informative_column():
    X = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [5.0, 5, 5, 5], "c": [1.0, 0, 1, 0]})
    selector = RelevanceSelector().fit(X, [0, 1, 0, 1])
    assert selector.fallback_ and selector.selected_ == ["a", "c"]
    assert list(selector.transform(X).columns) == ["a", "c"]
