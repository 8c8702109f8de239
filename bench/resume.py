"""What a job's checkpoint costs and saves: the bytes and seconds of checkpointing a training's
candidates, and a resumed start's time to take them up against the time they took to make.

Per size, ``--sizes`` series of ItalyPowerDemand (24 points, repeated with noise past 1,096;
``common.noisy_copies``) go through the service's own parser and ``training.train`` with a
checkpoint in a directory store, with ``extract_features.engine`` ``--engine`` and a
``--budget``-minute search. Each run is stopped as its search starts, as a process killed
then would be: every candidate is evaluated and checkpointed by then. A second run on the
same checkpoint resumes and is stopped at the same point.

Figures: the first run's time to its search (*made*), the checkpoint's size and the time its
saves took, the resumed run's time to the same point (*resumed*) and *resumed / made*
(target: well under 1; a resumed run recomputes the features with the engines it saved, but
cross-validates nothing again). It also checks that both runs chose the same engine with the
same CV score.

    .venv/bin/python bench/resume.py [--smoke] [--out DIR] [--sizes N ...] [--engine NAME]
                                     [--budget MIN]
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import arguments, columns_yaml, machine, noisy_copies, parsed_upload, pyplot, report

from automl.backends import DirectoryBackend  # importable once common set the path
from automl.checkpoints import JobCheckpoint
from automl.store import ModelStore
from automl.training import train

DATA = "ItalyPowerDemand"
NOISE_SD = 0.05


class SearchStarted(BaseException):
    """Stops a run as its search starts, as a kill would (nothing in training catches it)."""


class TimedCheckpoint(JobCheckpoint):
    """A job's checkpoint that adds up the seconds its saves take."""

    save_seconds = 0.0

    def save(self, part, value):
        began = time.perf_counter()
        try:
            return super().save(part, value)
        finally:
            self.save_seconds += time.perf_counter() - began


def stopped_at_search(*args, **kwargs):
    raise SearchStarted


def run_until_search(raw, labels, params, checkpoint) -> tuple[float, dict]:
    """Seconds until the search starts, and the progress heard last (its choice)."""
    heard: dict = {}
    began = time.perf_counter()
    try:
        train(raw, labels, params, checkpoint=checkpoint, search=stopped_at_search,
              progress=lambda **fields: heard.update(fields))
    except SearchStarted:
        pass
    return time.perf_counter() - began, heard


def measure(series: int, engine: str, budget_mins: float) -> dict:
    X, y, described = noisy_copies(DATA, series, NOISE_SD)
    params, raw, labels = parsed_upload(X, y, (
        columns_yaml(False) + f"  engine: {engine}\n"
        f"model_training: {{model: tpot, model_args: {{max_time_mins: {budget_mins}, "
        "random_state: 0}}\n"))
    with tempfile.TemporaryDirectory() as folder:
        backend = DirectoryBackend(Path(folder))
        store = ModelStore(backend, secret=b"bench" * 8)
        first = TimedCheckpoint(backend, store, "0000000001bench0")
        made_s, _ = run_until_search(raw, labels, params, first)
        stored = sum((Path(folder) / key).stat().st_size
                     for key in backend.keys(f"job-checkpoints/{first.job_id}"))
        again = TimedCheckpoint(backend, store, first.job_id)
        resumed_s, _ = run_until_search(raw, labels, params, again)
        restored = again.load("run")
    return {"data": described, "engine": engine, "parts": len(restored["parts"]),
            "made (s)": round(made_s, 1), "checkpoint (MB)": round(stored / 2**20, 1),
            "saving (s)": round(first.save_seconds, 2), "resumed (s)": round(resumed_s, 1),
            "resumed / made": round(resumed_s / made_s, 3)}


def figure(rows: list[dict]):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [f"{row['data'].split(',')[1].split('x')[0].strip()} series" for row in rows]
    positions = range(len(rows))
    ax.bar([p - 0.2 for p in positions], [r["made (s)"] for r in rows], 0.4,
           label="candidates made")
    ax.bar([p + 0.2 for p in positions], [r["resumed (s)"] for r in rows], 0.4,
           label="taken up from the checkpoint")
    ax.set_xticks(list(positions), labels)
    ax.set_ylabel("seconds until the search starts")
    ax.legend()
    fig.tight_layout()
    return fig


def main() -> None:
    args = arguments(__doc__.splitlines()[0], sizes=(int, [1_000, 10_000], "series per run"),
                     engine=(str, "auto", "extract_features.engine"),
                     budget=(float, 5.0, "max_time_mins of each run"))
    sizes, engine = ([60], "minirocket") if args.smoke else (args.sizes, args.engine)
    rows = []
    for series in sizes:
        row = measure(series, engine, args.budget)
        print(row, flush=True)
        rows.append(row)
    report(args.out, "resume", "Resuming a job from its checkpoint", rows, f"""
Each run is stopped as its search starts, with every candidate evaluated and checkpointed; a
second run on the same checkpoint takes them up and is stopped at the same point. *made*: the
first run's seconds to its search; *resumed*: the second's. *saving*: the seconds the first
run's checkpoint writes took (included in *made*). Directory store on local disk;
{machine()}.""", figure=figure(rows), smoke=args.smoke)


if __name__ == "__main__":
    main()
