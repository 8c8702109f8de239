"""Test accuracy on UCR/UEA standard splits: the service, trained through its own API, beside
MiniRocket measured in the same run and published figures for 1-NN DTW, ROCKET and HC2.

Each training is a job of an in-process service (job runner, worker process, tsfresh/aeon,
TPOT), as a user's upload would be; the test split is then scored through
``POST /serve_prediction``. Usage:

    .venv/bin/python bench/accuracy.py [--budgets 1 5] [--datasets GunPoint ...] [--smoke]
"""
from __future__ import annotations

import time

import numpy as np

from common import (DATASETS, arguments, columns_yaml, csv_bytes, load_split, long_format,
                    machine, predict, pyplot, report, service, train_job)

# Published accuracies on the standard split (resample/fold 0, never an average over resamples).
PUBLISHED = {
    "GunPoint": {"1-NN DTW": 0.907, "ROCKET": 1.000, "HC2": 1.000},
    "ItalyPowerDemand": {"1-NN DTW": 0.950, "ROCKET": 0.970, "HC2": 0.970},
    "BasicMotions": {"1-NN DTW": 0.975, "ROCKET": 1.000, "HC2": 1.000},
}
PUBLISHED_NOTE = """
- 1-NN DTW, univariate: the UCR archive's `DataSummary.csv` (Dau et al., "The UCR time series
  archive", 2019), column `DTW (w=100)` (full window; the `learned_w` column gives 0.913 and
  0.955, with a learned window of 0, i.e. Euclidean distance).
- 1-NN DTW, BasicMotions: dependent DTW (DTW_D), github.com/time-series-machine-learning/tsml-eval
  `results/tsml/ByClassifier/Multivariate/DTW_D_TESTFOLDS.csv` @ 3008a593, fold 0.
- ROCKET: tsml-eval `results/classification/Univariate/ROCKET_accuracy.csv` @ 6270c37e and
  `results/classification/Multivariate/ROCKET_ACC.csv` @ c393f2bb, resample 0.
- HC2 (HIVE-COTE 2): tsml-eval `results/classification/Univariate/HC2_accuracy.csv` @ 573f6491
  (the aeon 1.6.0 wheel's `aeon/testing/example_results_files/classification/accuracy/HC2_accuracy.csv`
  agrees) and `results/tsml/ByClassifier/Multivariate/HC2_TESTFOLDS.csv` @ 984437cd, fold 0.
- For comparison, tsml-eval's MiniRocket on the standard split: GunPoint 0.993,
  ItalyPowerDemand 0.963 (`MiniROCKET_accuracy.csv` @ f244d47a); none published for BasicMotions.
"""


def service_run(client, name: str, engine: str, budget_min: float, split, smoke: bool) -> dict:
    """Train a job on ``split``'s train part through the API; score its test part."""
    (X_train, y_train), (X_test, y_test) = split
    multichannel = X_train[0].shape[0] > 1
    raw, labels = long_format(X_train, y_train, first_id=0)
    test_raw, _ = long_format(X_test, y_test, first_id=100_000)
    params = (columns_yaml(multichannel) + f"  engine: {engine}\n"
              + ("  default_fc_parameters: minimal\n" if smoke else "")
              + "model_training:\n  model: tpot\n"
              + f"  model_args: {{max_time_mins: {budget_min}, random_state: 0}}\n")
    job = train_job(client, csv_bytes(raw), csv_bytes(labels), params)
    if job["state"] != "succeeded":
        raise RuntimeError(f"{name}/{engine}: the job {job['state']}: {job.get('error')}")
    result = job["result"]
    began = time.perf_counter()
    scores = predict(client, result["modelId"], csv_bytes(test_raw))
    predict_s = time.perf_counter() - began
    predicted = _decode(scores, result, first_id=100_000, n=len(y_test))
    wall = _seconds(job["finishedAt"]) - _seconds(job["startedAt"])
    return {"data set": name, "budget min": budget_min, "engine": engine,
            "test acc.": float(np.mean(predicted == np.asarray(y_test).astype(str))),
            "CV acc.": result.get("mean_cv_accuracy"),
            "chosen": f"{result.get('engine')} / {result.get('modelFamily')}",
            "ensemble members": [m["engine"] for m in (result.get("ensemble") or {}).get(
                "members", [])],
            "search outcome": (result.get("search") or {}).get("outcome"),
            "stage s": result.get("stageSeconds"),
            "wall s": wall, "1st model s": job["submittedToFirstModel_s"],
            "predict s": predict_s}


