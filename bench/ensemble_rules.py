"""Ensemble rules compared on test accuracy: the engine chosen alone, Caruana's greedy selection,
CAWPE, and CAWPE on temperature-scaled probabilities (the service's rule), over resamples of the
development data sets, beside HIVE-COTE 2's published accuracy on the same resamples.

Each resample's candidates (every engine of ``engine: auto`` with its default model) are
cross-validated once, as a training job does (``training.evaluate_candidates``); each rule then
weighs the same out-of-fold probabilities, and the members, fitted on the whole training part,
predict the test part. So the rules differ only in how they combine. *tempered, within cost* is
what a job serves before its search.
Usage:

    .venv/bin/python bench/ensemble_rules.py [--resamples 10] [--datasets ...] [--smoke]
    .venv/bin/python bench/ensemble_rules.py --from-runs A_runs.json B_runs.json  (report only)

Each resample's figures are appended to ``<out>/ensemble_rules_runs.json`` as they come, so a
run cut short, or runs made one data set at a time, can be reported together.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from accuracy import standard_split
from common import DEV_DATASETS, arguments, long_format, machine, pyplot, report
from published import PUBLISHED_CORRECT
from resamples import resample

MAX_RESAMPLES = 10
TOP = 3
RULES = ("chosen engine", "best CV score", "Caruana greedy", "CAWPE", "CAWPE tempered",
         f"tempered, top {TOP}", "tempered, within cost", "gated: at least", "gated: one SE")
GREEDY_ADDITIONS = 25  # AutoGluon's default


def greedy_weights(oofs, y, scoring: str) -> np.ndarray:
    """Caruana et al. (2004): add, with replacement, the candidate that most improves the
    average's score; ties go to the earlier (preferred) candidate."""
    from automl.ensemble import proba_score

    counts, total, current = np.zeros(len(oofs)), np.zeros_like(oofs[0]), -np.inf
    for addition in range(GREEDY_ADDITIONS):
        scores = [proba_score(scoring, y, (total + p) / (addition + 1)) for p in oofs]
        best = int(np.argmax(scores))
        if addition and scores[best] <= current + 1e-12:
            break
        counts[best] += 1
        total += oofs[best]
        current = scores[best]
    return counts / counts.sum()


