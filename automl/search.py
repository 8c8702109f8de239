"""The search: TPOT looking for a better pipeline than the baseline on the chosen engine's
features, within what the budget leaves it, on a Dask cluster.

``tpot_search`` builds the search (tests inject another factory into ``training.train``),
``searching`` follows it (TPOT has no progress callback, so what it has scored is polled), and
``summary`` says how it spent its time: every pipeline it evaluated, with its model family and
score (the blog post's plot), bounded in size. ``checkpointed`` keeps TPOT's population in the
job's checkpoint, so that a resumed job continues the search rather than starting it again.
"""
from __future__ import annotations

import logging
import pickle
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .budget import Budget
from .candidates import family

log = logging.getLogger(__name__)

MAX_EVALUATED_IN_REPORT = 1_000
POPULATION_FILE = "population.pkl"  # what TPOT keeps in its periodic_checkpoint_folder


def tpot_search(params, cv, seconds: float, space, checkpoint_folder: str | None = None,
                generations_done: int = 0):
    """A ``TPOTClassifier`` with the job's objective, folds and what is left of its budget;
    with ``checkpoint_folder``, it starts from the population there (``generations_done``
    of the job's generations) and rewrites it after each generation."""
    from tpot import TPOTClassifier

    search = params.model.search
    return TPOTClassifier(
        search_space=space, scorers=[search.scoring], cv=cv,
        generations=max(1, search.generations - generations_done),
        population_size=search.population_size,
        max_time_mins=seconds / 60,
        max_eval_time_mins=Budget.eval_seconds(seconds, search.max_eval_time_mins) / 60,
        random_state=search.random_state, verbose=search.verbosity,
        periodic_checkpoint_folder=checkpoint_folder,
    )


@contextmanager
def checkpointed(checkpoint, key: str, every_s: float = 2.0):
    """``(folder, generations_done)`` for a search: a folder for TPOT's
    ``periodic_checkpoint_folder``, holding the population an earlier start of the job saved
    for the same ``key`` (the features and search space it was scored on), and copied into
    the job's ``checkpoint`` each time TPOT rewrites it, with the seconds the job's searches
    have taken up to then (``searched_seconds``). Without a checkpoint, ``(None, 0)``."""
    if checkpoint is None:
        yield None, 0
        return
    with tempfile.TemporaryDirectory(prefix="automl-search-") as folder:
        path = Path(folder) / POPULATION_FILE
        saved = checkpoint.load("search")
        done = 0
        if saved is not None and saved.get("key") == key:
            path.write_bytes(saved["population"])
            done = saved["generations"]
        # An earlier start's search time is the job's, whichever features it searched on.
        earlier_s, began = searched_seconds(saved), time.monotonic()
        stop = threading.Event()

        def mirror():
            copied = path.stat().st_mtime_ns if path.exists() else None
            while not stop.wait(every_s):
                try:
                    stamp = path.stat().st_mtime_ns
                    if stamp == copied:
                        continue
                    population = path.read_bytes()
                    generations = _generations_scored(population)
                    if generations is None:  # mid-write, or nothing scored yet: next time
                        continue
                    checkpoint.save("search", {
                        "key": key, "population": population, "generations": generations,
                        "seconds": earlier_s + time.monotonic() - began})
                    copied = stamp
                except Exception:  # a checkpoint is a saving, never a failure of the search
                    log.warning("the search's checkpoint could not be saved", exc_info=True)

        copier = threading.Thread(target=mirror, name="tpot-checkpoint", daemon=True)
        copier.start()
        try:
            yield folder, done
        finally:
            stop.set()
            copier.join()


def searched_seconds(saved: dict | None) -> float:
    """The seconds a job's searches had taken when ``saved`` (its checkpoint's search part)
    was written: up to their last generation."""
    return float((saved or {}).get("seconds", 0.0))


def _generations_scored(population_file: bytes) -> int | None:
    """The generations a TPOT population file covers, as TPOT counts them when it resumes
    from it; None unless it is whole and has scored at least one pipeline (TPOT writes the
    first generation once before scoring it)."""
    try:
        # TPOT's own file in this process's private folder, or one restored from the checkpoint
        population = pickle.loads(population_file)  # signed by this service, or TPOT's own
        evaluated = population.evaluated_individuals
    except Exception:  # being written as we read it
        return None
    completed = evaluated.get("Completed Timestamp")
    if completed is None or not completed.notna().any():
        return None
    return int(evaluated["Generation"].max()) + 1


@contextmanager
def searching(search, progress, generations: int, every_s: float = 2.0):
    """Report TPOT's progress while it runs."""
    stop = threading.Event()

    def poll():
        while not stop.wait(every_s):
            try:
                evolver = getattr(search, "_evolver_instance", None)
                evaluated = evolver.population.evaluated_individuals if evolver else None
                if evaluated is None or not len(evaluated):
                    continue
                scorer = search.objective_names[0]
                scores = pd.to_numeric(evaluated[scorer], errors="coerce")
                scores = scores[np.isfinite(scores)]
                progress(stage="search", generation=int(evolver.generation),
                         generations=generations, pipelinesEvaluated=int(len(evaluated)),
                         bestScore=round(float(scores.max()), 4) if len(scores) else None)
            except Exception:  # TPOT's internals moved: progress is a nicety, never a failure
                continue

    poller = threading.Thread(target=poll, name="tpot-progress", daemon=True)
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join()


def summary(search, baseline_score: float | None) -> dict:
    """How TPOT spent its budget: pipelines tried, the best CV score per model family, and
    every evaluated pipeline's family and score (at most ``MAX_EVALUATED_IN_REPORT``)."""
    evaluated = getattr(search, "evaluated_individuals", None)
    if evaluated is None:  # not TPOT: a search injected by a test, or one that saw nothing
        return {"scoring": None, "pipelinesEvaluated": 0, "pipelinesScored": 0,
                "generations": 0, "bestScore": None, "bestScoreByFamily": {},
                "baselineScore": baseline_score, "evaluated": []}
    scorer = search.objective_names[0]
    scored = evaluated[evaluated[scorer].notna()]
    families = scored["Instance"].map(family)
    best = scored[scorer].groupby(families).max().sort_values(ascending=False)
    points = [{"family": name, "score": round(float(score), 4), "generation": int(generation)}
              for name, score, generation in zip(families, scored[scorer],
                                                 scored["Generation"])
              if np.isfinite(score)][:MAX_EVALUATED_IN_REPORT]
    return {
        "scoring": scorer,
        "pipelinesEvaluated": int(len(evaluated)),
        "pipelinesScored": int(len(scored)),
        "generations": int(evaluated["Generation"].max() + 1) if len(evaluated) else 0,
        "bestScore": round(float(best.iloc[0]), 4) if len(best) else None,
        "bestScoreByFamily": {name: round(float(score), 4) for name, score in best.items()},
        "baselineScore": baseline_score,
        "evaluated": points,
    }