def minirocket_run(split) -> dict:
    """aeon's MiniRocket classifier on the same split: what one line of aeon gets."""
    from aeon.classification.convolution_based import MiniRocketClassifier

    (X_train, y_train), (X_test, y_test) = split
    began = time.perf_counter()
    model = MiniRocketClassifier(random_state=0).fit(X_train, y_train)
    accuracy = float(np.mean(model.predict(X_test) == y_test))
    return {"accuracy": accuracy, "seconds": time.perf_counter() - began}


def main() -> None:
    args = arguments(__doc__.splitlines()[0],
                     budgets=(float, [1.0, 5.0], "search budgets in minutes (engine auto)"),
                     datasets=(str, list(DATASETS), "UCR/UEA data sets shipped with aeon"),
                     tsfresh_budget=(float, 1.0, "budget for the tsfresh-only row; 0 skips it"))
    budgets, datasets = args.budgets, args.datasets
    if args.smoke:
        budgets, datasets, args.tsfresh_budget = [0.25], ["GunPoint"], 0
    rows = []
    with service() as client:
        for name in datasets:
            split = standard_split(name, args.smoke)
            mini = minirocket_run(split)
            runs = [("auto", b) for b in budgets]
            if args.tsfresh_budget:
                runs.append(("tsfresh", args.tsfresh_budget))
            for engine, budget in runs:
                row = service_run(client, name, engine, budget, split, args.smoke)
                row.update({"MiniRocket acc.": mini["accuracy"], "MiniRocket s": mini["seconds"],
                            **{f"{k} (publ.)": v for k, v in PUBLISHED[name].items()}})
                rows.append(row)
                print({k: row[k] for k in ("data set", "budget min", "engine", "test acc.",
                                            "wall s")}, flush=True)
    note = f"""
Measured on {machine()}.
Each row is one training job of the service (`POST /train_model`, engine as shown, TPOT
with `max_time_mins` = budget and `random_state: 0`, everything else default), on the data
set's standard train split from the aeon wheel; *test acc.* is `POST /serve_prediction`
on the standard test split. *wall s* is the job's start-to-finish time, *1st model s*
submission to the first servable (provisional) pipeline. *MiniRocket* is aeon's
`MiniRocketClassifier(random_state=0)` fitted in the same run. *(publ.)* columns are
published accuracies on the same split, from:
{PUBLISHED_NOTE}"""
    report(args.out, "accuracy", "Accuracy on UCR/UEA standard splits", rows, note,
           figure=_plot(rows), smoke=args.smoke)


def _plot(rows):
    plt = pyplot()
    names = list(dict.fromkeys(r["data set"] for r in rows))
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for axis, name in zip(axes[0], names):
        mine = [r for r in rows if r["data set"] == name]
        bars = {f"{r['engine']} {r['budget min']:g} min": r["test acc."] for r in mine}
        bars["MiniRocket (same run)"] = mine[0]["MiniRocket acc."]
        bars.update({k: v for k, v in mine[0].items() if k.endswith("(publ.)") and v})
        colours = ["tab:blue"] * len(mine) + ["tab:orange"] + ["tab:gray"] * (len(bars) - len(mine) - 1)
        axis.barh(list(bars), list(bars.values()), color=colours)
        low = min(bars.values())
        axis.set_xlim(max(0.0, low - 0.05), 1.0)
        axis.invert_yaxis()
        axis.set_title(name)
        axis.set_xlabel("test accuracy")
    figure.tight_layout()
    return figure


def standard_split(name: str, smoke: bool = False):
    """((X_train, y_train), (X_test, y_test)) as published with the data set."""
    train, test = load_split(name, "train"), load_split(name, "test")
    if smoke:  # a few series of each class
        train, test = (_few(*train, 8), _few(*test, 5))
    return train, test


def _few(X, y, per_class: int):
    keep = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in np.unique(y)])
    return X[keep], y[keep]


def _decode(scores: dict, result: dict, first_id: int, n: int) -> np.ndarray:
    """Predicted labels (as text) in test order from the service's answer."""
    classes = [str(c) for c in result["classes"]]
    predicted = []
    for i in range(n):
        score = scores[str(first_id + i)]
        if isinstance(score, dict):  # multiclass: every class's probability
            predicted.append(max(score, key=score.get))
        else:  # binary: P(positive class)
            positive = str(result["positiveClass"])
            other = next(c for c in classes if c != positive)
            predicted.append(positive if score >= 0.5 else other)
    return np.asarray(predicted)


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


if __name__ == "__main__":
    main()
