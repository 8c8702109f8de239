"""Array-based engines over long-format series: random convolution kernels (MiniRocket,
MultiRocket, Hydra), quantiles over intervals (QUANT), dilated shapelets (RDST).

Each is a transformer of (series, channels, length) arrays (its factory is in the engine
registry, ``engines``); ``KernelFeatures`` turns long-format rows into such arrays, one row
of features per series id back. The transforms are fitted without labels, so the feature
matrix can be computed once for all series and reused by every cross-validation fold without
leaking labels. Series of another length than the training series' longest are linearly
resampled to it, which also makes unequal lengths work; a transform is applied a chunk of
series at a time, so a large upload costs its features, not a copy of its panel as floats.
Given a Dask scheduler's address, training sends those chunks to the cluster's workers as
tasks (the fitted transform once to each worker, each chunk once) and gathers their features
in order: the same matrix, computed elsewhere.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from .feature_engine import FeatureEngine

# Series transformed at once: bounds the float64 panel a prediction builds.
CHUNK_SERIES = 1_024
# On a cluster, at least this many series per task (smaller ones cost more in transfer and
# scheduling than they save), and at least two tasks per worker so that none waits on another.
MIN_TASK_SERIES, TASKS_PER_WORKER = 64, 2
# Series an engine is fitted on, at most: fitting draws kernels and biases from a few series
# (Hydra's scaler, its statistics from their transform), and on all of a large upload it
# would hold their whole transform in float64.
FIT_SERIES = 4_096


class KernelFeatures(FeatureEngine):
    """Long-format series -> one row of ``kind``'s features per series id (ids as text).

    ``kind`` names an array engine of the registry (``engines.REGISTRY``); ``n_kernels``
    sizes it where the engine has such a parameter.
    """

    engine_tags = {"model": "linear", "selects": False, "unequal": "resampled",
                   "channels": "native"}

    def __init__(self, kind="minirocket", column_id="example_id", column_value="measurement",
                 column_sort=None, column_kind=None, n_kernels=None, random_state=0):
        self.kind = kind
        self.column_id = column_id
        self.column_value = column_value
        self.column_sort = column_sort
        self.column_kind = column_kind
        self.n_kernels = n_kernels
        self.random_state = random_state

    def fit_transform(self, X: pd.DataFrame, y: pd.Series | None = None,
                      dask_address: str | None = None, **_) -> pd.DataFrame:
        """Rows follow ``y``'s index when given (series ids), else the order of first
        appearance. With ``dask_address``, the transform runs on that Dask cluster."""
        from .engines import REGISTRY

        engine = REGISTRY[self.kind]
        self.channels_ = self.learn_channels(X)
        ids, series = self._series(X)
        lengths = [len(s) for s in series]
        self.length_ = max(engine.min_length, max(lengths))
        self.resampled_ = len(set(lengths)) > 1 or lengths[0] < engine.min_length
        self.transformer_ = engine.panel(self.random_state, self.n_kernels)
        self.transformer_.fit(self._panel(self._fit_sample(series)))
        if y is not None and len(y.index) == len(ids) and y.index.isin(ids).all():
            # In the labels' order from the start: reordering the matrix after would copy it.
            ids, series = self._reordered(ids, series, y.index)
        matrix = (self._transformed_on_cluster(series, len(ids), dask_address) if dask_address
                  else self._transformed(series, len(ids)))
        self.feature_names_ = pd.Index([f"{self.kind}_{i}" for i in range(matrix.shape[1])])
        self.n_features_extracted_ = len(self.feature_names_)
        features = self._features(ids, matrix)
        return features.reindex(y.index) if y is not None and not ids.equals(y.index) \
            else features

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "transformer_")
        ids, series = self._series(X)
        return self._features(ids, self._transformed(series, len(ids)))

    def output_columns(self) -> list[str]:
        check_is_fitted(self, "feature_names_")
        return list(self.feature_names_)

    def describe(self) -> dict:
        check_is_fitted(self, "transformer_")
        return {"engine": self.kind, "featuresExtracted": self.n_features_extracted_,
                "channels": list(self.channels_), "seriesLength": self.length_,
                "resampled": self.resampled_}

    def _series(self, X: pd.DataFrame) -> tuple[pd.Index, list[np.ndarray]]:
        """Each series' channels in ``channels_`` order, in the rows' order within a series."""
        id_codes, ids, channel_codes = self.channel_codes(X)
        keys = id_codes * len(self.channels_) + channel_codes
        order = np.argsort(keys, kind="stable")  # stable: keeps each series' time order
        counts = np.bincount(keys, minlength=len(ids) * len(self.channels_))
        values = X[self.column_value].to_numpy(dtype=np.float64)[order]
        return ids, np.split(values, np.cumsum(counts)[:-1])

    def _fit_sample(self, series: list[np.ndarray]) -> list[np.ndarray]:
        """Every series (with its channels), or ``FIT_SERIES`` evenly spaced ones."""
        per_series = len(self.channels_)
        n_ids = len(series) // per_series
        if n_ids <= FIT_SERIES:
            return series
        chosen = np.linspace(0, n_ids - 1, FIT_SERIES).astype(int)
        return [series[i * per_series + c] for i in chosen for c in range(per_series)]

    def _reordered(self, ids: pd.Index, series: list[np.ndarray], order: pd.Index):
        """``ids`` and their channels' ``series`` in the order of ``order`` (the same ids)."""
        per_series = len(self.channels_)
        positions = ids.get_indexer(order)
        return order, [series[p * per_series + c] for p in positions for c in range(per_series)]

    def _transformed(self, series: list[np.ndarray], n_ids: int) -> np.ndarray:
        """The transform of every series, ``CHUNK_SERIES`` series at a time."""
        per_series = len(self.channels_)
        return _assembled(n_ids, ((start, self.transformer_.transform(self._panel(
            series[start * per_series:(start + CHUNK_SERIES) * per_series])))
            for start in range(0, n_ids, CHUNK_SERIES)))

    def _transformed_on_cluster(self, series: list[np.ndarray], n_ids: int,
                                address: str) -> np.ndarray:
        """``_transformed``, each chunk a task on the cluster at ``address``: the fitted
        transform is sent once to every worker, and the chunks go in waves of two per worker
        (spread across them), the next wave sent while the workers compute this one, so only
        two waves' panels are ever held here at once."""
        from dask.distributed import Client

        per_series = len(self.channels_)
        with Client(address, set_as_default=False) as client:
            workers = max(1, len(client.scheduler_info()["workers"]))
            chunk = max(MIN_TASK_SERIES, min(CHUNK_SERIES, -(-n_ids // (TASKS_PER_WORKER
                                                                         * workers))))
            transformer = client.scatter(self.transformer_, broadcast=True)
            starts = list(range(0, n_ids, chunk))
            per_wave = TASKS_PER_WORKER * workers
            waves = [starts[i:i + per_wave] for i in range(0, len(starts), per_wave)]

            def sent(wave):
                panels = client.scatter([self._panel(
                    series[start * per_series:(start + chunk) * per_series]) for start in wave],
                    hash=False)
                return panels, client.map(_transform_panel, [transformer] * len(panels), panels,
                                          pure=False)

            def gathered():
                following = sent(waves[0])
                for number, wave in enumerate(waves):
                    panels, tasks = following
                    if number + 1 < len(waves):
                        following = sent(waves[number + 1])
                    yield from zip(wave, client.gather(tasks))
                    client.cancel(tasks + panels)

            return _assembled(n_ids, gathered())

    def _panel(self, series: list[np.ndarray]) -> np.ndarray:
        """(series, channels, length_) array, resampling any channel of another length."""
        length, n_channels = self.length_, len(self.channels_)
        n_ids = len(series) // n_channels
        if all(len(s) == length for s in series):
            return np.stack(series).reshape(n_ids, n_channels, length)
        target = np.linspace(0.0, 1.0, length)
        resampled = [s if len(s) == length else
                     np.interp(target, np.linspace(0.0, 1.0, len(s)), s) if len(s) > 1 else
                     np.full(length, s[0]) for s in series]
        return np.stack(resampled).reshape(n_ids, n_channels, length)

    def _features(self, ids: pd.Index, matrix: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(np.asarray(matrix, dtype=np.float32), index=ids,
                            columns=self.feature_names_, copy=False)


def _assembled(n_ids: int, parts) -> np.ndarray:
    """One float32 matrix of ``n_ids`` rows from ``(first row, features)`` parts, each
    written in as it comes: the matrix is the only full-size copy there ever is."""
    matrix = None
    for start, part in parts:
        part = np.asarray(part)
        if matrix is None:
            matrix = np.empty((n_ids, part.shape[1]), dtype=np.float32)
        matrix[start:start + len(part)] = part
    return matrix


def _transform_panel(transformer, panel: np.ndarray) -> np.ndarray:
    """One chunk's features, on a cluster's worker (as float32: what is sent back)."""
    return np.asarray(transformer.transform(panel), dtype=np.float32)


def warm_up() -> None:
    """Compile every array engine's numba code into its on-disk cache (``make setup`` runs
    this): a first call in a fresh environment spends 5-30 s compiling per engine; paid once
    at install, it does not delay the first model of the first training job."""
    from .engines import REGISTRY

    rng = np.random.default_rng(0)
    univariate = pd.DataFrame({"example_id": np.repeat(np.arange(4), 24),
                               "measurement": rng.normal(size=96)})
    # aeon compiles other functions for several channels (MultiRocket's alone took 40 s)
    multichannel = pd.DataFrame({"example_id": np.repeat(np.arange(4), 48),
                                 "channel": np.tile(np.repeat(["a", "b"], 24), 4),
                                 "measurement": rng.normal(size=192)})
    for name, engine in REGISTRY.items():
        if engine.panel is not None:
            KernelFeatures(kind=name).fit(univariate).transform(univariate)
            KernelFeatures(kind=name, column_kind="channel").fit(multichannel).transform(
                multichannel)
