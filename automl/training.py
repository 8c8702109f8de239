"""One training run, stage by stage: check the data, evaluate the candidate engines on shared
folds, choose among them (and ensemble them), search for a better pipeline, report.

Nothing here knows about HTTP or jobs; a training process (``worker``) calls ``train``. The
stages live in their own modules: ``training_data`` (checks, folds), ``candidates`` (features
and cross-validation), ``choice`` (the rules), ``ensemble``, ``search`` (TPOT) and ``report``.
"""
from __future__ import annotations

import copy
import logging
import time
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd

from . import engines, memory
from .budget import MIN_SEARCH_S, Budget
from .candidates import Candidate, CandidatePool, TooSlowToFit, fit_or_explain
from .choice import beats, choice_of_engine, prefer_compact
from .classifier import TimeSeriesClassifier
from .compute import dask_client_starting, default_job_memory_mb
from .engines import TSFRESH
from .ensemble import Selection, select
from .errors import TrainingFailed
from .estimators import build as build_fixed_estimator
from .params import AUTO_ENGINE, TrainingParams
from .report import finished, one_series_ms
from .search import checkpointed, searched_seconds, searching, summary, tpot_search
from .search_spaces import search_space
from .training_data import cv_rows, cv_splitter, matched_training_data

log = logging.getLogger(__name__)

# The parts of a job's checkpoint (``checkpoints``) that name an engine or a candidate.
ENGINE_PART, CANDIDATE_PART, STAND_IN_PART = "engine-", "candidate-", "stand-in-"

SEARCH_SKIPPED = "feature extraction used the time budget; raise max_time_mins to search"
NOTHING_BETTER = ("the search found nothing better in cross-validation than the baseline "
                  "plus one standard error")
# In auto, tsfresh is skipped when a sample predicts its extraction would take more than this
# share of the time left.
TSFRESH_TIME_SHARE = 0.5
# An explicit tsfresh job fails at once when a sample predicts its extraction would take this
# many times the whole budget: a sample of 8 series is a rough guide, so borderline jobs run.
HOPELESS_FACTOR = 1.5


def _ignore(**_):
    pass


def train(raw: pd.DataFrame, labels: pd.Series, params: TrainingParams, *,
          deadline: float | None = None, progress=_ignore, publish_provisional=None,
          dask_address: str | None = None, job_memory_mb: int | None = None,
          search=tpot_search, estimate_extraction=None, checkpoint=None
          ) -> tuple[TimeSeriesClassifier, dict]:
    """Return the fitted classifier and the report the API answers with (minus ``modelId``).

    Each engine's features are extracted once; every candidate (engine x default model) is
    cross-validated on them, with tsfresh's feature selection redone inside each fold so that
    all candidates are scored honestly and alike. The engines' choice is the baseline; with a
    search, an ensemble of the candidates chosen on their out-of-fold probabilities may take
    its place, and TPOT then tries to beat it on the chosen engine's features.

    ``deadline`` (a ``time.time()``) bounds the job; by default it is its budget from now.
    ``job_memory_mb`` bounds its features (``memory``); by default the instance's memory.
    ``progress(**fields)`` hears each stage; ``publish_provisional(classifier, report)``
    receives each better model found before the end, so it can be served meanwhile.
    ``checkpoint`` (a ``checkpoints.JobCheckpoint``) keeps what the run has done, and what
    an earlier start of the same job kept there is taken up instead of done again.
    ``search(params, cv, seconds, space, checkpoint_folder=, generations_done=)`` builds the
    search (TPOT), and ``estimate_extraction(engine)`` predicts an extraction's seconds:
    seams for tests.
    """
    run = _Run(raw, labels, params, deadline, progress, publish_provisional, dask_address,
               estimate_extraction, job_memory_mb, checkpoint)
    run.resume()
    with ExitStack() as cluster:
        get_client = None

        def start_cluster():
            if run.searching and get_client is None and \
                    run.budget.search_seconds(run.deadline) >= MIN_SEARCH_S:
                return cluster.enter_context(
                    dask_client_starting(params.model.search.n_jobs, dask_address))
            return get_client

        if run.best is not None:  # a resumed run: it may have nothing left to evaluate
            get_client = start_cluster()
        for names in run.engine_sets():
            if run.best is not None and run.budget.in_reserve(run.deadline):
                run.pool.skipped[engines.name_of(names)] = "the time budget ran out"
                continue
            run.evaluate(names)
            # A first model is served: start the search's cluster while the rest is tried.
            get_client = start_cluster()
        if not run.searching:
            return run.finish()
        run.ensemble()
        if get_client is None or run.budget.search_seconds(run.deadline) < MIN_SEARCH_S:
            return run.finish(searchSkipped=SEARCH_SKIPPED)
        return run.search(get_client, search)


