"""Test accuracy averaged over resamples of each data set: the service (engine auto) beside
MiniRocket in the same run and the published HC2, MR-Hydra, MultiRocket, RDST, QUANT, Hydra
and ROCKET accuracies on the same resamples (``bench/published.py``).

One split decides a comparison by a handful of test series: ROCKET's published accuracy on
ItalyPowerDemand is 0.970 on the standard split and 0.961 averaged over its 30 resamples.
Resample 0 is the standard split; resample r > 0 pools train and test and redraws them with
the same sizes and class counts (aeon's ``stratified_resample_data(random_state=r)``, the
tsml-eval scheme behind the published figures). Usage:

    .venv/bin/python bench/resamples.py [--resamples 10] [--budget 5] [--datasets ...] [--smoke]
                                        [--resume]

The 5-minute run over six data sets takes about 5 hours, so it can be done in parts: every
finished job is written to ``<out>/resamples_runs.json`` at once (with the commit it ran at),
and ``--resume`` keeps the runs already there for the same budget and does only the others.
Runs made with other budgets stay in the file; the report covers this budget's.
"""
from __future__ import annotations

import json
import subprocess

import numpy as np

from accuracy import minirocket_run, service_run, standard_split
from common import DEV_DATASETS, ROOT, arguments, machine, pyplot, report, service
from published import METHODS, PUBLISHED_CORRECT, accuracy

MAX_RESAMPLES = 10


def resample(standard, r: int):
    """Split number ``r`` of a data set given its ``standard`` split (which is number 0)."""
    from aeon.benchmarking.resampling import stratified_resample_data

    if not r:
        return standard
    (X_train, y_train), (X_test, y_test) = standard
    X_train, y_train, X_test, y_test = stratified_resample_data(
        X_train, y_train, X_test, y_test, random_state=r)
    return (X_train, y_train), (X_test, y_test)


def summary(name: str, runs: list[dict]) -> dict:
    """Means (and standard errors) over ``runs``, one data set's resamples, beside the
    published figures on the same resample numbers."""
    ids = [run["resample"] for run in runs]
    ours = np.array([run["test acc."] for run in runs])
    row = {"data set": name, "resamples": len(runs),
           "service mean": ours.mean(), "service SE": _se(ours),
           "MiniRocket mean": np.mean([run["MiniRocket acc."] for run in runs])}
    for method in METHODS:
        published = np.array([run.get(f"{method} (publ.)") for run in runs], dtype=float)
        row[f"{method} mean (publ.)"] = None if np.isnan(published).any() else published.mean()
        if method == "HC2" and row["HC2 mean (publ.)"] is not None:
            row["vs HC2: W/T/L"] = (f"{int(np.sum(ours > published))}/"
                                    f"{int(np.sum(ours == published))}/"
                                    f"{int(np.sum(ours < published))}")
    row["ensembles"] = sum(bool(run.get("ensemble members")) for run in runs)
    outcomes = [run.get("search outcome") for run in runs]
    row["search: replaced / joined"] = (f"{outcomes.count('replaced the baseline')} / "
                                        f"{outcomes.count('joined the ensemble')}")
    row["1st model s (max)"] = max(run["1st model s"] or 0 for run in runs)
    row["chosen"] = ", ".join(sorted({run["chosen"] for run in runs}))
    row["resample ids"] = _ranges(ids)
    row["commits"] = ", ".join(sorted({run.get("commit") or "?" for run in runs}))
    return row


