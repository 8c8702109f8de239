"""Training jobs against their budget: wall time, first servable model, peak memory.

Every job goes through the service's own path, as a client sees it: the app's
``POST /train_model`` with ``Prefer: respond-async``, the job runner, a worker process
(``python -m automl.worker``) with its feature extraction, baseline and TPOT search on a local
Dask cluster. Two series of jobs:

* **budget**: GunPoint's train split (50 series of 150 points), one job per ``--budgets``
  minute value. Wall time is the job's ``finishedAt - startedAt`` against ``max_time_mins``
  (target: overrun under 10 %); first model is from the upload to the first servable
  (provisional) model (target: 15 s).
* **memory**: ``--sizes`` series (default 1,000 and 10,000) of ItalyPowerDemand (24 points
  each), with a ``--memory-budget`` minute budget. Peak memory is the maximum over time of the
  summed RSS of the worker process and all its descendants (TPOT's Dask workers), sampled every
  0.2 s. When a job's feature extraction does not finish within its budget, the same data runs
  once more as a *reference* job without a budget (a fixed model, so no deadline), cancelled as
  soon as its features are extracted: that says how long extraction alone takes, and its peak
  memory, which the budgeted job was stopped before reaching.

    .venv/bin/python bench/training.py [--smoke] [--out DIR] [--budgets MIN ...]
                                       [--sizes N ...] [--memory-budget MIN]
                                       [--reference-limit MIN] [--engine NAME]

``--budgets`` with no value runs the memory jobs only. The default full run takes about 20 min
on 2 shared cores, most of it extracting tsfresh features from 10,000 series.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from datetime import datetime

import numpy as np

from common import (ROOT, arguments, columns_yaml, csv_bytes, load_split, long_format, machine,
                    noisy_copies, pyplot, report, service, train_job)

from automl.params import MAX_CV_SERIES, ModelParams  # importable once common set the path

BUDGET_DATA = "GunPoint"
MEMORY_DATA = "ItalyPowerDemand"
NOISE_SD = 0.05  # ItalyPowerDemand is z-normalised per series: 5 % of a series' spread
SAMPLE_S = 0.2
AFTER_FEATURES = ("baseline", "model", "search", "finishing")  # stages once features exist


# ---------------------------------------------------------------------------------------------
# Parameters: everything a row sends, spelt out


def search_params(budget_mins: float | str, engine: str | None, fc: str | None,
                  cv_series: int | None = None) -> str:
    """A TPOT job bounded by ``budget_mins``.

    ``generations: 1000`` so that the budget, not the generation count, ends the search (with
    the default 5 generations a small data set can finish early and say nothing about overrun).
    """
    return (features_yaml(engine, fc)
            + "model_training:\n"
            + "  model: tpot\n"
            + (f"  cv_series: {cv_series}\n" if cv_series else "")
            + f"  model_args: {{max_time_mins: {_number(budget_mins)}, generations: 1000, "
              "random_state: 0}\n")


def _number(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def reference_params(engine: str | None, fc: str | None) -> str:
    """A fixed model: no budget, so extraction runs to its end (then the job is cancelled)."""
    return (features_yaml(engine, fc)
            + "model_training:\n"
            + "  model: extra_trees\n"
            + "  model_args: {n_estimators: 100, random_state: 0}\n")


def features_yaml(engine: str | None, fc: str | None) -> str:
    """``columns_yaml`` plus the optional engine and tsfresh settings (else the service default)."""
    extra = f"  engine: {engine}\n" if engine else ""
    extra += f"  default_fc_parameters: {fc}\n" if fc else ""
    return columns_yaml(False) + extra


def resolved_features(params_yaml: str) -> dict:
    """What the service makes of the ``extract_features`` section (its defaults filled in)."""
    from automl.params import parse_training_params

    return parse_training_params(params_yaml.encode()).describe_features()


def check_engine(engine: str | None) -> None:
    if not engine:
        return
    try:
        resolved_features(search_params(1, engine, None))
    except Exception as err:  # the key is being built: say so instead of failing every job
        sys.exit(f"training.py: this service refuses 'extract_features.engine: {engine}' "
                 f"({getattr(err, 'message', err)}); run without --engine for the default.")


# ---------------------------------------------------------------------------------------------
# Data


def budget_data(smoke: bool) -> tuple[bytes, bytes, str, int]:
    X, y = load_split(BUDGET_DATA, "train")
    if smoke:
        X, y = X[:20], y[:20]
    raw, labels = long_format(X, y)
    return (csv_bytes(raw), csv_bytes(labels), f"{BUDGET_DATA} train, {len(X)} x {X.shape[-1]}",
            len(X))


def memory_data(series: int) -> tuple[bytes, bytes, str, int]:
    """``series`` ItalyPowerDemand series (``common.noisy_copies``)."""
    X, y, described = noisy_copies(MEMORY_DATA, series, NOISE_SD)
    raw, labels = long_format(X, y)
    return csv_bytes(raw), csv_bytes(labels), described, series


# ---------------------------------------------------------------------------------------------
# Watching the worker processes


class Watcher(threading.Thread):
    """Samples every training process of this service: summed RSS of the worker and all its
    descendants, and when its progress first shows features extracted.

    The job runner (a thread of this process) starts each worker as ``python -m automl.worker
    <job_id>``, a child of this process; the job id comes from its command line.
    """

    def __init__(self, jobs, interval_s: float = SAMPLE_S):
        super().__init__(name="bench-memory", daemon=True)
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.jobs = jobs
        self.interval_s = interval_s
        self.seen: dict[str, dict] = {}
        self.cancel_after_features = False  # for reference jobs
        self.give_up_after_s = float("inf")  # reference jobs: cancel if extraction takes longer
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            for worker in self._workers():
                try:
                    self._sample(*worker)
                except Exception:  # a process or job record gone between two calls
                    continue

    def _workers(self):
        for child in self.me.children():
            try:
                command = child.cmdline()
            except self.psutil.Error:
                continue
            if "automl.worker" in command:
                yield command[-1], child

    def _sample(self, job_id: str, worker) -> None:
        processes = [worker, *worker.children(recursive=True)]
        rss = 0
        for process in processes:
            try:
                rss += process.memory_info().rss
            except self.psutil.Error:
                pass
        job = self.jobs.get(job_id).to_json()
        stage = (job.get("progress") or {}).get("stage")
        seen = self.seen.setdefault(job_id, {"peak": 0, "peakFeatures": 0, "started_s": None,
                                             "featuresDone_s": None, "processes": 0})
        if job.get("progress") and seen["started_s"] is None and job.get("startedEpoch"):
            seen["started_s"] = time.time() - job["startedEpoch"]  # parsed, extracting
        seen["peak"] = max(seen["peak"], rss)
        seen["processes"] = max(seen["processes"], len(processes))
        if stage in AFTER_FEATURES:
            if seen["featuresDone_s"] is None and job.get("startedEpoch"):
                seen["featuresDone_s"] = time.time() - job["startedEpoch"]
                if self.cancel_after_features:
                    self.jobs.cancel(job_id)
        else:
            seen["peakFeatures"] = max(seen["peakFeatures"], rss)
            if (self.cancel_after_features and job.get("startedEpoch") and job["state"] == "running"
                    and time.time() - job["startedEpoch"] > self.give_up_after_s):
                self.jobs.cancel(job_id)


# ---------------------------------------------------------------------------------------------
# One job, one row


def run_job(client, watcher: Watcher, run: str, data: tuple, params_yaml: str,
            budget_s: float | None, reference: bool = False,
            reference_limit_s: float = float("inf")) -> dict:
    raw_csv, labels_csv, description, series = data
    watcher.cancel_after_features = reference
    print(f"{run}: {description} ...", flush=True)
    watcher.give_up_after_s = reference_limit_s if reference else float("inf")
    job = train_job(client, raw_csv, labels_csv, params_yaml)
    watcher.cancel_after_features = False
    time.sleep(2 * SAMPLE_S)  # the last samples of a process that is ending
    seen = watcher.seen.get(job["jobId"], {})
    started = datetime.fromisoformat(job["startedAt"]).timestamp()
    finished = datetime.fromisoformat(job["finishedAt"]).timestamp()
    wall = finished - started
    result = job.get("result") or {}
    features_s, startup_s = seen.get("featuresDone_s"), seen.get("started_s")
    row = {
        "run": run, "data": description, "series": series,
        "budget s": budget_s, "wall s": wall,
        "overrun s": wall - budget_s if budget_s else None,
        "overrun %": 100 * (wall - budget_s) / budget_s if budget_s else None,
        "first model s": job["submittedToFirstModel_s"],
        "start-up s": startup_s,
        # a string: extraction never finished (the job was stopped first)
        "extraction s": (features_s - (startup_s or 0) if features_s is not None
                         else f"> {wall - (startup_s or 0):.1f}"),
        "features ready s": features_s,
        "peak MiB": seen.get("peak", 0) / 2**20 or None,
        "peak in extraction MiB": seen.get("peakFeatures", 0) / 2**20 or None,
        "processes": seen.get("processes"),
        "pipelines": (result.get("search") or {}).get("pipelinesEvaluated"),
        "features": result.get("featuresExtracted"),
        "engine": result.get("engine"),  # the final model's, when the service reports it
        "outcome": outcome(job, reference, features_s is not None),
        "_state": job["state"], "_features_done": features_s is not None,
        "_error": (job.get("error") or {}).get("error"),
    }
    extraction = row["extraction s"]
    print(f"  {row['outcome']}: wall {wall:.1f} s"
          + (f" (budget {budget_s:.0f} s, {row['overrun %']:+.1f} %)" if budget_s else "")
          + f", extraction {extraction if isinstance(extraction, str) else f'{extraction:.1f}'} s"
          + (f", first model {job['submittedToFirstModel_s']:.1f} s"
             if job["submittedToFirstModel_s"] else ", no model")
          + f", peak {row['peak MiB'] or 0:.0f} MiB", flush=True)
    return row


def outcome(job: dict, reference: bool, features_done: bool) -> str:
    if reference:
        if job["state"] != "cancelled":
            return f"reference: {job['state']}"
        return ("reference: cancelled after extraction" if features_done
                else "reference: cancelled, extraction unfinished")
    if job["state"] != "succeeded":
        return f"{job['state']}: {(job.get('error') or {}).get('error')}"
    result = job["result"] or {}
    for flag, words in (("stoppedAtBudget", "stopped at the hard deadline"),
                        ("searchSkipped", "search skipped"),
                        ("keptBaseline", "kept the baseline")):
        if result.get(flag):
            return f"succeeded, {words}"
    return "succeeded, searched model"


# ---------------------------------------------------------------------------------------------
# The figure


def figure(rows: list[dict]):
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    timed = [r for r in rows if r["budget s"]]
    top = max([r["budget s"] for r in timed] + [r["wall s"] for r in timed] + [1]) * 1.1
    xs = np.linspace(0, top, 50)
    left.plot(xs, xs, color="black", lw=1, label="wall = budget")
    left.plot(xs, 1.1 * xs, color="grey", lw=1, ls=":", label="+10 % (target)")
    left.plot(xs, xs + np.maximum(15, 0.1 * xs), color="red", lw=1, ls="--",
              label="hard stop: + max(15 s, 10 %)")
    for kind, marker in (("budget", "o"), ("memory", "s")):
        points = [r for r in timed if r["run"].startswith(kind)]
        if points:
            left.scatter([r["budget s"] for r in points], [r["wall s"] for r in points],
                         marker=marker, zorder=3, label=f"{kind} jobs")
            stacked: dict[float, int] = {}  # points at the same budget: one label under another
            for r in points:
                failed = "" if r["_state"] == "succeeded" else f" ({r['_state']})"
                below = stacked[r["budget s"]] = stacked.get(r["budget s"], -1) + 1
                left.annotate(f"{r['series']:,} series{failed}", (r["budget s"], r["wall s"]),
                              textcoords="offset points", xytext=(6, -10 - 9 * below),
                              fontsize=7)
    left.set_xlim(0, top)
    left.set_ylim(0, top)
    left.set_xlabel("budget (max_time_mins), s")
    left.set_ylabel("job wall time (finishedAt - startedAt), s")
    left.set_title("Wall time against the budget")
    left.legend(fontsize=7, loc="upper left")

    sized = [r for r in rows if r["run"].startswith(("memory", "reference")) and r["peak MiB"]]
    labels = [f"{r['series']:,} series\n" + ("no budget,\nextraction only" if r["run"].startswith(
        "reference") else f"{r['budget s'] / 60:g}-min job") for r in sized]
    positions = np.arange(len(sized))
    right.bar(positions - 0.2, [r["peak MiB"] for r in sized], 0.4, label="whole job")
    right.bar(positions + 0.2, [r["peak in extraction MiB"] or 0 for r in sized], 0.4,
              label="during extraction")
    for x, r in zip(positions, sized):
        right.annotate(f"{r['peak MiB']:,.0f}", (x - 0.2, r["peak MiB"]), ha="center",
                       va="bottom", fontsize=7)
    right.set_xticks(positions, labels, fontsize=8)
    right.set_ylabel("peak RSS, worker + descendants, MiB")
    right.set_title("Peak memory per data size")
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------


COLUMNS = ["run", "data", "budget s", "wall s", "overrun s", "overrun %", "first model s",
           "start-up s", "extraction s", "peak MiB", "peak in extraction MiB", "processes",
           "pipelines", "engine", "features", "outcome"]


def main() -> None:
    args = arguments(__doc__.splitlines()[0],
                     budgets=(float, [1.0, 5.0], "budgets in minutes for the GunPoint jobs"),
                     sizes=(int, [1000, 10000], "series counts for the memory jobs"),
                     memory_budget=(float, 1.0, "budget in minutes of the memory jobs"),
                     reference_limit=(float, 12.0, "minutes after which a reference job whose "
                                                   "extraction is still running is cancelled"),
                     engine=(str, None, "extract_features.engine to send (default: none, the "
                                        "service's default engine)"),
                     cv_series=(int, None, "model_training.cv_series of the memory jobs "
                                           "(default: none, the service's)"))
    smoke = args.smoke
    budgets = [0.25] if smoke else args.budgets
    sizes = [50, 100] if smoke else args.sizes
    memory_budget = 0.25 if smoke else args.memory_budget
    fc = "minimal" if smoke else None  # None: the service's default settings
    check_engine(args.engine)
    # The runner starts `python -m automl.worker` with this environment and working directory:
    # make the package importable from wherever the script is started.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    settings = resolved_features(search_params(1, args.engine, fc))

    rows = []
    with service() as client:
        watcher = Watcher(client.application.extensions["state"].jobs)
        watcher.start()
        try:
            data = budget_data(smoke)
            for budget in budgets:
                rows.append(run_job(client, watcher, f"budget {budget:g} min", data,
                                    search_params(budget, args.engine, fc), budget * 60))
            for series in sizes:
                data = memory_data(series)
                row = run_job(client, watcher, f"memory {series:,}", data,
                              search_params(memory_budget, args.engine, fc, args.cv_series),
                              memory_budget * 60)
                rows.append(row)
                if args.cv_series is None and series > ModelParams.cv_series:
                    # The same job with every series in every fold: what the sample saves.
                    rows.append(run_job(client, watcher, f"memory {series:,}, no CV sample",
                                        data, search_params(memory_budget, args.engine, fc,
                                                            MAX_CV_SERIES),
                                        memory_budget * 60))
                if (row["features ready s"] > row["budget s"] if row["_features_done"]
                        else row["_error"] == "budget_exceeded"):  # extraction outlasted it
                    rows.append(run_job(client, watcher, f"reference {series:,}", data,
                                        reference_params(args.engine, fc), None, reference=True,
                                        reference_limit_s=args.reference_limit * 60))
        finally:
            watcher.stop()

    fc_name = settings.get("default_fc_parameters")
    engine_note = (f"`engine: {args.engine}`" if args.engine else
                   f"no `engine` key (the service's default: {settings.get('engine', 'tsfresh')})")
    note = f"""
