"""Feature extraction: series-channels per second per engine and setting, before and after the
tsfresh speed-ups; prediction's selected-only extraction against a full one; and what the
"fast" settings cost in accuracy.

    .venv/bin/python bench/features.py [--smoke] [--out DIR] [--repeats N] [--accuracy 0|1]

*Before* is the service as it was: ``tsfresh.extract_features`` with EfficientFCParameters,
``n_jobs=0`` (or tsfresh's own process pool with its default chunking). *After* is
``automl.features.TsfreshFeatures(select=False).fit_transform`` with ``n_jobs=0`` (in-process),
one worker process per CPU, or ``n_jobs=-1`` (automatic). The note written with the tables says
exactly what each figure is.
"""
from __future__ import annotations

import itertools
import os
import resource
import time
import warnings

import numpy as np
import pandas as pd

from common import arguments, load_split, long_format, machine, markdown_table, pyplot, report

# case: (data set, series for the throughput rows (full run, smoke run))
CASES = {
    "short multichannel": ("BasicMotions", 20, 2),   # 6 channels x 100 points
    "many short": ("ItalyPowerDemand", 200, 4),      # 1 channel x 24 points
    "few long": ("GunPoint", 60, 2),                 # 1 channel x 150 points
}
# Test series for the prediction rows (full run, smoke run); None: the whole test split.
PREDICTION_SERIES = {"BasicMotions": (None, 3), "ItalyPowerDemand": (300, 6),
                     "GunPoint": (None, 4)}
KERNELS = ("minirocket", "multirocket")
COLUMNS = ["case", "shape", "engine", "settings", "mode", "version", "series-channels",
           "s", "CPU s", "series-ch/s", "x before"]


# ---------------------------------------------------------------------------------------------
# Data


def pooled(name: str, n: int | None = None, split: str | None = None):
    """Long-format rows and labels of the first ``n`` series of train+test (or one split),
    taken class by class in turn so that a few series still hold every class."""
    splits = [split] if split else ["train", "test"]
    X, y = [], []
    for part in splits:
        data, labels = load_split(name, part)
        X += list(data)
        y += list(labels)
    y = np.asarray(y)
    if n is not None and n < len(y):
        by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
        take = sorted([i for group in itertools.zip_longest(*by_class) for i in group
                       if i is not None][:n])
        X, y = [X[i] for i in take], y[take]
    raw, labels = long_format(X, y)
    channels, length = np.asarray(X[0]).shape
    kind = "channel" if channels > 1 else None
    target = pd.Series(labels["label"].to_numpy(), index=labels["example_id"].astype(str))
    return raw, target, kind, (len(X), channels, length)


def tsfresh_features(kind, **kwargs):
    from automl.features import TsfreshFeatures

    return TsfreshFeatures(column_id="example_id", column_value="measurement",
                           column_sort="time", column_kind=kind, **kwargs)


# ---------------------------------------------------------------------------------------------
# Timing


def timed(function, repeats: int) -> tuple[float, float, object]:
    """Best wall time of ``repeats`` calls, the CPU time (this process and its finished
    children) of that call, and its result."""
    best = None
    for _ in range(repeats):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu, began = time.process_time(), time.perf_counter()
        result = function()
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (time.process_time() - cpu + after.ru_utime - children.ru_utime
               + after.ru_stime - children.ru_stime)
        if best is None or wall < best[0]:
            best = (wall, cpu, result)
    return best


def before(raw, kind, n_jobs: int):
    """The service's extraction before this change: tsfresh as it comes."""
    from tsfresh import extract_features
    from tsfresh.feature_extraction.settings import EfficientFCParameters

    return extract_features(raw, column_id="example_id", column_sort="time", column_kind=kind,
                            column_value="measurement",
                            default_fc_parameters=EfficientFCParameters(), n_jobs=n_jobs,
                            disable_progressbar=True)