class _Run:
    """The state of one training run between its stages."""

    def __init__(self, raw, labels, params, deadline, progress, publish, dask_address,
                 estimate_extraction, job_memory_mb=None, checkpoint=None):
        self.started = time.perf_counter()
        self.params, self.progress, self.publish = params, progress, publish
        self.searching = params.model.searching
        self.budget = Budget.of(params)
        self.deadline = deadline if deadline is not None else self.budget.deadline(time.time())
        raw, labels = matched_training_data(raw, labels, params)
        self.classifier = TimeSeriesClassifier(positive_class=params.model.positive_class)
        y = self.classifier.fit_labels(labels)
        rows = cv_rows(y.to_numpy(), params)
        self.cv = cv_splitter(y.iloc[rows], params)
        folds = list(self.cv.split(np.zeros(len(rows)), y.to_numpy()[rows]))
        scoring = params.model.search.scoring if self.searching else "accuracy"
        self.pool = CandidatePool(raw, y, rows, folds, scoring, params, dask_address,
                                  estimate_extraction)
        self.panel = memory.panel_of(raw, params, len(y))
        self.job_memory_mb = job_memory_mb or default_job_memory_mb(1)
        self.scored: dict[str, Candidate] = {}      # each engine set on all its features
        self.stand_ins: dict[str, Candidate] = {}   # tsfresh's compact set, serving instead
        self.baseline: Candidate | None = None      # the engines' choice
        self.selection: Selection | None = None     # the ensemble, when it beats the baseline
        self.best: Candidate | Selection | None = None
        self.stage_seconds: dict[str, float] = {}
        self.checkpoint = checkpoint
        self.checkpointed: list[str] = []       # its parts that do not change, as written
        self.resumed: dict | None = None          # what was taken up from an earlier start
        self._prediction_costs: dict[tuple, tuple] = {}  # within_prediction_cost's timings

    @contextmanager
    def stage(self, name: str, **fields):
        self.progress(stage=name, **fields)
        began = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[name] = self.stage_seconds.get(name, 0.0) + (
                time.perf_counter() - began)

    # -- the candidates ------------------------------------------------------------------

    def engine_sets(self):
        """The engine sets to try, cheapest first: kernels take seconds, tsfresh can take
        minutes."""
        engine = self.params.features.engine
        if engine != AUTO_ENGINE:
            names = engine if isinstance(engine, tuple) else (engine,)
            if engines.name_of(names) in self.scored:  # taken up from an earlier start
                return
            if not self._sized_to_fit(names):
                memory.refuse_what_cannot_fit(self.params, self.panel, self.job_memory_mb)
            if TSFRESH in names:
                self._refuse_hopeless_extraction()
            yield names
            return
        pool = self.pool
        for names in engines.auto_candidates():
            name = engines.name_of(names)
            if name in self.scored:  # taken up from an earlier start
                continue
            if not self._sized_to_fit(names):
                pool.skipped[name] = (
                    f"its features for {self.panel.series} series, and a model fitted on "
                    f"them, would not fit the {self.job_memory_mb} MiB a training may use "
                    "(AUTOML_JOB_MEMORY_MB)")
                continue
            if TSFRESH in names and TSFRESH not in pool.extracted:
                if TSFRESH in pool.skipped:
                    pool.skipped[name] = pool.skipped[TSFRESH]
                    continue
                self.progress(stage="features", engine=TSFRESH, estimating=True)
                estimate = pool.estimate_extraction_s(TSFRESH)
                left = self.deadline - time.time()
                if estimate > TSFRESH_TIME_SHARE * left:
                    pool.skipped[name] = (f"extraction would take about {estimate:.0f} s of the "
                                          f"{left:.0f} s left")
                    continue
            yield names

    def _sized_to_fit(self, names) -> bool:
        """Whether the engine set fits the job's memory beside what is extracted already,
        giving a single engine fewer kernels (``pool.widths``) where that makes it fit."""
        width = memory.width_for(names, self.panel, self.pool.extracted_bytes(),
                                 self.job_memory_mb * memory.MIB)
        if width is not None and width < 1.0:
            self.pool.widths[names[0]] = width
        return width is not None

    def _refuse_hopeless_extraction(self) -> None:
        """Fail at once, with advice, when tsfresh alone would clearly outlast the whole
        budget, rather than after it (the job would be stopped at the budget with no model)."""
        self.progress(stage="features", engine=TSFRESH, estimating=True)
        estimate = self.pool.estimate_extraction_s(TSFRESH)
        left = self.deadline - time.time()
        if estimate > HOPELESS_FACTOR * left:
            raise TrainingFailed(
                f"tsfresh's extraction of {len(self.pool.y)} series would take about "
                f"{estimate:.0f} s, more than the whole budget of {left:.0f} s (max_time_mins). "
                "Raise max_time_mins, pick cheaper tsfresh settings (default_fc_parameters: "
                "minimal), or use extract_features.engine: minirocket or auto, which take "
                "seconds.")

    def evaluate(self, names) -> None:
        self._evaluate(names)
        self.save_checkpoint()

    def _evaluate(self, names) -> None:
        name = engines.name_of(names)
        with self.stage("features", engine=name):
            features, matrix = self.pool.extract(names)
        model = self._model_for(names)
        if self.best is None and self.pool.sampled and self.searching and self.publish:
            # Served until the CV below ends: fitting on every series of a large upload can
            # take longer than the CV itself, and a client waits for a first model.
            with self.stage("first model", engine=name):
                self._serve(self.pool.evaluate_on_held_out(names, features, matrix, model))
        # Once a cross-validated model is served, a candidate whose fit on every series would
        # run into the reserve is left out rather than overrun the budget.
        within_budget = partial(self.budget.search_seconds, self.deadline)
        with self.stage("baseline", engine=name):
            try:
                candidate = self.pool.evaluate(
                    names, features, matrix, model,
                    seconds_left=None if self.baseline is None else within_budget)
            except TooSlowToFit as slow:
                self.pool.skipped[name] = str(slow)
                return
            self.scored[name] = candidate
            self._choose()
        if self.pool.compacts(names):
            with self.stage("compact", engine=name):
                try:
                    compact = self.pool.evaluate(names, features, matrix, model, compact=True,
                                                 seconds_left=within_budget)
                except TooSlowToFit:
                    return  # the full set stands
                kept = prefer_compact(compact, candidate)
                self.pool.record_compact(compact, candidate, kept)
                if kept:
                    self.stand_ins[name] = compact
                    self._choose()

    def _model_for(self, names):
        if self.searching:
            return engines.default_model(names, len(self.pool.y),
                                         self.params.model.search.random_state or 0)
        return build_fixed_estimator(self.params.model.model, self.params.model.estimator_args)

    def _choose(self) -> None:
        """The engines' choice so far (served meanwhile). A compact set only stands in for its
        full set, never competes on its own score: one more score to pick from would only add
        selection noise."""
        chosen = choice_of_engine(list(self.scored.values()))
        self.baseline = self.stand_ins.get(chosen.engine, chosen)
        self._serve(self.baseline)

    def _serve(self, best) -> None:
        if best is self.best:
            return
        self.best = best
        if self.searching and self.publish:
            self.publish(*self.finish(provisional=True))

    # -- the checkpoint ------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """What the run has done, for another start of its job: each engine and candidate
        once, then the index naming them (so it never names a part not yet written)."""
        if self.checkpoint is None:
            return
        # Without their matrices, the bulk: a resumed run recomputes them.
        parts = {**{f"{ENGINE_PART}{name}": (extraction.engine, extraction.seconds)
                    for name, extraction in self.pool.extracted.items()},
                 **{f"{CANDIDATE_PART}{name}": c for name, c in self.scored.items()},
                 **{f"{STAND_IN_PART}{name}": c for name, c in self.stand_ins.items()}}
        for part, value in parts.items():
            if part in self.checkpointed:
                continue
            if isinstance(value, Candidate):
                value = replace(value, matrix=None)
            if not self.checkpoint.save(part, value):
                return
            self.checkpointed.append(part)
        pool = self.pool
        self.checkpoint.save("run", {
            "parts": self.checkpointed, "tried": pool.tried, "skipped": pool.skipped,
            "widths": pool.widths, "compact": pool.compact_outcome,
            "stageSeconds": self.stage_seconds})

    def resume(self) -> None:
        """Take up what an earlier start of this job saved: its engines (their features
        recomputed), its candidates' cross-validation, what it skipped and why. Its choice
        was served by that start already, so nothing is published again until it changes."""
        saved = self.checkpoint.load("run") if self.checkpoint is not None else None
        if saved is None:
            return
        with self.stage("resuming"):
            parts = {part: self.checkpoint.load(part) for part in saved["parts"]}
            if any(value is None for value in parts.values()):
                log.warning("the checkpoint lacks parts it names; the training starts over")
                return
            pool = self.pool
            for part, value in parts.items():
                if part.startswith(ENGINE_PART):
                    pool.restore_extraction(part.removeprefix(ENGINE_PART), *value)
            for prefix, found in ((CANDIDATE_PART, self.scored), (STAND_IN_PART, self.stand_ins)):
                for part, candidate in parts.items():
                    if part.startswith(prefix):
                        candidate.matrix = pool.extract(candidate.names)[1]
                        found[part.removeprefix(prefix)] = candidate
            pool.tried, pool.skipped, pool.widths = \
                saved["tried"], saved["skipped"], saved["widths"]
            pool.compact_outcome = saved["compact"]
            self.checkpointed = list(parts)  # in the order written: the order evaluated
        # The stages' times are the job's, over all its starts; the searches' up to their last
        # generation, which the search's part records (the run's is written before a search).
        resuming_s = self.stage_seconds.pop("resuming")
        self.stage_seconds = {**saved["stageSeconds"]}
        self.stage_seconds["resuming"] = self.stage_seconds.get("resuming", 0.0) + resuming_s
        searched_s = searched_seconds(self.checkpoint.load("search"))
        if searched_s:
            self.stage_seconds["search"] = searched_s
        if self.scored:
            chosen = choice_of_engine(list(self.scored.values()))
            self.baseline = self.best = self.stand_ins.get(chosen.engine, chosen)
        self.resumed = {"candidatesRestored": sorted(self.scored),
                        "enginesRestored": sorted(pool.extracted)}

    # -- the ensemble --------------------------------------------------------------------

    def ensemble(self, extra: list[Candidate] = ()) -> None:
        """The ensemble of the candidates (the baseline first, then by preference), served
        in the baseline's place."""
        if not self.params.model.ensemble_cost:
            return
        with self.stage("ensemble"):
            selection = select(self.ensemble_order(extra), self.pool.y_cv, self.pool.folds,
                               self.pool.scoring, keep=self.within_prediction_cost)
        if selection is None or len(selection.members) < 2:
            return
        # Served whenever it exists. Gating it on the baseline's CV score (ROC AUC by default)
        # kept less accurate single engines on PigCVP: CAWPE weighs by accuracy, and its
        # nested estimate is fitted on fewer rows (docs/benchmarks.md, "Ensemble rules").
        self.selection = selection
        self._serve(selection)

    def ensemble_order(self, extra: list[Candidate] = ()) -> list[Candidate]:
        """The candidates in the order the ensemble considers them: the baseline first, then
        by published standing, then by CV score. One place, so the benchmarks order them as a
        job does."""
        return sorted(list(self.scored.values()) + list(extra),
                      key=lambda c: (c is not self.baseline, -c.prior, tuple(-s for s in c.scores)))

    def within_prediction_cost(self, heaviest: list[Candidate]) -> list[Candidate]:
        """Of ``heaviest`` (in weight order), those kept while the ensemble's one-series
        prediction stays within ``ensemble_cost`` times the baseline's: tsfresh's per-call
        machinery alone can cost 20x a kernel engine's prediction.

        An ensemble's cost is the baseline's plus what each other member adds to it, each
        timed once: steadier than timing every trial ensemble afresh, which chose different
        members in two runs on the same data as one fell either side of the limit by noise."""
        baseline_ms = self._prediction_ms(self.baseline)
        limit = self.params.model.ensemble_cost * baseline_ms
        kept: list[Candidate] = []
        total_ms = baseline_ms  # counted whether or not the baseline is a member: a bound
        for candidate in heaviest:
            added_ms = 0.0 if candidate is self.baseline else self._prediction_ms(candidate)
            if total_ms + added_ms <= limit:
                kept.append(candidate)
                total_ms += added_ms
        return kept

    def _prediction_ms(self, candidate: Candidate) -> float:
        """The baseline's one-series prediction time, or what ``candidate`` adds to it in an
        ensemble of the two (its engine's features, its model); measured once per pair."""
        key = (id(self.baseline), id(candidate))  # the objects are kept alive with the timing
        if key not in self._prediction_costs:
            if candidate is self.baseline:
                ms = one_series_ms(self.pool, self.classifier, candidate, repeats=5)
            else:
                pair = Selection([self.baseline, candidate], [1.0, 1.0], {}, None, 2, [1.0, 1.0])
                both = one_series_ms(self.pool, self.classifier, pair, repeats=5)
                ms = max(0.0, both - self._prediction_ms(self.baseline))
            self._prediction_costs[key] = (self.baseline, candidate, ms)
        return self._prediction_costs[key][2]

    # -- the search ----------------------------------------------------------------------

    def search(self, get_client, make_search):
        params, baseline = self.params, self.baseline
        client = get_client()  # waits if the cluster is still starting
        self.save_checkpoint()  # with the ensemble's stage time, for a start after this one
        search_s = self.budget.search_seconds(self.deadline)
        if search_s < MIN_SEARCH_S:
            return self.finish(searchSkipped=SEARCH_SKIPPED)
        with self.stage("search", engine=baseline.engine, searchSeconds=round(search_s, 1)):
            # The columns selected on every series, of the cross-validated ones: the search
            # scores pipelines by CV, and its best is fitted on every series afterwards.
            matrix = self.pool.cv_part(baseline.selected_matrix())
            space = search_space(params.model.search.search_space, baseline.kind,
                                 n_classes=len(self.classifier.classes_),
                                 n_samples=matrix.shape[0], n_features=matrix.shape[1],
                                 random_state=params.model.search.random_state)
            searched = copy.copy(self.classifier)
            # A population saved by an earlier start is valid only on the same features.
            key = f"{baseline.engine}:{params.model.search.search_space}:{matrix.shape}"
            with checkpointed(self.checkpoint, key) as (folder, done):
                if done:
                    self.resumed = {**(self.resumed or {}), "searchGenerationsRestored": done}
                searched.set_params(model=make_search(
                    params, self.cv, search_s, space, checkpoint_folder=folder,
                    generations_done=done))
                try:
                    fit_or_explain(searched, matrix, self.pool.y_cv, client=client,
                                   watch=partial(searching, progress=self.progress,
                                                 generations=params.model.search.generations))
                except TrainingFailed as failed:  # e.g. nothing evaluated in time: the baseline
                    return self.finish(search={"outcome": "failed"},  # stands
                                       keptBaseline=f"the search failed: {failed.message}")
        found = summary(searched.search_, baseline.metrics["score"])
        with self.stage("finishing"):
            return self._after_search(searched.model_, found)

    def _after_search(self, pipeline, found: dict):
        # Its own CV (the same folds; on tsfresh's features, if anything optimistic) must
        # clear the bar first: no need to spend the reserve re-scoring it otherwise.
        if not beats(found["bestScore"], self.baseline):
            return self.finish(search={**found, "outcome": "kept the baseline"},
                               keptBaseline=NOTHING_BETTER)
        try:
            candidate = self.pool.evaluate_fitted(self.baseline, pipeline)
        except TrainingFailed as failed:  # its pipeline cannot be re-scored or cannot predict
            return self.finish(search={**found, "outcome": "kept the baseline"},
                               keptBaseline=f"the search's best pipeline failed: {failed.message}")
        if not beats(candidate.metrics["score"], self.baseline):
            return self.finish(search={**found, "outcome": "kept the baseline"},
                               keptBaseline=NOTHING_BETTER)
        previous = self.baseline
        self.baseline = candidate
        self.selection = None
        self.ensemble(extra=[candidate])
        joined = self.selection is not None and candidate in self.selection.members
        if self.selection is None:
            self._serve(candidate)
        return self.finish(search={**found, "outcome": "joined the ensemble" if joined
                                   else "replaced the baseline"}, baseline=previous.summary())

    # -- the end -------------------------------------------------------------------------

    def finish(self, provisional: bool = False, **extra):
        """The servable classifier and report of what is best now."""
        return finished(self.pool, self.classifier, self.best, self.started,
                        self.stage_seconds, provisional=provisional,
                        budgetSeconds=round(self.budget.seconds, 1), resumed=self.resumed,
                        **extra)


def evaluate_candidates(raw: pd.DataFrame, labels: pd.Series, params: TrainingParams,
                        deadline: float | None = None, job_memory_mb: int | None = None
                        ) -> _Run:
    """A run's candidates only: every engine set extracted and its default model
    cross-validated, as ``train`` does before its ensemble and search. The run's ``scored``,
    ``baseline``, ``pool`` and ``classifier`` are what ``bench/ensemble_rules.py`` compares
    ensemble rules on."""
    run = _Run(raw, labels, params, deadline, _ignore, None, None, None, job_memory_mb)
    for names in run.engine_sets():
        run.evaluate(names)
    return run
