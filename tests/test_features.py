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


# ---------------------------------------------------------------------------------------------
# Speed: the "fast" settings, the faster calculators, worker processes


def test_fast_settings_are_efficient_minus_the_costly_calculators():
    from automl.features import FAST_DROPPED, SETTINGS

    assert "fast" in SETTINGS
    efficient, fast = resolve_fc_parameters("efficient"), resolve_fc_parameters("fast")
    assert set(FAST_DROPPED) <= set(efficient)
    assert set(fast) == set(efficient) - set(FAST_DROPPED)
    assert all(fast[name] == efficient[name] for name in fast)
    # What the parameter file's "fast" resolves to.
    from automl.params import parse_training_params

    params = parse_training_params(b"extract_features: {default_fc_parameters: fast}")
    assert resolve_fc_parameters(params.features.default_fc_parameters) == fast


ODD_SERIES = {
    "one point": [1.5], "two points": [1.0, 2.0], "constant": [3.0] * 12,
    "ties": [1, 1, 1, 2, 2, 3, 3, 3, 3, 0], "two values": [0, 1] * 9 + [1],
    "integers": list(np.random.default_rng(1).integers(0, 4, 40)),
    "rounded": list(np.round(np.random.default_rng(2).normal(size=60), 1)),
    "normal": list(np.random.default_rng(3).normal(size=150)),
    "with NaN": [np.nan, 1.0, 5.0, 2.0, np.nan, 4.0, 3.0],
    "negative zero": [-0.0, 0.0, 1e-300, -1e-300, 7.0],
}


# Parameters beyond tsfresh's comprehensive settings, for our combiners' edge cases.
EXTRA_PARAMS = {
    "change_quantiles": [
        {"ql": 0.6, "qh": 0.2, "isabs": True, "f_agg": "mean"},   # empty corridor
        {"ql": 0.1, "qh": 0.9, "isabs": False, "f_agg": "median"},
        {"ql": 0.0, "qh": 0.5, "isabs": True, "f_agg": "std"}],
    "cwt_coefficients": [
        {"widths": (3, 7), "coeff": 2, "w": 7}, {"widths": (1,), "coeff": 0, "w": 1}],
    "agg_linear_trend": [
        {"attr": "pvalue", "chunk_len": 1, "f_agg": "mean"},   # a fit per point
        {"attr": "intercept_stderr", "chunk_len": 3, "f_agg": "var"},
        {"attr": "stderr", "chunk_len": 2, "f_agg": "std"}],
}
# agg_linear_trend fits by linregress's formulas, not by its code: equal to rounding only.
TOLERANCE = {"agg_linear_trend": {"rtol": 1e-9, "atol": 1e-12}}


@pytest.mark.parametrize("calculator", list(EXTRA_PARAMS))
@pytest.mark.parametrize("name", list(ODD_SERIES))
def test_our_combiners_give_tsfreshs_names_and_values(calculator, name):
    from tsfresh.feature_extraction import feature_calculators
    from tsfresh.feature_extraction.settings import ComprehensiveFCParameters
    from tsfresh.utilities.string_manipulation import convert_to_output_format

    from automl import tsfresh_calculators

    x = np.asarray(ODD_SERIES[name], dtype=np.float64)
    params = ComprehensiveFCParameters()[calculator] + EXTRA_PARAMS[calculator]
    theirs = getattr(feature_calculators, calculator)
    if getattr(theirs, "fctype", None) == "combiner":
        expected = list(theirs(x, params))
    else:  # as tsfresh's extraction calls a simple calculator: once per parameter
        expected = [(convert_to_output_format(p), theirs(x, **p)) for p in params]
    got = getattr(tsfresh_calculators, calculator)(x, params)
    assert [k for k, _ in got] == [k for k, _ in expected]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in expected],
                               **TOLERANCE.get(calculator, {"rtol": 0, "atol": 0}))


@pytest.mark.parametrize("name", list(ODD_SERIES))
def test_lempel_ziv_complexity_gives_tsfreshs_values(name):
    from tsfresh.feature_extraction import feature_calculators

    from automl.tsfresh_calculators import lempel_ziv_complexity

    x = np.asarray(ODD_SERIES[name], dtype=np.float64)
    for bins in (2, 3, 5, 10, 100, 1000):
        np.testing.assert_array_equal(lempel_ziv_complexity(x, bins),
                                      feature_calculators.lempel_ziv_complexity(x, bins))