def throughput_rows(case: str, name: str, n: int, processes: int, repeats: int,
                    smoke: bool) -> list[dict]:
    raw, y, kind, (series, channels, length) = pooled(name, n)
    n_sc = series * channels
    shape = f"{series} x {channels} x {length}"
    rows = []

    def add(engine, settings, mode, version, function):
        wall, cpu, _ = timed(function, repeats)
        rows.append({"case": case, "data set": name, "shape": shape, "engine": engine,
                     "settings": settings, "mode": mode, "version": version,
                     "series-channels": n_sc, "s": wall, "CPU s": cpu,
                     "series-ch/s": n_sc / wall})
        print(f"  {case:18s} {engine:11s} {settings:13s} {mode:13s} {version:6s} "
              f"{wall:7.2f} s  {n_sc / wall:8.1f} series-ch/s", flush=True)

    in_process, pooled_mode = "in-process", f"{processes} processes"
    add("tsfresh", "efficient", in_process, "before", lambda: before(raw, kind, 0))
    add("tsfresh", "efficient", pooled_mode, "before", lambda: before(raw, kind, processes))
    for settings in ("minimal", "fast", "efficient", "comprehensive"):
        for mode, n_jobs in ((in_process, 0), (pooled_mode, processes), ("auto (-1)", -1)):
            if settings == "comprehensive" and n_jobs and not smoke:
                continue  # affordable in-process only; processes scale as for efficient
            add("tsfresh", settings, mode, "after",
                lambda s=settings, j=n_jobs: tsfresh_features(
                    kind, fc_parameters=s, select=False, n_jobs=j).fit_transform(raw, y))
    kernels = kernel_features()
    for engine in (KERNELS if kernels else ()):
        add(engine, "–", in_process, "after",
            lambda e=engine: kernels(kind=e, column_id="example_id", column_value="measurement",
                                     column_sort="time", column_kind=kind).fit_transform(raw, y))
    reference = rows[0]["series-ch/s"]
    for row in rows:
        row["x before"] = row["series-ch/s"] / reference
    return rows


def kernel_features():
    """automl.kernels.KernelFeatures if that module is there (it is written separately)."""
    try:
        from automl.kernels import KernelFeatures
    except ImportError:
        return None
    return KernelFeatures


# ---------------------------------------------------------------------------------------------
# Prediction: selected features only


def prediction_rows(name: str, settings: str, n_train: int | None, n_test: int | None,
                    repeats: int) -> dict:
    """Fit on the train split, narrow the features as training does (every relevant one, by
    ``automl.selection.relevant``; and the compact set, by ``automl.feature_cost.compact_set``),
    and time ``transform`` of test series against a full extraction of the same series."""
    from automl.feature_cost import compact_set
    from automl.selection import relevant

    raw, y, kind, _ = pooled(name, n_train, split="train")
    test_raw, test_y, _, (series, channels, _) = pooled(name, n_test, split="test")
    engine = tsfresh_features(kind, fc_parameters=settings, select=False)
    matrix = engine.fit_transform(raw, y)
    kept = list(matrix.columns[relevant(matrix.to_numpy(), y.to_numpy())]) or list(matrix.columns)
    compact = compact_set(matrix, y.to_numpy(), kept)
    full_s, _, _ = timed(lambda: tsfresh_features(kind, fc_parameters=settings, select=False)
                         .fit_transform(test_raw, test_y), max(2, repeats))
    row = {"data set": name, "settings": settings, "test series": series,
           "channels": channels, "extracted": matrix.shape[1], "full s": full_s}
    for label, columns in (("relevant", kept), ("compact", compact)):
        narrowed = engine.restricted(columns)
        first = test_raw[test_raw["example_id"] == test_raw["example_id"].iloc[0]]
        narrowed.transform(first)  # first calls fill caches; a served model is warm
        seconds, _, _ = timed(lambda: narrowed.transform(test_raw), max(3, repeats))
        row.update({label: len(columns),
                    f"{label} calculators": len({c.split("__")[1] for c in columns}),
                    f"{label} s": seconds, f"{label} speed-up": full_s / seconds})
        print(f"  prediction {name:16s} {settings:9s} {label:8s} {len(columns):5d}/"
              f"{matrix.shape[1]} features: full {full_s:.2f} s, only these {seconds:.3f} s, "
              f"x{full_s / seconds:.1f}", flush=True)
    return row


