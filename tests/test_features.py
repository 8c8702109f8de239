"""TsfreshFeatures: what is learned at fit time and reused, unchanged, at prediction time."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.features import TsfreshFeatures, resolve_fc_parameters

from conftest import DATA


@pytest.fixture(scope="module")
def gunpoint():
    raw = pd.read_json(DATA / "data_train.json", precise_float=True)
    labels = pd.read_json(DATA / "label_train.json")
    y = pd.Series(labels["label"].to_numpy(), index=labels["example_id"].astype(str))
    return raw, y


def test_prediction_computes_exactly_the_selected_columns_in_training_order(gunpoint):
    raw, y = gunpoint
    features = TsfreshFeatures(fc_parameters="efficient")
    train_matrix = features.fit_transform(raw, y)
    assert features.n_features_extracted_ > len(features.selected_features_) > 0
    assert list(train_matrix.columns) == features.selected_features_
    assert list(train_matrix.index) == list(y.index)

    # The same series through the cheap path give the same numbers as at training.
    again = features.transform(raw).loc[train_matrix.index]
    assert list(again.columns) == features.selected_features_
    np.testing.assert_allclose(again.to_numpy(), train_matrix.to_numpy(), rtol=1e-9)


def test_imputation_uses_values_learned_from_the_training_series(gunpoint):
    raw, y = gunpoint
    features = TsfreshFeatures(fc_parameters={"autocorrelation": None}, select=False).fit(raw, y)
    # One constant series: its autocorrelations are NaN (zero variance) and must be filled with
    # the training median, whatever else is in the batch.
    flat = pd.DataFrame({"example_id": 1, "measurement": [2.0] * 150})
    alone = features.transform(flat)
    with_others = features.transform(pd.concat([flat, raw[raw["example_id"] == 1000]]))
    assert np.isfinite(alone.to_numpy()).all()
    pd.testing.assert_series_equal(alone.loc["1"], with_others.loc["1"])
    assert alone.loc["1"].to_numpy() == pytest.approx(
        features.fill_nan_[alone.columns].to_numpy())


def test_labels_unrelated_to_the_series_fall_back_to_every_informative_feature(gunpoint):
    raw, y = gunpoint
    shuffled = pd.Series(np.tile([0, 1], len(y) // 2), index=y.index)  # unrelated to the shapes
    features = TsfreshFeatures(fc_parameters="minimal")
    matrix = features.fit_transform(raw, shuffled)
    assert features.selection_fallback_ is True
    assert matrix.shape[1] > 0 and matrix.nunique().gt(1).all()


def test_named_channels_and_explicit_calculators():
    rng = np.random.default_rng(0)
    raw = pd.DataFrame([(sid, kind, t, rng.normal())
                        for sid in range(6) for kind in ("x", "y") for t in range(20)],
                       columns=["id", "kind", "time", "value"]).sample(frac=1, random_state=0)
    y = pd.Series([0, 1] * 3, index=[str(i) for i in range(6)])
    features = TsfreshFeatures(column_id="id", column_value="value", column_sort="time",
                               column_kind="kind", fc_parameters={"mean": None, "maximum": None}, select=False)
    matrix = features.fit_transform(raw, y)
    assert sorted(matrix.columns) == ["x__maximum", "x__mean", "y__maximum", "y__mean"]
    expected = raw[raw["kind"] == "x"].groupby("id")["value"].mean()
    assert matrix["x__mean"].to_numpy() == pytest.approx(expected.to_numpy())


def test_a_bare_calculator_name_gets_tsfreshs_usual_parameters():
    resolved = resolve_fc_parameters({"autocorrelation": None, "mean": None})
    assert resolved["mean"] is None
    assert len(resolved["autocorrelation"]) > 1
    assert "mean" in resolve_fc_parameters("minimal")