def run_one(name: str, split, smoke: bool) -> dict:
    from automl.ensemble import Selection, cawpe_fit, combine, select
    from automl.params import parse_training_params
    from automl.report import finished
    from automl.training import evaluate_candidates

    (X_train, y_train), (X_test, y_test) = split
    raw, labels = long_format(X_train, y_train)
    test_raw, _ = long_format(X_test, y_test, first_id=100_000)
    kind = "column_kind: channel, " if X_train[0].shape[0] > 1 else ""
    fc = ", default_fc_parameters: minimal" if smoke else ""
    params = parse_training_params(f"""
extract_features: {{column_id: example_id, column_sort: time, {kind}engine: auto{fc}}}
model_training: {{model: tpot, model_args: {{max_time_mins: 5, random_state: 0}}}}
""".encode())
    began = time.perf_counter()
    run = evaluate_candidates(raw, labels.set_index("example_id")["label"], params)
    candidates_s = time.perf_counter() - began
    pool, classifier = run.pool, run.classifier
    ranked = run.ensemble_order()  # the baseline first, then by preference, as a job does
    y = pool.y_cv
    truth = np.searchsorted(np.asarray(classifier.classes_).astype(str),
                            np.asarray(y_test).astype(str))
    test_ids = [str(100_000 + i) for i in range(len(y_test))]  # ids are text once parsed
    one = test_raw[test_raw["example_id"] == 100_000]
    test_proba, candidate_ms = [], {}
    for candidate in ranked:
        served, _ = finished(pool, classifier, candidate, began, {})
        proba = served.predict_proba(test_raw)
        test_proba.append(proba.loc[test_ids].to_numpy())
        candidate_ms[candidate.engine] = _predict_ms(served, one)
    oofs = [c.oof for c in ranked]

    def accuracy(proba) -> float:
        return float(np.mean(proba.argmax(axis=1) == truth))

    everything = np.arange(len(y))
    weights, temperatures = cawpe_fit(oofs, y, everything)
    best_cv = max(range(len(ranked)), key=lambda i: ranked[i].scores)
    outcome = {
        "chosen engine": accuracy(test_proba[0]),
        "best CV score": accuracy(test_proba[best_cv]),
        "Caruana greedy": accuracy(combine(test_proba, greedy_weights(oofs, y, pool.scoring),
                                           [1.0] * len(oofs))),
        # the same weights: CAWPE's do not depend on the temperatures
        "CAWPE": accuracy(combine(test_proba, weights, [1.0] * len(oofs))),
        "CAWPE tempered": accuracy(combine(test_proba, weights, temperatures)),
    }
    top = sorted(range(len(ranked)), key=lambda i: -weights[i])[:TOP]  # stable: preference
    top_weights = weights[top] / weights[top].sum()
    outcome[f"tempered, top {TOP}"] = accuracy(combine(
        [test_proba[i] for i in top], top_weights, [temperatures[i] for i in top]))
    selection = select(ranked, y, pool.folds, pool.scoring)
    # The stored artifact itself (features of every member, WeightedEnsemble) must agree.
    ensemble, _ = finished(pool, classifier, selection, began, {})
    proba = ensemble.predict_proba(test_raw).loc[test_ids]
    assert abs(accuracy(proba.to_numpy()) - outcome["CAWPE tempered"]) < 1e-9
    # The service's ensemble: the heaviest members within the prediction-time bound.
    bounded = select(ranked, y, pool.folds, pool.scoring, keep=run.within_prediction_cost)
    if bounded is None:
        outcome["tempered, within cost"], bounded_ms = outcome["chosen engine"], None
    else:
        bounded_served, _ = finished(pool, classifier, bounded, began, {})
        outcome["tempered, within cost"] = accuracy(
            bounded_served.predict_proba(test_raw).loc[test_ids].to_numpy())
        bounded_ms = _predict_ms(bounded_served, one)
    # The service serves the bounded ensemble; the gates it was measured against keep the
    # chosen engine unless the ensemble's outer estimate is at least its CV score, or within
    # one standard error of it.
    reference, se = run.baseline.metrics["score"], run.baseline.metrics["score_se"]
    outer = bounded.metrics["score"] if bounded else None
    gates = {"gated: at least": outer is not None and outer >= reference,
             "gated: one SE": outer is not None and outer >= reference - se}
    for rule, passed in gates.items():
        outcome[rule] = outcome["tempered, within cost" if passed else "chosen engine"]
    few = Selection([ranked[i] for i in top], list(top_weights), selection.metrics,
                    selection.oof, len(ranked), [temperatures[i] for i in top])
    few_served, _ = finished(pool, classifier, few, began, {})
    return {"data set": name, **outcome,
            "outer score": outer, "baseline score": reference, "baseline SE": se,
            "chosen": run.baseline.engine, "candidates": len(ranked),
            "members": len(selection.members),
            "members within cost": [m.engine for m in bounded.members] if bounded else [],
            "chosen 1-series ms": candidate_ms[run.baseline.engine],
            "ensemble 1-series ms": _predict_ms(ensemble, one),
            f"top {TOP} 1-series ms": _predict_ms(few_served, one),
            "within cost 1-series ms": bounded_ms or candidate_ms[run.baseline.engine],
            "candidate 1-series ms": candidate_ms,
            "candidates s": round(candidates_s, 1)}


def _predict_ms(classifier, one_series, repeats: int = 7) -> float:
    """Median milliseconds of one in-process prediction of one series (after a warm-up)."""
    classifier.predict_proba(one_series)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        classifier.predict_proba(one_series)
        times.append(time.perf_counter() - began)
    return round(1000 * float(np.median(times)), 2)


def summary(name: str, runs: list[dict], smoke: bool) -> dict:
    row = {"data set": name, "resamples": len(runs)}
    test_size = runs[0]["test size"]
    for rule in RULES:
        row[rule] = float(np.mean([run[rule] for run in runs]))
    published = PUBLISHED_CORRECT.get(name, {}).get("HC2")
    row["HC2 (publ.)"] = (None if smoke or not published
                          else float(np.mean(published[:len(runs)]) / test_size))
    row["ensembles"] = sum(len(run["members within cost"]) >= 2 for run in runs)
    row["members (mean)"] = float(np.mean([run["members"] for run in runs]))
    row["members within cost (mean)"] = float(np.mean([len(run["members within cost"])
                                                        for run in runs]))
    for what in ("ensemble", f"top {TOP}", "within cost"):
        row[f"1-series predict: {what} / chosen"] = float(np.median(
            [run[f"{what} 1-series ms"] / run["chosen 1-series ms"] for run in runs]))
    row["candidates s (mean)"] = float(np.mean([run["candidates s"] for run in runs]))
    return row