def _channels_frame(n_series=8, length=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(sid, kind, t, float(np.round(rng.normal(), 2)))
            for sid in range(n_series) for kind in ("x", "y") for t in range(length + sid % 3)]
    raw = pd.DataFrame(rows, columns=["id", "kind", "time", "value"]).sample(frac=1, random_state=0)
    y = pd.Series([0, 1] * (n_series // 2), index=[str(i) for i in range(n_series)])
    return raw, y


def test_extraction_gives_tsfreshs_values_in_process_and_with_processes():
    from tsfresh import extract_features

    raw, y = _channels_frame()
    # Our calculators (change_quantiles, cwt_coefficients, lempel_ziv_complexity,
    # agg_linear_trend) and tsfresh's, on rows in no order: the engine sorts them by time once,
    # tsfresh series by series.
    settings = {"change_quantiles": None, "agg_linear_trend": None, "mean": None,
                "fft_coefficient": None, "quantile": None, "cwt_coefficients": None,
                "lempel_ziv_complexity": None}
    made = {n_jobs: TsfreshFeatures(column_id="id", column_value="value", column_sort="time",
                                    column_kind="kind", fc_parameters=settings, select=False,
                                    n_jobs=n_jobs).fit_transform(raw, y)
            for n_jobs in (0, 3)}
    pd.testing.assert_frame_equal(made[0], made[3], check_exact=True)

    plain = extract_features(raw, column_id="id", column_kind="kind", column_value="value",
                             column_sort="time", default_fc_parameters=resolve_fc_parameters(
                                 settings), n_jobs=0, disable_progressbar=True)
    plain.index = plain.index.astype(str)
    plain = plain.loc[made[0].index, made[0].columns]
    # tsfresh's own numbers (NaN where tsfresh gives NaN, before imputation).
    informative = made[0].columns[plain.notna().all().to_numpy()]
    rounded = informative[informative.str.contains("agg_linear_trend")]
    exact = informative.difference(rounded)
    assert len(rounded) and len(exact)
    pd.testing.assert_frame_equal(made[0][exact], plain[exact], check_exact=True,
                                  check_dtype=False)
    pd.testing.assert_frame_equal(made[0][rounded], plain[rounded], check_exact=False,
                                  rtol=1e-9, atol=1e-12)


def test_prediction_with_change_quantiles_selected_matches_training():
    raw, y = _channels_frame()
    features = TsfreshFeatures(column_id="id", column_value="value", column_sort="time",
                               column_kind="kind", fc_parameters={"change_quantiles": None},
                               select=False, n_jobs=2)
    matrix = features.fit_transform(raw, y)
    narrowed = features.restricted(list(matrix.columns[::7]))
    assert narrowed.kind_to_fc_parameters_["x"]["change_quantiles"]
    again = narrowed.transform(raw).loc[matrix.index]
    pd.testing.assert_frame_equal(again, matrix[narrowed.selected_features_], check_exact=True)


def test_worker_processes(monkeypatch):
    import multiprocessing

    from automl import features as module

    monkeypatch.setattr(module, "available_cpus", lambda: 4)
    assert module.worker_processes(0, 10_000) == 0
    assert module.worker_processes(3, 10_000) == 3
    assert module.worker_processes(3, 2) == 2          # no more processes than series
    assert module.worker_processes(1, 10_000) == 0     # one worker: do it here instead
    # Automatic: one process per second of estimated work, at most one per CPU.
    assert module.worker_processes(-1, 10_000, seconds=1.5) == 0
    assert module.worker_processes(-1, 10_000, seconds=3.2) == 3
    assert module.worker_processes(-1, 10_000, seconds=60.0) == 4

    class Daemonic:
        daemon = True

    monkeypatch.setattr(multiprocessing, "current_process", lambda: Daemonic())
    assert module.worker_processes(3, 10_000) == 0     # daemons cannot have children


def test_automatic_n_jobs_extracts_small_inputs_here_and_large_ones_in_processes(monkeypatch):
    from automl import features as module

    raw, y = _channels_frame(n_series=12)
    options = dict(column_id="id", column_value="value", column_sort="time", column_kind="kind",
                   fc_parameters={"mean": None, "change_quantiles": None}, select=False)
    reference = TsfreshFeatures(**options, n_jobs=0).fit_transform(raw, y)
    pools = []
    real = module._extract_in_processes
    monkeypatch.setattr(module, "_extract_in_processes",
                        lambda X, *args: pools.append(args[1]) or real(X, *args))
    small = TsfreshFeatures(**options, n_jobs=-1).fit_transform(raw, y)
    assert pools == []                                 # a few ms of work: no pool
    monkeypatch.setattr(module, "MIN_SECONDS_PER_PROCESS", 1e-9)
    monkeypatch.setattr(module, "available_cpus", lambda: 2)
    large = TsfreshFeatures(**options, n_jobs=-1).fit_transform(raw, y)
    assert pools == [2]                                # the 4 series after the sample
    pd.testing.assert_frame_equal(small, reference, check_exact=True)
    pd.testing.assert_frame_equal(large, reference, check_exact=True)


def test_series_are_split_whole_and_balanced():
    from automl.features import _split_by_series

    raw, _ = _channels_frame(n_series=10)
    parts = _split_by_series(raw, "id", 4)
    assert 1 < len(parts) <= 4
    assert sum(len(p) for p in parts) == len(raw)
    owners = [set(p["id"]) for p in parts]
    assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1:])
    assert len(_split_by_series(raw, "id", 100)) == 10  # never more parts than series


@pytest.mark.parametrize("channels", [True, False], ids=["channels", "one channel"])
def test_extraction_here_is_tsfreshs_extract_features_frame_for_frame(channels):
    from tsfresh import extract_features

    from automl.features import _extract_here

    raw, _ = _channels_frame(n_series=6)
    raw = raw.sort_values("time", kind="stable").drop(columns="time")
    raw["id"] = raw["id"].astype(str)
    if not channels:
        raw = raw[raw["kind"] == "x"].drop(columns="kind")
    options = dict(column_id="id", column_sort=None, column_kind="kind" if channels else None,
                   column_value="value", disable_progressbar=True)
    efficient = resolve_fc_parameters("efficient")
    kinds = ["x", "y"] if channels else ["value"]
    for settings in ({"default_fc_parameters": efficient},  # training: every calculator
                     {"kind_to_fc_parameters": {k: {"mean": None, "quantile": [{"q": 0.2}]}
                                                for k in kinds}}):  # a prediction's selection
        pd.testing.assert_frame_equal(_extract_here(raw, options, settings),
                                      extract_features(raw, n_jobs=0, **options, **settings),
                                      check_exact=True)
