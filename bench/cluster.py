"""A training on a Dask cluster of 1 and 2 worker processes against the same training run
locally: wall time, speed-up, and whether the results are identical.

Per size, ``--sizes`` series of ItalyPowerDemand (24 points, repeated with noise past 1,096;
``common.noisy_copies``) go through the service's own parser and ``training.train``, with
``extract_features.engine`` ``--engine``, a search that evaluates nothing (so the run is
the engine's extraction, its default model's cross-validation and fit, which is what goes to
the cluster) and ``AUTOML_JOB_MEMORY_MB`` ``--memory``. Each cluster is a
``distributed.LocalCluster`` of single-threaded worker processes, started for its run, the
training pointed at it as ``DASK_SCHEDULER_ADDRESS`` would point it.

Figures: seconds per run and in its two stages (the features; the CV and the fit on every
series, which stays in the training process), the extraction's speed-up on 2 workers over 1,
and whether each cluster run's CV score and predictions equal the local run's. On a 2-core machine the training process and
the workers share the cores, so 2 workers can at best halve the work that is on the cluster.

    .venv/bin/python bench/cluster.py [--smoke] [--out DIR] [--sizes N ...] [--engine NAME]
                                      [--memory MB]
"""
from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from common import arguments, columns_yaml, machine, noisy_copies, parsed_upload, pyplot, report

from automl.training import train  # importable once common set the path

DATA = "ItalyPowerDemand"
NOISE_SD = 0.05
WORKERS = (1, 2)


class NothingInTime(ClassifierMixin, BaseEstimator):
    """A search that evaluates nothing: the run ends with the engine's default model."""

    def fit(self, X, y):
        raise Exception("No individuals could be evaluated in the initial population")


def no_search(*args, **kwargs):
    return NothingInTime()


def data(series: int, engine: str):
    X, y, described = noisy_copies(DATA, series, NOISE_SD)
    return (*parsed_upload(X, y, columns_yaml(False) + f"  engine: {engine}\n"
                           "model_training: {model: tpot, model_args: {max_time_mins: 30, "
                           "random_state: 0}}\n"), described)


def timed_run(params, raw, labels, memory_mb: int, workers: int):
    """(seconds, report, predicted probabilities of the first 500 series) of one run, on a
    fresh cluster of ``workers`` processes (0: locally)."""
    from dask.distributed import LocalCluster

    def run(address):
        began = time.perf_counter()
        classifier, result = train(raw, labels, params, dask_address=address,
                                   job_memory_mb=memory_mb, search=no_search)
        seconds = time.perf_counter() - began
        some = raw[raw[params.features.columns.id].isin(labels.index[:500])]
        return seconds, result, classifier.predict_proba(some).to_numpy()

    if workers == 0:
        return run(None)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        return run(cluster.scheduler_address)


def measure(series: int, engine: str, memory_mb: int) -> dict:
    params, raw, labels, described = data(series, engine)
    timed_run(*data(100, engine)[:3], memory_mb, 0)  # imports and numba's cache: not timed
    local_s, local, local_proba = timed_run(params, raw, labels, memory_mb, 0)
    row = {"data": described, "engine": engine, "features": local["trainShape"][1],
           "cv series": local["cvSeries"]["series"]}
    extraction = {}
    for workers in (0, *WORKERS):
        name = "local" if not workers else f"{workers} worker{'s' * (workers > 1)}"
        if workers:
            seconds, result, proba = timed_run(params, raw, labels, memory_mb, workers)
            row[f"same as local ({workers})"] = bool(
                result["mean_cv_score"] == local["mean_cv_score"]
                and np.array_equal(proba, local_proba))
        else:
            seconds, result = local_s, local
        extraction[workers] = result["stageSeconds"]["features"]
        row[f"{name} (s)"] = round(seconds, 1)
        row[f"{name}: features (s)"] = round(extraction[workers], 1)
        row[f"{name}: CV and fit (s)"] = round(result["stageSeconds"]["baseline"], 1)
    row["features speed-up 2 / 1"] = round(extraction[1] / extraction[2], 2)
    return row


def figure(rows: list[dict]):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = ["local (s)", "1 worker (s)", "2 workers (s)"]
    for offset, name in zip((-0.25, 0, 0.25), names):
        ax.bar([i + offset for i in range(len(rows))], [r[name] for r in rows], 0.25,
               label=name.removesuffix(" (s)"))
    ax.set_xticks(range(len(rows)), [r["data"].split(",")[1].split("x")[0].strip() + " series"
                                     for r in rows])
    ax.set_ylabel("seconds: extraction, CV, fit")
    ax.legend()
    fig.tight_layout()
    return fig


def main() -> None:
    args = arguments(__doc__.splitlines()[0], sizes=(int, [100_000], "series per run"),
                     engine=(str, "minirocket", "extract_features.engine"),
                     memory=(int, 4096, "AUTOML_JOB_MEMORY_MB of each run"))
    sizes = [300] if args.smoke else args.sizes
    rows = []
    for series in sizes:
        row = measure(series, args.engine, args.memory)
        print(row, flush=True)
        rows.append(row)
    report(args.out, "cluster", "Training on a Dask cluster of 1 and 2 workers", rows, f"""
Each run: the engine's features, its default model's cross-validation (on a stratified sample
of *cv series*) and its fit on every series; a search that evaluates nothing. *local*: no
cluster; the others on a fresh `LocalCluster` of single-threaded worker processes. *same as
local*: equal CV score and equal probabilities for 500 series. The fit on every series stays
in the training process. {machine()}.""", figure=figure(rows), smoke=args.smoke)


if __name__ == "__main__":
    main()
