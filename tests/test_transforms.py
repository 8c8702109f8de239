"""Hydra and QUANT without torch (automl/hydra.py, automl/quant.py): shapes, determinism,
multivariate series, chunking, short series, small loop-by-loop references of the papers'
definitions, and one accuracy check each against tsml-eval's published figure."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from automl.hydra import HydraTransformer, SparseScaler, dilations_for, hydra_classifier
from automl.quant import QuantTransformer, dyadic_intervals, quant_classifier

RNG = np.random.default_rng(0)
UNIVARIATE = RNG.normal(size=(7, 1, 60)).cumsum(axis=2)
MULTIVARIATE = RNG.normal(size=(5, 4, 40))
TRANSFORMERS = {"hydra": lambda **kw: HydraTransformer(random_state=0, **kw),
                "quant": lambda **kw: QuantTransformer(**kw)}


@pytest.mark.parametrize("kind", TRANSFORMERS)
@pytest.mark.parametrize("X", [UNIVARIATE, MULTIVARIATE, UNIVARIATE[..., :10]],
                         ids=["univariate", "multivariate", "length-10"])
def test_float32_features_without_nan_and_chunks_change_nothing(kind, X):
    transformer = TRANSFORMERS[kind]().fit(X)
    features = transformer.transform(X)
    assert features.dtype == np.float32
    assert features.shape == (len(X), transformer.n_features_out_)
    assert np.isfinite(features).all()
    assert features.std(axis=0).max() > 0
    chunked = TRANSFORMERS[kind](batch_size=2).fit(X).transform(X)
    np.testing.assert_array_equal(chunked, features)
    np.testing.assert_array_equal(transformer.transform(X[3:4]), features[3:4])


def test_hydra_shapes_follow_aeon():
    # aeon: dilations 2**0..2**int(log2((L - 1) / 8)); 2 counts x n_groups x n_kernels each
    assert list(dilations_for(150)) == [1, 2, 4, 8, 16]
    assert list(dilations_for(24)) == [1, 2]
    assert list(dilations_for(10)) == [1]
    assert HydraTransformer().fit(np.zeros((2, 1, 150))).transform(
        np.zeros((2, 1, 150))).shape == (2, 5 * 2 * 64 * 8)
    assert HydraTransformer(n_kernels=4, n_groups=6).fit(UNIVARIATE).n_features_out_ == (
        len(dilations_for(60)) * 2 * 6 * 4)


def test_hydra_is_deterministic_under_random_state():
    first = HydraTransformer(random_state=3).fit(MULTIVARIATE).transform(MULTIVARIATE)
    again = HydraTransformer(random_state=3).fit(MULTIVARIATE).transform(MULTIVARIATE)
    other = HydraTransformer(random_state=4).fit(MULTIVARIATE).transform(MULTIVARIATE)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    params = HydraTransformer(n_groups=16, random_state=3).get_params()
    assert params["n_groups"] == 16 and params["random_state"] == 3


def test_hydra_multivariate_groups_sum_random_channel_subsets():
    transformer = HydraTransformer(n_groups=8, max_num_channels=3, random_state=0).fit(
        MULTIVARIATE)
    indices = transformer.channel_indices_
    # clip(4 // 2, 2, 3) = 2 channels per group, per dilation and representation
    assert indices.shape == (len(transformer.dilations_), 2, 4, 2)
    assert indices.min() >= 0 and indices.max() < 4
    np.testing.assert_allclose(transformer.transform(MULTIVARIATE),
                               _hydra_reference(MULTIVARIATE, transformer), rtol=1e-4,
                               atol=1e-4)
    with pytest.raises(ValueError):
        transformer.transform(UNIVARIATE)


def test_hydra_matches_a_loop_by_loop_reference():
    transformer = HydraTransformer(n_kernels=4, n_groups=6, random_state=1).fit(UNIVARIATE)
    np.testing.assert_allclose(transformer.transform(UNIVARIATE),
                               _hydra_reference(UNIVARIATE, transformer), rtol=1e-4, atol=1e-4)


def test_hydra_threads_give_the_serial_result():
    serial = HydraTransformer(n_groups=8, random_state=0).fit(UNIVARIATE)
    parallel = HydraTransformer(n_groups=8, random_state=0, n_jobs=2).fit(UNIVARIATE)
    np.testing.assert_array_equal(parallel.transform(UNIVARIATE), serial.transform(UNIVARIATE))


def test_sparse_scaler_keeps_zeros_and_standardises_square_roots():
    counts = np.array([[0.0, 4.0], [1.0, 9.0], [4.0, 0.0], [9.0, 16.0]])
    scaled = SparseScaler().fit(counts).transform(counts)
    assert (scaled[counts == 0] == 0).all()
    roots = np.sqrt(counts[:, 0])
    expected = (roots - roots.mean()) / (roots.std(ddof=1) + 0.25 ** 4 + 1e-8)
    np.testing.assert_allclose(scaled[1:, 0], expected[1:], rtol=1e-6)


def test_quant_intervals_and_features_follow_aeon():
    intervals = dyadic_intervals(10, depth=6)
    # depth 0..3 (int(log2(10)) + 1 = 4): 1 + 2 + 4 + 8 intervals, shifted ones where the
    # median interval is longer than 1 value: after depth 1 (by 3) and depth 2 (by 2)
    assert intervals[:3].tolist() == [[0, 10], [0, 5], [5, 10]]
    assert intervals[3].tolist() == [3, 8]
    assert len(intervals) == 1 + 2 + 1 + 4 + 3 + 8
    transformer = QuantTransformer().fit(np.zeros((1, 1, 150)))
    assert transformer.n_features_out_ == 1556  # aeon's QUANTTransformer on 150 points
    X = UNIVARIATE[:3, :, :16]
    np.testing.assert_allclose(QuantTransformer(interval_depth=3).fit(X).transform(X),
                               _quant_reference(X, depth=3, divisor=4), rtol=1e-5, atol=1e-5)
    multi = QuantTransformer().fit(MULTIVARIATE).transform(MULTIVARIATE)
    per_channel = QuantTransformer().fit(MULTIVARIATE[:, 2:3]).transform(MULTIVARIATE[:, 2:3])
    width = per_channel.shape[1]
    assert multi.shape[1] == 4 * width
    np.testing.assert_array_equal(multi[:, 2 * width:3 * width], per_channel)


def test_no_torch():
    HydraTransformer(random_state=0).fit(UNIVARIATE).transform(UNIVARIATE)
    QuantTransformer().fit(UNIVARIATE).transform(UNIVARIATE)
    assert "torch" not in sys.modules


# Published accuracy on GunPoint's standard split (resample 0), tsml-eval
# results/classification/Univariate/{Hydra,QUANT}_accuracy.csv @ 6270c37e: Hydra 1.000, QUANT
# 0.987 (148 of 150).
@pytest.mark.parametrize("build, published", [(hydra_classifier, 1.0),
                                              (quant_classifier, 148 / 150)],
                         ids=["hydra", "quant"])
def test_accuracy_near_the_published_figure(build, published):
    from aeon.datasets import load_classification

    X_train, y_train = load_classification("GunPoint", split="train")
    X_test, y_test = load_classification("GunPoint", split="test")
    accuracy = np.mean(build(random_state=0).fit(X_train, y_train).predict(X_test) == y_test)
    assert abs(accuracy - published) <= 0.02


# ---------------------------------------------------------------------------------------------
# References written from the papers' definitions, one loop per step (slow, tiny inputs only)


def _hydra_reference(X, transformer):
    W, indices, dilations = transformer.weights_, transformer.channel_indices_, transformer.dilations_
    n_dil, divisor, h, k, width = W.shape
    rows = []
    for series in X.astype(np.float32).astype(np.float64):
        features = []
        for di, d in enumerate(dilations):
            for rep in range(divisor):
                values = series if rep == 0 else np.diff(series, axis=1)
                n = values.shape[1]
                maxima, minima = np.zeros((h, k)), np.zeros((h, k))
                for g in range(h):
                    source = (values[indices[di, rep, g]].sum(axis=0) if X.shape[1] > 1
                              else values[0])
                    response = np.zeros((k, n))
                    for kk in range(k):
                        for t in range(n):
                            for j in range(width):
                                s = t + (j - width // 2) * d
                                if 0 <= s < n:
                                    response[kk, t] += W[di, rep, g, kk, j] * source[s]
                    for t in range(n):
                        maxima[g, np.argmax(response[:, t])] += response[:, t].max()
                        minima[g, np.argmin(response[:, t])] += 1
                features += [maxima.ravel(), minima.ravel()]
        rows.append(np.concatenate(features))
    return np.array(rows)


def _quant_reference(X, depth, divisor):
    rows = []
    for series in X[:, 0]:
        first = np.diff(series)
        padded = np.r_[first[0], first[0], first, first[-1], first[-1]]
        smoothed = np.array([padded[t:t + 5].mean() for t in range(len(first))])
        features = []
        for z in (series, smoothed, np.diff(series, n=2), np.abs(np.fft.rfft(series))):
            for a, b in dyadic_intervals(len(z), depth):
                part = z[a:b]
                if len(part) == 1:
                    features.append(part)
                    continue
                q = 1 + (len(part) - 1) // divisor
                values = np.quantile(part, np.linspace(0, 1, q) if q > 1 else [0.5])
                if q > 1:
                    values[1::2] -= part.mean()
                features.append(values)
        rows.append(np.concatenate(features))
    return np.array(rows)


@pytest.mark.parametrize("length", [3, 16, 150, 301])
def test_quant_gives_the_per_interval_values_exactly(length):
    # Intervals of one length are computed together; each interval on its own is the definition.
    from automl.quant import _n_quantiles, _quantiles, representations

    X = np.random.default_rng(length).normal(size=(5, 2, length))
    transformer = QuantTransformer().fit(X)
    one_by_one = []
    for Z, intervals in zip(representations(X), transformer.intervals_):
        for a, b in intervals:
            one_by_one.append(_quantiles(Z[..., a:b], _n_quantiles(b - a, 4)))
    expected = np.concatenate(one_by_one, axis=-1).astype(np.float32).reshape(len(X), -1)
    np.testing.assert_array_equal(transformer.transform(X), expected)
