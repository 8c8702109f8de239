"""tsfresh calculators rewritten for speed: the same names, parameters and values as tsfresh's.

tsfresh calls these instead of its own calculators of the same name when the service extracts
on this machine (``with_fast_calculators``); Dask workers get tsfresh's own names, since they
may not have this package. ``tests/test_features.py`` checks equality with tsfresh's functions
on odd inputs and through whole extractions.

* ``change_quantiles`` alone was ~45 % of ``efficient`` (60 ``pd.qcut`` calls per series):
  :func:`change_quantiles` computes the same values some 30x faster, in every settings set;
* :func:`cwt_coefficients` (6x) and :func:`lempel_ziv_complexity` (3x) dominated the compact
  sets that predictions compute (:mod:`automl.feature_cost`);
* :func:`agg_linear_trend` (10x) was then a third of the calculators' time in ``fast``.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pywt
from scipy import special
from tsfresh.utilities.string_manipulation import convert_to_output_format


def change_quantiles(x, param):
    """tsfresh's ``change_quantiles`` for a whole parameter list at once, same values.

    tsfresh computes each of the 60 (ql, qh, isabs, f_agg) combinations with its own
    ``pd.qcut`` (~0.4 ms each). ``pd.qcut(x, [ql, qh], labels=False) == 0`` is
    ``quantile(x, ql) <= x <= quantile(x, qh)`` (qcut includes the lowest edge), with the
    quantiles computed as pandas does (``np.quantile``, linear, NaN left out). A change
    counts when it starts and ends inside that corridor; no such change gives 0.
    ``tests/test_features.py`` checks equality with tsfresh's function on odd inputs.
    """
    x = np.asarray(x, dtype=np.float64)
    div = np.diff(x)
    changes = {False: div, True: np.abs(div)}
    finite = x[~np.isnan(x)]
    levels = sorted({p["ql"] for p in param} | {p["qh"] for p in param})
    quantiles = dict(zip(levels, np.quantile(finite, levels))) if finite.size else {}
    corridors: dict[tuple, np.ndarray] = {}
    result = []
    for p in param:
        ql, qh = p["ql"], p["qh"]
        value = 0.0
        if ql < qh and quantiles:
            if (ql, qh) not in corridors:
                inside = (x >= quantiles[ql]) & (x <= quantiles[qh])
                corridors[ql, qh] = inside[1:] & inside[:-1]
            inside = corridors[ql, qh]
            if inside.any():
                value = getattr(np, p["f_agg"])(changes[bool(p["isabs"])][inside])
        try:
            name = _output_name(tuple(p.items()))
        except TypeError:  # an unhashable parameter value: no cache
            name = convert_to_output_format(p)
        result.append((name, value))
    return result


@functools.lru_cache(maxsize=4096)
def _output_name(items: tuple) -> str:
    """tsfresh's name suffix for one parameter combination (a third of the time, uncached)."""
    return convert_to_output_format(dict(items))


def cwt_coefficients(x, param):
    """tsfresh's ``cwt_coefficients``, same values, without pywt's per-call set-up.

    tsfresh calls ``pywt.cwt(x, widths, "mexh")``, which integrates the wavelet afresh on
    every call and also computes frequencies nobody reads: ~0.5 ms a series, against
    ~0.02 ms for the convolutions themselves. Here the sampled wavelet of each width is
    computed once (:func:`_mexican_hat`), and only the widths asked for are transformed, with
    pywt's own operations ("conv" method), so the values are identical.
    """
    x = np.asarray(x, dtype=np.float64)
    rows: dict[int, np.ndarray] = {}
    result = []
    for p in param:
        widths, w, coeff = tuple(p["widths"]), p["w"], p["coeff"]
        widths.index(w)  # tsfresh's ValueError for a width outside widths
        if x.size <= coeff:
            value = np.nan
        else:
            if w not in rows:
                rows[w] = _cwt_row(x, w)
            value = rows[w][coeff]
        result.append((f"coeff_{coeff}__w_{w}__widths_{widths}", value))
    return result


def _cwt_row(x: np.ndarray, scale) -> np.ndarray:
    """``pywt.cwt(x, [scale], "mexh")[0][0]`` for a 1-D float64 ``x`` (pywt 1.x, "conv")."""
    convolved = np.convolve(x, _mexican_hat(scale))
    coef = -np.sqrt(scale) * np.diff(convolved)
    d = (coef.size - x.size) / 2.0
    if d > 0:
        coef = coef[math.floor(d):-math.ceil(d)]
    elif d < 0:
        raise ValueError(f"Selected scale of {scale} too small.")
    return coef


@functools.lru_cache(maxsize=64)
def _mexican_hat(scale) -> np.ndarray:
    """pywt.cwt's integrated Mexican hat wavelet, sampled for one scale (precision 12)."""
    int_psi, grid = _integrated_mexican_hat()
    step = grid[1] - grid[0]
    j = (np.arange(scale * (grid[-1] - grid[0]) + 1) / (scale * step)).astype(int)
    if j[-1] >= int_psi.size:
        j = np.extract(j < int_psi.size, j)
    return int_psi[j][::-1]


@functools.lru_cache(maxsize=1)
def _integrated_mexican_hat() -> tuple[np.ndarray, np.ndarray]:
    int_psi, grid = pywt.integrate_wavelet(pywt.DiscreteContinuousWavelet("mexh"), precision=12)
    return np.asarray(int_psi, dtype=np.float64), np.asarray(grid, dtype=np.float64)