def main() -> None:
    args = arguments(__doc__.splitlines()[0],
                     resamples=(int, MAX_RESAMPLES, "resamples 0..N-1 of each data set (N <= 10)"),
                     datasets=(str, list(DEV_DATASETS), "the development data sets"),
                     from_runs=(Path, [], "measure nothing: report these saved runs"))
    n, datasets = min(args.resamples, MAX_RESAMPLES), args.datasets
    if args.smoke:
        n, datasets = 1, ["GunPoint"]
    runs = [_renamed(run) for path in args.from_runs for run in json.loads(path.read_text())]
    saved = args.out / "ensemble_rules_runs.json"
    for name in ([] if args.from_runs else datasets):
        standard = standard_split(name, args.smoke)
        for r in range(n):
            run = {"resample": r, "test size": len(standard[1][1]),
                   **run_one(name, resample(standard, r), args.smoke)}
            print({k: run[k] for k in ("data set", "resample", *RULES, "candidates s")}, flush=True)
            runs.append(run)
            saved.write_text(json.dumps(runs, indent=1, default=str))
    names = list(dict.fromkeys(run["data set"] for run in runs))
    rows = [summary(name, [run for run in runs if run["data set"] == name], args.smoke)
            for name in names]
    n = max(run["resample"] for run in runs) + 1
    note = f"""
Measured on {machine()}.
Each data set's resamples 0-{n - 1} (resample 0 is the standard split, as in `resamples.py`).
On each, every candidate of `engine: auto` (each engine with its default model; `random_state: 0`)
is cross-validated on the training part once, as a job does; the rules below weigh the same
out-of-fold probabilities, and the members, fitted on the whole training part, predict the test
part. *chosen engine*: the one standard error rule's engine alone (a job's baseline); *best CV
score*: the top-scoring candidate alone; *Caruana greedy*: greedy selection with replacement
on the job's scoring (ROC AUC), {GREEDY_ADDITIONS} additions at most; *CAWPE*: every
candidate weighted by its out-of-fold accuracy to the power 4; *CAWPE tempered*: the same on
temperature-scaled probabilities (the service's rule); *tempered, top {TOP}*: the same
restricted to the {TOP} heaviest members (fewer engines to compute at prediction); *tempered,
within cost*: the heaviest members whose ensemble predicts one series within
`model_training.ensemble_cost` (3) times the chosen engine's time, measured as a job does
(what a job serves before its search, in place of the chosen engine); *gated: at least*
and *gated: one SE*: the same, but only when its outer estimate of the job's scoring (ROC AUC)
is at least the chosen engine's CV score, or within one standard error of it, else the chosen
engine; *ensembles*: resamples with an ensemble of two members or more. Figures are mean test accuracy; the tempered
ensemble's is that of the stored artifact itself (`WeightedEnsemble` behind every member's
features). *HC2 (publ.)*: tsml-eval's published HIVE-COTE 2 mean on the same resample numbers
(`bench/published.py`). *1-series predict: ensemble / chosen*: median over resamples of the
ratio of one series' in-process prediction time, the ensemble's (all members, the top {TOP},
or those within the cost bound) to the chosen engine's alone
(over HTTP each adds the same request cost, so the ratio there is lower).
"""
    report(args.out, "ensemble_rules", "Ensemble rules", rows, note,
           figure=_plot(rows), smoke=args.smoke)
    saved.write_text(json.dumps(runs, indent=1, default=str))


def _renamed(run: dict) -> dict:
    """A saved run, its gates under today's names (runs saved while a gate decided)."""
    for old, new in (("served if at least", "gated: at least"), ("served", "gated: one SE")):
        if old in run:
            run[new] = run.pop(old)
    return run


def _plot(rows):
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / (len(RULES) + 1)
    for i, key in enumerate((*RULES, "HC2 (publ.)")):
        values = [row[key] if row[key] is not None else np.nan for row in rows]
        axis.bar(np.arange(len(rows)) + i * width, values, width, label=key)
    axis.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, [row["data set"] for row in rows])
    low = min(min(row[k] for k in RULES) for row in rows)
    axis.set_ylim(max(0.0, low - 0.05), 1.005)
    axis.set_ylabel("mean test accuracy")
    axis.legend(fontsize=7, ncol=4, loc="lower left")
    figure.tight_layout()
    return figure


if __name__ == "__main__":
    main()
