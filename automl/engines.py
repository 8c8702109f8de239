"""Every feature engine the service knows, in one registry: adding an engine is one entry here
(and, for a new kind of array transform, its transformer).

An entry says how to build the engine, which default model and TPOT search space suit its
features, how it ranks in published comparisons (which breaks ties between engines that
cross-validation cannot tell apart), whether ``engine: auto`` tries it and in which order, how
many features it makes per series (memory), and how it takes unequal lengths and channels.

Published standing (Middlehurst, Schäfer and Bagnall, "Bake off redux", 2024, 112 UCR sets):
MultiRocket-Hydra ranks first after HIVE-COTE 2; then RDST and MultiRocket; then QUANT,
Hydra and MiniRocket; the tsfresh-based FreshPRINCE below them. The joins are compared there
only as MultiRocket-Hydra.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pandas as pd
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from .feature_engine import FeatureEngine

TSFRESH = "tsfresh"  # the names a parameter file may use are REGISTRY's and JOINS'


@dataclass(frozen=True)
class Engine:
    name: str
    kind: str                 # "kernel": features for a scaled linear model; "tabular": for trees
    prior_rank: int           # higher: more accurate on average in published comparisons
    auto_order: int | None    # engine: auto tries it in this order (cheapest first); None: not
    features: Callable[[int, int], int]  # (channels, length) -> features per series
    default_model: Callable[[int, int], object]  # (series, random_state) -> estimator
    panel: Callable | None = None  # (random_state, size) -> transformer of (n, c, l) arrays
    full_size: int | None = None   # the panel's size at full width (kernels, groups,
                                   # shapelets); None: its width is fixed
    min_length: int = 10      # shorter series are stretched to this
    unequal: str = "resampled"
    channels: str = "native"
    summary: str = ""


def _linear(n_series: int, random_state: int):
    from .models import baseline

    return baseline("kernel", n_series, random_state)


def _extra_trees(n_series: int, random_state: int):
    from .models import baseline

    return baseline("tabular", n_series, random_state)


def _quant_trees(n_series: int, random_state: int):
    # QUANT's own classifier (Dempster et al., 2024): ExtraTrees, 200 trees, a tenth of the
    # features per split, entropy.
    from sklearn.ensemble import ExtraTreesClassifier

    from .compute import available_cpus

    return ExtraTreesClassifier(n_estimators=200, max_features=0.1, criterion="entropy",
                                random_state=random_state, n_jobs=available_cpus())


def _sized(size: int | None, key: str = "n_kernels") -> dict:
    return {key: size} if size else {}


# One thread each: predictions run in the web server's threads, where numba's parallel layer
# is not safe to enter concurrently; the transforms are fast enough without it.
def _minirocket(random_state: int, size: int | None):
    from aeon.transformations.collection.convolution_based import MiniRocket

    return MiniRocket(random_state=random_state, n_jobs=1, **_sized(size))


def _multirocket(random_state: int, size: int | None):
    from aeon.transformations.collection.convolution_based import MultiRocket

    return MultiRocket(random_state=random_state, n_jobs=1, **_sized(size))


def _hydra(random_state: int, size: int | None):
    # Hydra's counts are served scaled as its classifier reads them (square root, standardised,
    # zeros kept): a later StandardScaler changed no prediction on the development sets.
    from sklearn.pipeline import make_pipeline

    from .hydra import HydraTransformer, SparseScaler

    return make_pipeline(HydraTransformer(random_state=random_state, **_sized(size, "n_groups")),
                         SparseScaler())


def _quant(random_state: int, size: int | None):
    from .quant import QuantTransformer

    return QuantTransformer()


def _rdst(random_state: int, size: int | None):
    # Fitted without labels (so once for all series, as every engine): aeon's RDST draws a
    # shapelet's distance threshold from a series of the same class; without labels, of any
    # class. Test accuracy over resamples 0-2 was the same on GunPoint, ItalyPowerDemand,
    # Coffee and Trace, and 0.886 against 0.901 on PigCVP.
    from aeon.transformations.collection.shapelet_based import RandomDilatedShapeletTransform

    return RandomDilatedShapeletTransform(random_state=random_state, n_jobs=1,
                                          **_sized(size, "max_shapelets"))


def _hydra_features(channels: int, length: int) -> int:
    dilations = int(math.log2(max(length - 1, 1) / 8)) + 1 if length > 9 else 1
    return 1_024 * max(1, dilations)


REGISTRY: dict[str, Engine] = {e.name: e for e in (
    Engine(TSFRESH, "tabular", prior_rank=0, auto_order=6, features=lambda c, n: 780 * c,
           default_model=_extra_trees, unequal="native", channels="stacked",
           summary="tsfresh's statistics per channel, relevance-tested"),
    Engine("minirocket", "kernel", prior_rank=3, auto_order=0, features=lambda c, n: 9_996,
           default_model=_linear, panel=_minirocket, full_size=10_000,
           summary="~10,000 random convolution kernels (aeon's MiniRocket)"),
    Engine("hydra", "kernel", prior_rank=4, auto_order=1, features=_hydra_features,
           default_model=_linear, panel=_hydra, min_length=2, full_size=64,
           summary="competing convolution kernels, counted (Hydra)"),
    Engine("quant", "tabular", prior_rank=5, auto_order=2,
           features=lambda c, n: c * max(10 * n, 40), default_model=_quant_trees,
           panel=_quant, min_length=3, summary="quantiles over dyadic intervals (QUANT)"),
    Engine("multirocket", "kernel", prior_rank=6, auto_order=3, features=lambda c, n: 49_728,
           default_model=_linear, panel=_multirocket, full_size=6_250,
           summary="~50,000 features: MultiRocket's kernels and four pooling operators"),
    Engine("rdst", "kernel", prior_rank=7, auto_order=5, features=lambda c, n: 30_000,
           default_model=_linear, panel=_rdst, min_length=11, full_size=10_000,
           summary="random dilated shapelets (RDST)"),
)}
# Engines joined column-wise (each part extracted once) that auto tries, with their standing.
JOINS: dict[tuple[str, ...], int] = {("multirocket", "hydra"): 8, ("minirocket", TSFRESH): 1}
AUTO_JOIN_ORDER = {("multirocket", "hydra"): 4, ("minirocket", TSFRESH): 7}
# The order a join's names are written in, however a parameter file lists them.
JOIN_ORDER = ("minirocket", "multirocket", "hydra", "quant", "rdst", TSFRESH)


def build(name: str, params, width: float = 1.0) -> FeatureEngine:
    """An unfitted engine reading the parameter file's columns, at ``width`` of its full size.

    tsfresh is built without its own selection: training selects relevant features inside
    each cross-validation fold (``selection.RelevanceSelector``), then narrows the fitted
    engine to what the final model uses (``FeatureEngine.narrowed``).
    """
    columns = params.features.columns
    where = {"column_id": columns.id, "column_value": columns.value,
             "column_sort": columns.sort, "column_kind": columns.kind}
    if name == TSFRESH:
        from .features import TsfreshFeatures

        return TsfreshFeatures(**where, fc_parameters=params.features.default_fc_parameters,
                               impute=params.features.impute_function, select=False,
                               n_jobs=params.features.n_jobs)
    from .kernels import KernelFeatures

    return KernelFeatures(kind=name, **where, n_kernels=size_at(name, width),
                          random_state=params.model.search.random_state or 0)


def name_of(names) -> str:
    return "+".join(names)


def feature_kind(names) -> str:
    """``kernel`` when any part is for a linear model (a join is fitted as one), else
    ``tabular``."""
    return "kernel" if any(REGISTRY[n].kind == "kernel" for n in names) else "tabular"


def prior_rank(names) -> int:
    names = tuple(names)
    return REGISTRY[names[0]].prior_rank if len(names) == 1 else JOINS.get(
        names, max(REGISTRY[n].prior_rank for n in names) - 1)


def default_model(names, n_series: int, random_state: int):
    """The strong default for an engine's features; a join's is the linear one if any part is
    for a linear model."""
    names = tuple(names)
    if len(names) == 1:
        return REGISTRY[names[0]].default_model(n_series, random_state)
    return (_linear if feature_kind(names) == "kernel" else _extra_trees)(n_series, random_state)


def auto_candidates() -> list[tuple[str, ...]]:
    """The engine sets ``engine: auto`` tries, cheapest first."""
    single = [((e.name,), e.auto_order) for e in REGISTRY.values() if e.auto_order is not None]
    joined = list(AUTO_JOIN_ORDER.items())
    return [names for names, _ in sorted(single + joined, key=lambda item: item[1])]


def feature_bytes(names, n_series: int, n_channels: int, length: int, width: float = 1.0) -> int:
    """float32 bytes of an engine set's features for ``n_series`` series, at ``width`` of the
    full size where the engine can be narrowed."""
    return 4 * n_series * sum(
        REGISTRY[n].features(n_channels, length) * (width if REGISTRY[n].full_size else 1.0)
        for n in names)


def narrowable(names) -> bool:
    """Whether an engine (set) can be given fewer kernels to fit in memory: a single engine
    that has a size."""
    return len(tuple(names)) == 1 and REGISTRY[tuple(names)[0]].full_size is not None


def size_at(name: str, width: float) -> int | None:
    """The panel size of ``name`` at ``width`` of its full size; None: its default."""
    full = REGISTRY[name].full_size
    return None if full is None or width >= 1.0 else max(1, int(full * width))


class CombinedFeatures(FeatureEngine):
    """Several engines side by side: their feature tables joined column-wise."""

    def __init__(self, parts=()):
        self.parts = parts

    @property
    def engine_tags(self):
        return {"model": "linear" if any(p.tag("model") == "linear" for p in self.parts)
                else "trees", "selects": any(p.tag("selects") for p in self.parts),
                "unequal": "resampled", "channels": "native"}

    @classmethod
    def from_fitted(cls, fitted) -> CombinedFeatures:
        """Join engines fitted already (each extracted once), without refitting them."""
        combined = cls(parts=tuple(fitted))
        combined.parts_ = list(fitted)
        return combined

    def input_columns(self):
        return self.parts[0].input_columns()

    def fit_transform(self, X, y=None, dask_address=None, **_) -> pd.DataFrame:
        self.parts_ = [clone(p) for p in self.parts]
        return pd.concat([p.fit_transform(X, y, dask_address=dask_address) for p in self.parts_],
                         axis=1)

    def transform(self, X) -> pd.DataFrame:
        check_is_fitted(self, "parts_")
        return pd.concat([p.transform(X) for p in self.parts_], axis=1)

    def output_columns(self) -> list[str]:
        check_is_fitted(self, "parts_")
        return [c for p in self.parts_ for c in p.output_columns()]

    def narrowed(self, columns: list[str]) -> CombinedFeatures:
        return CombinedFeatures.from_fitted([p.narrowed(columns) for p in self.parts_])

    def describe(self) -> dict:
        check_is_fitted(self, "parts_")
        described = [p.describe() for p in self.parts_]
        return {"engine": name_of(d["engine"] for d in described),
                "featuresExtracted": sum(d["featuresExtracted"] for d in described),
                "parts": described}