def lempel_ziv_complexity(x, bins):
    """tsfresh's ``lempel_ziv_complexity``, same values, some 3x faster.

    The same parse of the binned series into new words, but a word is a slice of the bins'
    bytes (4 per point) rather than a tuple built from a numpy slice at every step.
    """
    x = np.asarray(x)
    edges = np.linspace(np.min(x), np.max(x), bins + 1)[1:]
    symbols = np.searchsorted(edges, x, side="left").astype(np.int32).tobytes()
    n, width = len(x), 4
    words = set()
    ind, inc = 0, 1
    while ind + inc <= n:
        word = symbols[ind * width:(ind + inc) * width]
        if word in words:
            inc += 1
        else:
            words.add(word)
            ind += inc
            inc = 1
    return len(words) / n


def agg_linear_trend(x, param):
    """tsfresh's ``agg_linear_trend``, the same values to rounding, without its overheads.

    For each (f_agg, chunk_len) tsfresh aggregates the chunks one numpy call at a time and
    fits them with ``scipy.stats.linregress``, whose checks and result object cost more than
    the arithmetic: ~0.3 ms a pair, 12 pairs a series in ``fast``. Here the full chunks are
    aggregated in one call and the fit is linregress's own formulas (``_linear_fit``).
    """
    x = np.asarray(x, dtype=np.float64)
    fits: dict[tuple, dict] = {}
    result = []
    for p in param:
        f_agg, chunk_len, attr = p["f_agg"], p["chunk_len"], p["attr"]
        value = np.nan
        if chunk_len < len(x):
            if (f_agg, chunk_len) not in fits:
                fits[f_agg, chunk_len] = _linear_fit(_aggregate_on_chunks(x, f_agg, chunk_len))
            value = fits[f_agg, chunk_len][attr]
        result.append((f'attr_"{attr}"__chunk_len_{chunk_len}__f_agg_"{f_agg}"', value))
    return result


def _aggregate_on_chunks(x: np.ndarray, f_agg: str, chunk_len: int) -> np.ndarray:
    """``f_agg`` (a numpy reduction: max, min, mean, median, var, std...) of each chunk of
    ``chunk_len`` points, the last chunk possibly shorter."""
    reduce = getattr(np, f_agg)
    full = len(x) // chunk_len * chunk_len
    chunks = reduce(x[:full].reshape(-1, chunk_len), axis=1)
    if full < len(x):
        chunks = np.append(chunks, reduce(x[full:]))
    return chunks


def _linear_fit(y: np.ndarray) -> dict:
    """``scipy.stats.linregress(range(len(y)), y)``'s attributes, by its formulas (n >= 2)."""
    attrs = ("slope", "intercept", "rvalue", "pvalue", "stderr", "intercept_stderr")
    if np.isnan(y).any():  # linregress's nan_policy="propagate": every attribute NaN
        return dict.fromkeys(attrs, np.nan)
    n = len(y)
    t = np.arange(n, dtype=np.float64)
    t_mean, y_mean = t.mean(), y.mean()
    dt, dy = t - t_mean, y - y_mean
    ss_t, ss_ty, ss_y = dt @ dt / n, dt @ dy / n, dy @ dy / n
    if ss_y == 0.0:
        r = np.nan if ss_ty == 0 else 0.0
    else:  # clipped to [-1, 1] against rounding; NaN (from an infinite y) stays NaN
        r = ss_ty / np.sqrt(ss_t * ss_y)
        r = 1.0 if r > 1.0 else -1.0 if r < -1.0 else r
    slope = ss_ty / ss_t
    if n == 2:
        pvalue = 1.0 if y[0] == y[1] else 0.0
        stderr = intercept_stderr = 0.0
    else:
        df = n - 2
        tiny = 1.0e-20  # linregress's guard against r = +-1
        t_stat = r * np.sqrt(df / ((1.0 - r + tiny) * (1.0 + r + tiny)))
        pvalue = 2.0 * special.stdtr(df, -abs(t_stat))
        stderr = np.sqrt((1 - r ** 2) * ss_y / ss_t / df)
        intercept_stderr = stderr * np.sqrt(ss_t + t_mean ** 2)
    return dict(zip(attrs, (slope, y_mean - slope * t_mean, r, pvalue, stderr,
                            intercept_stderr)))


change_quantiles.fctype = "combiner"  # tsfresh passes the whole parameter list
cwt_coefficients.fctype = "combiner"
agg_linear_trend.fctype = "combiner"
lempel_ziv_complexity.fctype = "simple"
# Drop-in replacements tsfresh calls instead of its own calculator of the same name. Only
# for extraction on this machine: Dask workers get tsfresh's names (they may not have us).
FAST_CALCULATORS = {"change_quantiles": change_quantiles, "cwt_coefficients": cwt_coefficients,
                    "lempel_ziv_complexity": lempel_ziv_complexity,
                    "agg_linear_trend": agg_linear_trend}


def with_fast_calculators(fc_parameters: dict) -> dict:
    """``{name: params}`` with our faster calculators as keys where we have them."""
    return {FAST_CALCULATORS.get(name, name) if isinstance(name, str) else name: params
            for name, params in fc_parameters.items()}


def with_fast_settings(settings: dict) -> dict:
    """extract_features' ``default_fc_parameters`` / ``kind_to_fc_parameters`` likewise."""
    settings = dict(settings)
    if settings.get("default_fc_parameters") is not None:
        settings["default_fc_parameters"] = with_fast_calculators(settings["default_fc_parameters"])
    if settings.get("kind_to_fc_parameters") is not None:
        settings["kind_to_fc_parameters"] = {
            kind: with_fast_calculators(params)
            for kind, params in settings["kind_to_fc_parameters"].items()}
    return settings