# ---------------------------------------------------------------------------------------------
# Accuracy: efficient, fast, compact


def accuracy_rows(name: str, n: int | None, folds: int, repeats: int) -> list[dict]:
    """Cross-validated accuracy of ExtraTrees(300) on relevant features (selected inside each
    fold, as training does), with every efficient feature, with the fast ones only, and on
    the compact set of the fast ones (also chosen inside each fold).

    fast is a subset of efficient and computes the same values, so one extraction serves
    both: the fast columns are picked out of the efficient table.
    """
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.model_selection import RepeatedStratifiedKFold

    from automl.feature_cost import compact_set
    from automl.features import FastFCParameters
    from automl.selection import relevant

    raw, y, kind, (series, channels, _) = pooled(name, n)
    table = tsfresh_features(kind, fc_parameters="efficient", select=False,
                             n_jobs=-1).fit_transform(raw, y)
    fast = set(FastFCParameters())
    fast_columns = [c for c in table.columns if c.split("__")[1] in fast]
    subsets = {"efficient": list(table.columns), "fast": fast_columns,
               "fast, compact": fast_columns}
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=0)
    splits = list(splitter.split(table, y))
    rows = []
    for settings, columns in subsets.items():
        scores = []
        for train, test in splits:
            part = table.iloc[train][columns]
            part = part.loc[:, part.nunique() > 1]
            mask = relevant(part.to_numpy(), y.to_numpy()[train])
            kept = list(part.columns[mask]) or list(part.columns)
            if settings.endswith("compact"):
                kept = compact_set(table.iloc[train][columns], y.to_numpy()[train], kept)
            model = ExtraTreesClassifier(n_estimators=300, random_state=0, n_jobs=1)
            model.fit(table.iloc[train][kept], y.iloc[train])
            scores.append(np.mean(model.predict(table.iloc[test][kept]) == y.iloc[test]))
        rows.append({"data set": name, "series": series, "channels": channels,
                     "settings": settings, "features": len(columns),
                     "features used (last fold)": len(kept),
                     "CV accuracy": float(np.mean(scores)),
                     "+/- (s.e.)": float(np.std(scores) / np.sqrt(len(scores)))})
        print(f"  accuracy {name:16s} {settings:9s} {np.mean(scores):.3f}", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------


def plot(rows: list[dict]):
    plt = pyplot()
    cases = list(dict.fromkeys(r["case"] for r in rows))
    from matplotlib.ticker import NullFormatter

    figure, axes = plt.subplots(1, len(cases), figsize=(5.2 * len(cases), 4.6), squeeze=False,
                                sharex=True)
    colours = {"before": "tab:gray", "after": "tab:blue"}
    for axis, case in zip(axes[0], cases):
        mine = [r for r in rows if r["case"] == case]
        labels = [f"{r['engine'] if r['engine'] != 'tsfresh' else r['settings']}, "
                  f"{r['mode']}{' (before)' if r['version'] == 'before' else ''}" for r in mine]
        axis.barh(labels, [r["series-ch/s"] for r in mine],
                  color=[colours[r["version"]] if r["engine"] == "tsfresh" else "tab:orange"
                         for r in mine])
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())
        for y, r in enumerate(mine):
            axis.annotate(_rate(r["series-ch/s"]), (r["series-ch/s"], y), xytext=(3, 0),
                          textcoords="offset points", va="center", fontsize=7)
        axis.invert_yaxis()
        axis.set_title(f"{case}: {mine[0]['data set']} ({mine[0]['shape']})", fontsize=9)
        axis.set_xlabel("series-channels per second (log)")
        axis.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    return figure


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def main() -> None:
    warnings.simplefilter("ignore")  # tsfresh's calculators warn on odd inputs
    args = arguments(__doc__.splitlines()[0],
                     repeats=(int, 1, "timings: best of this many runs"),
                     accuracy=(int, 1, "1: also compare efficient and fast accuracy; 0: skip"))
    from automl.feature_cost import COMPACT_MAX_FEATURES, COMPACT_SPEEDUP
    from automl.features import available_cpus, resolve_fc_parameters

    processes = max(2, available_cpus())
    smoke = args.smoke
    load_before = os.getloadavg()[0]
    rows, predictions, accuracies = [], [], []
    for case, (name, n_full, n_smoke) in CASES.items():
        rows += throughput_rows(case, name, n_smoke if smoke else n_full, processes,
                                args.repeats, smoke)
    for name, (n_full, n_smoke) in PREDICTION_SERIES.items():
        for settings in (("fast",) if smoke else ("efficient", "fast")):
            predictions.append(prediction_rows(name, settings, 8 if smoke else None,
                                               n_smoke if smoke else n_full, args.repeats))
    if args.accuracy:
        for name in (("GunPoint",) if smoke else ("GunPoint", "ItalyPowerDemand", "BasicMotions")):
            accuracies += accuracy_rows(name, 12 if smoke else None, 2 if smoke else 5,
                                        1 if smoke or name == "ItalyPowerDemand" else 3)
    load_after = os.getloadavg()[0]
    prediction_table = markdown_table(predictions)
    print(f"\nPrediction: the model's features only against a full extraction\n\n{prediction_table}")
    accuracy_table = markdown_table(accuracies) if accuracies else "(not run: --accuracy 0)"
    print(f"\nAccuracy, efficient, fast and compact\n\n{accuracy_table}")
    kernels = ("MiniRocket and MultiRocket rows: `automl.kernels.KernelFeatures(kind=...)"
               ".fit_transform` (fit and transform), one thread."
               if kernel_features() else "No kernel rows: `automl.kernels` is not there.")
    note = f"""
Measured on {machine()}. The machine is shared: load average {load_before:.1f} at the start,
{load_after:.1f} at the end, so compare ratios within a table; *CPU s* is this process plus its
worker processes, and CPU s / s the cores it got.

**Throughput.** Each case is the first series of the data set's train+test splits from the
aeon wheel (classes in turn), in the upload's long format (example_id, time, [channel,]
measurement). *before*: `tsfresh.extract_features(default_fc_parameters=EfficientFCParameters(),
n_jobs=0)` as the service called it (with {processes} processes: tsfresh's own pool and default
chunking). *after*: `TsfreshFeatures(fc_parameters=..., select=False, n_jobs=0, {processes} or -1)`
`.fit_transform` (extraction, imputation); -1 is the automatic choice (a sample of 8 series
in-process, then one process per CPU if each gets a second of work or more, else in-process).
*x before* is series-channels/s over the first row's.
{kernels} Best of {args.repeats} run(s).

**Prediction.** `TsfreshFeatures` fitted on the train split, narrowed as training does
(`restricted`) to either set a model can read: every *relevant* feature
(`automl.selection.relevant`), or the *compact* set (`automl.feature_cost.compact_set`: the
relevant features ranked by ExtraTrees importance, at most {COMPACT_MAX_FEATURES}, from calculators
estimated to cost at most 1/{COMPACT_SPEEDUP} of a full extraction), which training keeps unless
cross-validation scores
it more than one standard error below the relevant set. Each *s* is its `transform` of the
test series (only those features, tsfresh's `from_columns`; best of 3, after a warm-up call);
*full s* a complete extraction of the same series with the same settings (best of 2); all
in-process. The target is a speed-up of at
least 10x. A calculator costs about as much for one of its features as for all of them, so
what counts is how many calculators the kept features need (*calculators*, out of
{len(resolve_fc_parameters("efficient"))} in efficient).

{prediction_table}

**Accuracy.** 5-fold stratified cross-validation (3 repetitions; 1 for ItalyPowerDemand) on
train+test pooled, ExtraTrees(300 trees) on the features found relevant in each training
fold, with every efficient feature or only the fast ones (a subset, same values), or on the
compact set of the fast ones (chosen in each training fold).

{accuracy_table}

**Throughput table.**
"""
    report(args.out, "features", "Feature extraction: series-channels per second", rows, note,
           columns=COLUMNS, figure=plot(rows), smoke=smoke)


if __name__ == "__main__":
    main()