Each row is one training job through the service's own path: `POST /train_model` with
`Prefer: respond-async`, the job runner, a worker process (`python -m automl.worker`), run one
at a time. *Wall s* is the job's `finishedAt - startedAt` (worker start-up included); the
overrun target is under 10 %, and the runner stops a job at budget + max(15 s, 10 %).
*First model s* runs from the upload (before the POST) to the first servable model (the
provisional baseline), polled every 0.2 s; the target is 15 s. *Start-up s* runs from the job's
start to the worker's first progress report (process start, imports, parsing the upload);
*extraction s* from then until the progress first shows a stage after feature extraction (the
first engine's, if several are tried; "> N": the job was stopped before extraction ended).
*Peak MiB* is the maximum over time of the summed RSS of the worker process and all its
descendants (TPOT's Dask workers), sampled every {SAMPLE_S} s (shared pages count once per
process, so it leans high); *in extraction* is the same until features were extracted;
*processes* is the most processes seen at once.

* *budget* rows: {BUDGET_DATA}'s train split ({'20' if smoke else '50'} series of 150 points).
* *memory* rows: {MEMORY_DATA} (24 points per series), train and test splits combined (1,096
  series) and subsampled to 1,000 without replacement (seed 0); larger sizes repeat those 1,000
  with Gaussian noise (sd {NOISE_SD}; the series are z-normalised) added to every copy but the
  first, so they are near-duplicates, not new data.
* *reference* rows: the same data as the memory row above, with a fixed model
  (`model: extra_trees`, so no budget and no deadline), cancelled once its features were
  extracted (or after {args.reference_limit:g} min, then "> N"); run only when the budgeted job's
  extraction did not finish within its budget. They say how long extraction alone takes and how
  much memory it needs: the budgeted job was stopped before its extraction peaked.

Parameters of every budgeted job (BUDGET in minutes):

```yaml
{search_params('BUDGET', args.engine, fc).rstrip()}
```
{f"The memory rows also send `cv_series: {args.cv_series}`." if args.cv_series else
 f"*no CV sample* rows: the memory row before them with `cv_series: {MAX_CV_SERIES}`, so every "
 f"series is in every fold (the default, {ModelParams.cv_series:,}, cross-validates larger "
 "uploads on a stratified sample of that many and fits the chosen model on all)."}

Features: {engine_note}; tsfresh settings
`{fc_name}`{' (the service default)' if not fc else ''} (*features*: how many the final model's
engine extracted, when the job ended with a model). TPOT on a local Dask cluster with one worker
per CPU; other work was running on the machine at the same time.

Machine: {machine()}
"""
    public = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
    report(args.out, "training", "Training: wall time against the budget, peak memory", public,
           note, columns=COLUMNS, figure=figure(rows), smoke=smoke)


if __name__ == "__main__":
    main()