def main() -> None:
    args = arguments(__doc__.splitlines()[0],
                     resamples=(int, MAX_RESAMPLES, "resamples 0..N-1 of each data set (N <= 10)"),
                     budget=(float, 5.0, "each job's budget in minutes (engine auto)"),
                     datasets=(str, list(DEV_DATASETS), "the development data sets"),
                     resume=(bool, False, "keep the runs in <out>/resamples_runs.json made with "
                                          "the same budget; do only the missing ones"))
    n, budget, datasets = min(args.resamples, MAX_RESAMPLES), args.budget, args.datasets
    if args.smoke:
        n, budget, datasets = 2, 0.25, ["GunPoint"]
    runs_file = args.out / "resamples_runs.json"
    earlier = json.loads(runs_file.read_text()) if runs_file.exists() else []
    other_budgets = [run for run in earlier if run.get("budget min") != budget]  # left as they are
    done = {(run["data set"], run["resample"]): run for run in earlier
            if args.resume and run.get("budget min") == budget}
    # Runs of data sets or resamples this invocation does not do stay in the file and report.
    kept = [run for key, run in done.items() if key[0] not in datasets or key[1] >= n]
    commit, measured_on = _commit(), machine()
    runs = []
    with service() as client:
        for name in datasets:
            standard = None
            for r in range(n):
                if (name, r) in done:
                    runs.append(done[(name, r)])
                    continue
                standard = standard or standard_split(name, args.smoke)  # resamples redraw it
                split = resample(standard, r)
                run = service_run(client, name, "auto", budget, split, args.smoke)
                run.update({"resample": r, "commit": commit, "machine": measured_on,
                            "MiniRocket acc.": minirocket_run(split)["accuracy"]})
                test_size = len(split[1][1])
                for method in PUBLISHED_CORRECT.get(name, {}):
                    run[f"{method} (publ.)"] = None if args.smoke else accuracy(
                        name, method, r, test_size)
                runs.append(run)
                # Written after every job: an interrupted run loses one job, not the rest.
                _write(runs_file, other_budgets + kept + runs)
                print({k: run[k] for k in ("data set", "resample", "test acc.", "MiniRocket acc.",
                                            "chosen", "wall s")}, flush=True)
    runs = sorted(kept + runs, key=lambda run: run["resample"])
    reported = {run["data set"] for run in runs}  # this invocation's and those kept
    datasets = [name for name in dict.fromkeys((*DEV_DATASETS, *datasets)) if name in reported]
    rows = [summary(name, [run for run in runs if run["data set"] == name]) for name in datasets]
    per_resample = "\n".join(
        f"- {name}: " + ", ".join(f"{run['test acc.']:.3f}" for run in runs
                                  if run["data set"] == name) for name in datasets)
    machines = "; ".join(sorted({run.get("machine") or measured_on for run in runs}))
    note = f"""
Measured on {machines}.
Each data set's resamples (*resample ids*, *commits*: the service's commit for each run; a
part-by-part run spans several): resample 0 is the standard split, resample r > 0 pools
train and test and redraws both with the same sizes and class counts
(`aeon.benchmarking.resampling.stratified_resample_data(random_state=r)`, the tsml-eval scheme).
On each, one training job of the service (`POST /train_model`, engine `auto`, TPOT
`max_time_mins: {budget:g}`, `random_state: 0`) is scored by `POST /serve_prediction` on the
test part, and aeon's `MiniRocketClassifier(random_state=0)` is fitted in the same run.
*(publ.)* means are tsml-eval's published accuracies on the same resample numbers (files and
commits in `bench/published.py`). The published resamples were drawn by the same scheme but
not necessarily from the same code, so compare means, not single resamples: *W/T/L* counts
the resamples where the service's accuracy is above, equal to or below HC2's, for scale only.
*SE* is the standard error of the service's mean over resamples. *ensembles*: jobs whose
final model is an ensemble of candidates; *search: replaced / joined*: jobs where TPOT's
pipeline replaced the baseline, or joined the ensemble; *1st model s*: submission to the
first servable model.

The service's accuracy on each resample, in order:
{per_resample}
"""
    report(args.out, "resamples", "Accuracy averaged over resamples", rows, note,
           figure=_plot(runs, datasets), smoke=args.smoke)
    _write(runs_file, other_budgets + runs)


def _write(path, runs: list[dict]) -> None:
    path.write_text(json.dumps(runs, indent=1, default=str))


def _commit() -> str:
    """The commit the service ran at, with ``+`` when the work tree had changes."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "?"
    return head + ("+" if git("status", "--porcelain", "--untracked-files=no").strip() else "")


def _ranges(ids: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``"0-2, 5"``."""
    ids, parts = sorted(set(ids)), []
    for i in ids:
        if parts and i == parts[-1][1] + 1:
            parts[-1][1] = i
        else:
            parts.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts)


def _se(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def _plot(runs, datasets):
    plt = pyplot()
    figure, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.4),
                                squeeze=False)
    series = (("test acc.", "service (auto)", "tab:blue", "o"),
              ("MiniRocket acc.", "MiniRocket (same run)", "tab:orange", "s"),
              ("MR-Hydra (publ.)", "MR-Hydra (published)", "tab:gray", "^"),
              ("HC2 (publ.)", "HC2 (published)", "tab:green", "v"))
    for axis, name in zip(axes[0], datasets):
        mine = [run for run in runs if run["data set"] == name]
        for key, label, colour, marker in series:
            points = [(run["resample"], run[key]) for run in mine if run.get(key) is not None]
            if points:
                x, y = zip(*points)
                axis.plot(x, y, marker=marker, color=colour, label=label, linewidth=0.8)
                axis.axhline(np.mean(y), color=colour, linewidth=0.6, linestyle="--")
        axis.set_title(name)
        axis.set_xlabel("resample (0 = standard split)")
        axis.set_ylabel("test accuracy")
    axes[0][0].legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    return figure


if __name__ == "__main__":
    main()
