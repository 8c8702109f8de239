"""The candidates of one training run, evaluated alike on shared cross-validation folds.

A candidate is an engine (or a join of engines) with a model. Each engine's features are
extracted once and reused by every candidate and fold; every candidate is cross-validated on
the same folds, with tsfresh's feature selection (and its compact set's choice) redone inside
each fold, so the scores are honest and comparable. Each candidate keeps its out-of-fold class
probabilities, which the ensemble is chosen on (``ensemble``) and the report's confusion
matrix and ROC curves are drawn from (``report``).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import get_scorer

from . import engines
from .engines import TSFRESH, CombinedFeatures
from .errors import TrainingFailed, excerpt
from .selection import RelevanceSelector

# A fit on every series is predicted from the CV folds' fits, per series; trees grow a little
# faster than linearly with the series, hence the allowance.
FIT_TIME_ALLOWANCE = 1.5
HELD_OUT_PARTS = 5  # a first model's held-out score: the spread of 5 parts is its error
# Extraction with N worker processes ran 1.3-2x faster than in-process with N = 2.
PROCESS_EFFICIENCY = 0.75
ESTIMATE_SAMPLE_SERIES = 8


class Extraction(NamedTuple):
    """One engine's features, extracted once per job and read by every candidate on it."""

    engine: object          # the fitted feature engine
    matrix: pd.DataFrame    # its features, one row per series in the labels' order
    seconds: float          # how long the extraction took
    nbytes: int             # the matrix's size, what the memory model counts


class TooSlowToFit(Exception):
    """Fitting a cross-validated candidate on every series would outlast the time left."""


@dataclass(eq=False)  # a candidate is itself: equal fields can hold unequal arrays
class Candidate:
    """One engine set with one fitted model, scored by cross-validation."""

    names: tuple[str, ...]
    features: object              # the fitted engine, narrowed to what the model reads
    matrix: pd.DataFrame          # every feature the engines extracted, one row per series
    columns: list                 # the columns of ``matrix`` the model reads
    model: object                 # fitted on those columns of every series
    metrics: dict                 # CV means: score (the job's scoring), accuracy, roc_auc;
                                  # score_se: the standard error of the fold scores
    oof: np.ndarray | None = None  # out-of-fold class probabilities, one row per
                                   # cross-validated series (CandidatePool.rows)
    fold_scores: list = field(default_factory=list)
    selection_fallback: bool = False
    compact: bool = False         # tsfresh's compact feature set (CandidatePool.compacts)
    searched: bool = False        # the model is the TPOT search's best pipeline
    held_out: int = 0             # series a first model was scored on instead of by CV
                                  # (CandidatePool.evaluate_on_held_out); 0: cross-validated

    @property
    def engine(self) -> str:
        return engines.name_of(self.names)

    @property
    def kind(self) -> str:
        return engines.feature_kind(self.names)

    @property
    def prior(self) -> int:
        return engines.prior_rank(self.names)

    @property
    def scores(self) -> tuple:
        """CV score, then CV accuracy; a missing score ranks last."""
        return tuple(-np.inf if self.metrics[k] is None else self.metrics[k]
                     for k in ("score", "accuracy"))

    @property
    def rank(self) -> tuple:
        """CV score, then CV accuracy, then the engine's standing in published comparisons."""
        return (*self.scores, self.prior)

    def selected_matrix(self) -> np.ndarray:
        return self.matrix.to_numpy()[:, self.matrix.columns.get_indexer(self.columns)]

    def summary(self) -> dict:
        return {"engine": self.engine, "compact": self.compact, "searched": self.searched,
                "modelType": family(self.model), "cvScore": self.metrics["score"],
                "cvAccuracy": self.metrics["accuracy"],
                "cvScoreStandardError": self.metrics["score_se"]}


class CandidatePool:
    """Extractions, folds and tsfresh's per-fold selection, shared by a run's candidates.

    Features are extracted for every series, and each candidate's model is fitted on all of
    them; cross-validation runs on the series at ``rows`` (all, or a stratified sample of a
    large upload: ``training_data.cv_rows``), and ``folds`` and the out-of-fold
    probabilities are positions among those rows.

    ``estimate_extraction(name)`` (seconds a full extraction would take) defaults to timing
    a few series; tests inject their own.
    """

    def __init__(self, raw, y: pd.Series, rows: np.ndarray, folds, scoring: str, params,
                 dask_address=None, estimate_extraction=None):
        self.raw, self.y, self.folds, self.scoring, self.params = raw, y, folds, scoring, params
        self.rows = rows
        self.dask_address = dask_address
        self.estimate_extraction_s = estimate_extraction or self._estimate_extraction_s
        self.extracted: dict[str, Extraction] = {}
        self.tried: list[dict] = []
        self.skipped: dict[str, str] = {}
        self.widths: dict[str, float] = {}  # engines given fewer kernels to fit in memory
        self.compact_outcome: dict | None = None
        self._scorers = {name: get_scorer(scoring) for name, scoring in (
            ("score", scoring), ("accuracy", "accuracy"), ("roc_auc", "roc_auc_ovr"))}
        self._selections: dict[bytes, RelevanceSelector] = {}
        self._compacts: dict[bytes, list] = {}

    # -- features ------------------------------------------------------------------------

    def extract(self, names: tuple[str, ...]):
        """The fitted engine(s) and their full feature matrix; each engine is extracted once."""
        for name in names:
            if name not in self.extracted:
                began = time.perf_counter()
                engine = engines.build(name, self.params, self.widths.get(name, 1.0))
                try:
                    matrix = engine.fit_transform(self.raw, self.y, dask_address=self.dask_address)
                except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError,
                        FloatingPointError, np.linalg.LinAlgError) as err:
                    # A calculator or transform that cannot take this data with these
                    # settings: the client's to change, not the service's failure.
                    raise TrainingFailed(
                        f"The {name} features could not be computed on this data with these "
                        f"settings ({type(err).__name__}: {excerpt(str(err), 200)}). Check the "
                        "series and the feature settings, or choose another engine.") from err
                self.extracted[name] = Extraction(engine, matrix, time.perf_counter() - began,
                                                  int(matrix.memory_usage(index=False).sum()))
        if len(names) == 1:
            return self.extracted[names[0]].engine, self.extracted[names[0]].matrix
        parts = [self.extracted[n] for n in names]
        return (CombinedFeatures.from_fitted([p.engine for p in parts]),
                pd.concat([p.matrix for p in parts], axis=1))

    def restore_extraction(self, name: str, engine, seconds: float) -> None:
        """An engine an earlier start of the job fitted (``seconds``: its extraction then),
        its features recomputed by it: the same features its candidates' models were fitted
        on, which a new fit would give only if every engine were deterministic."""
        matrix = engine.transform(self.raw).reindex(self.y.index)
        self.extracted[name] = Extraction(engine, matrix, seconds,
                                          int(matrix.memory_usage(index=False).sum()))

    def extracted_bytes(self) -> dict[str, int]:
        """Bytes of each engine's feature matrix extracted so far (the ensemble may read any)."""
        return {name: extraction.nbytes for name, extraction in self.extracted.items()}

    @property
    def sampled(self) -> bool:
        """Whether cross-validation runs on a sample of the series."""
        return len(self.rows) < len(self.y)

    @property
    def y_cv(self) -> np.ndarray:
        """The labels of the cross-validated series, in the order of the out-of-fold rows."""
        return self.cv_part(self.y.to_numpy())

    def cv_part(self, values: np.ndarray) -> np.ndarray:
        """The rows of ``values`` (one per series) that cross-validation runs on; all of them,
        uncopied, when nothing is sampled."""
        return values[self.rows] if self.sampled else values

    def extract_seconds(self, names) -> float:
        return sum(self.extracted[n].seconds for n in names if n in self.extracted)

    def _estimate_extraction_s(self, name: str) -> float:
        """Seconds a full extraction would take, extrapolated from a few series extracted
        in-process, and divided among the worker processes the extraction would use."""
        from .features import worker_processes  # imports tsfresh: only once it is estimated

        ids = self.y.index[:ESTIMATE_SAMPLE_SERIES]
        column_id = self.params.features.columns.id
        began = time.perf_counter()
        engines.build(name, self.params).fit_transform(
            self.raw[self.raw[column_id].isin(ids)], self.y.loc[ids])
        serial = (time.perf_counter() - began) * len(self.y) / len(ids)
        processes = 0 if self.dask_address else worker_processes(
            self.params.features.n_jobs, len(self.y), serial)
        return serial / (PROCESS_EFFICIENCY * processes) if processes else serial

    # -- candidates ----------------------------------------------------------------------

    def evaluate(self, names, features, matrix, model, compact: bool = False,
                 seconds_left=None) -> Candidate:
        """Cross-validate ``model`` on the engine's features (tsfresh's selection, and the
        compact set's choice, redone in each fold), then fit it on every series.

        ``seconds_left()``, if given, is the time the fit may take: ``TooSlowToFit`` when the
        folds' fits predict more (a large upload's fit can take many times its CV's)."""
        selects = self._selects(names)
        metrics, oof, fold_scores, fit_s_per_series = self._cross_validate(
            model, matrix, selects, compact)
        if seconds_left is not None:
            predicted, left = FIT_TIME_ALLOWANCE * fit_s_per_series * len(self.y), seconds_left()
            if predicted > left:
                raise TooSlowToFit(f"fitting it on all {len(self.y)} series would take about "
                                   f"{predicted:.0f} s of the {max(left, 0):.0f} s left")
        everything = np.arange(len(matrix))
        columns = self._columns(matrix, everything, selects, compact)
        if selects:
            features = features.narrowed(columns)
        fitted = clone(model)
        fit_or_explain(fitted, _values(matrix, columns), self.y.to_numpy())
        serially(fitted)
        fallback = selects and self._selection(everything).fallback_
        candidate = Candidate(tuple(names), features, matrix, columns, fitted, metrics, oof,
                              fold_scores, fallback, compact)
        self.tried.append({**candidate.summary(), "featuresUsed": len(columns),
                           "featuresExtracted": matrix.shape[1],
                           "extractSeconds": round(self.extract_seconds(names), 2)})
        return candidate

    def evaluate_fitted(self, like: Candidate, model) -> Candidate:
        """Score a model fitted elsewhere (the search's best) exactly as ``like`` was, on its
        features; one fitted on a sample is fitted again on every series."""
        metrics, oof, fold_scores, _ = self._cross_validate(model, like.matrix, self._selects(
            like.names), like.compact)
        if self.sampled:
            model = clone(model)
            fit_or_explain(model, like.selected_matrix(), self.y.to_numpy())
            serially(model)
        candidate = Candidate(like.names, like.features, like.matrix, like.columns, model,
                              metrics, oof, fold_scores, like.selection_fallback, like.compact,
                              searched=True)
        self.tried.append({**candidate.summary(), "featuresUsed": len(like.columns),
                           "featuresExtracted": like.matrix.shape[1], "extractSeconds": 0.0})
        return candidate

    def evaluate_on_held_out(self, names, features, matrix, model) -> Candidate:
        """A first model for a large upload, served while its cross-validation runs: fitted
        on the cross-validation sample only and scored on as many series outside it (the
        spread of its score over ``HELD_OUT_PARTS`` parts is the standard error). Fitting
        on every series can take longer than the whole CV; this takes a fraction of it."""
        y = self.y.to_numpy()
        selects = self._selects(names)
        columns = self._columns(matrix, self.rows, selects)
        if selects:
            features = features.narrowed(columns)
        values = _values(matrix, columns)
        fitted = clone(model)
        fit_or_explain(fitted, values[self.rows], y[self.rows])
        serially(fitted)
        held_out = self._held_out_rows()
        scores = {name: [] for name in self._scorers}
        for part in np.array_split(held_out, HELD_OUT_PARTS):
            self._score(fitted, values[part], y[part], scores)
        metrics = {**{name: mean_score(v) for name, v in scores.items()},
                   "score_se": standard_error(scores["score"])}
        return Candidate(tuple(names), features, matrix, columns, fitted, metrics,
                         fold_scores=scores["score"], compact=False, held_out=len(held_out),
                         selection_fallback=bool(selects and self._selection(
                             self.rows).fallback_))

    def _held_out_rows(self) -> np.ndarray:
        """As many series outside the cross-validation sample as are in it (or all there are),
        drawn at random with the job's seed."""
        outside = np.setdiff1d(np.arange(len(self.y)), self.rows)
        rng = np.random.default_rng(self.params.model.search.random_state or 0)
        return np.sort(rng.choice(outside, min(len(outside), len(self.rows)), replace=False))

    def compacts(self, names) -> bool:
        """Whether to try the compact set: for tsfresh alone (a join's kernels are cheap to
        compute anyway), when selection runs and keeps more than the compact set would."""
        if tuple(names) != (TSFRESH,) or not (self.params.selection.enabled
                                              and self.params.selection.compact):
            return False
        everything = np.arange(len(self.y))
        return len(self._compact(everything)) < len(self._selection(everything).selected_)

    def record_compact(self, compact: Candidate, full: Candidate, kept: bool) -> None:
        """What the report says of the compact set: its score against the full set's, and the
        prediction speed-ups it buys (estimated from the cost table)."""
        from . import feature_cost  # imports tsfresh: only once tsfresh ran

        extracted = list(self.extracted[TSFRESH].matrix.columns)
        self.compact_outcome = {
            "kept": kept, "featuresUsed": len(compact.columns),
            "cvScore": compact.metrics["score"], "fullCvScore": full.metrics["score"],
            "fullCvScoreStandardError": full.metrics["score_se"],
        }
        cost = feature_cost.extraction_ms(compact.columns, extracted)
        for name, columns in (("speedupOverRelevant", full.columns),
                              ("speedupOverFullExtraction", extracted)):
            self.compact_outcome[name] = round(
                feature_cost.extraction_ms(columns, extracted) / cost, 1)

    # -- cross-validation ----------------------------------------------------------------

    def _selects(self, names) -> bool:
        return TSFRESH in names and self.params.selection.enabled

    def _cross_validate(self, model, matrix: pd.DataFrame, selects: bool,
                        compact: bool = False) -> tuple[dict, np.ndarray | None, list, float]:
        """Mean fold scores of ``model``, refitted per fold on that fold's selected columns,
        the standard error of the job's score, the out-of-fold probabilities, the fold
        scores, and the seconds its fits took per series. With a Dask scheduler's address,
        the folds are tasks on its workers (the matrix sent once), with the same results."""
        y = self.y_cv
        scores = {name: [] for name in self._scorers}
        n_classes = len(np.unique(y))
        oof = np.full((len(y), n_classes), np.nan)
        values = self.cv_part(matrix.to_numpy())  # once: selecting 50,000 columns by name is slow
        folds = [(None if not selects else matrix.columns.get_indexer(
                      self._columns(matrix, self.rows[train], selects, compact)), train, test)
                 for train, test in self.folds]
        outcomes = (self._folds_on_cluster(model, values, y, folds) if self.dask_address
                    else [fold_outcome(model, values, columns, y, train, test, self._scorers)
                          for columns, train, test in folds])
        failures, fit_seconds = [], []
        for (_, test), (fit_s, fold_scores, proba, failure) in zip(self.folds, outcomes):
            for name, value in fold_scores.items():
                scores[name].append(value)
            if fit_s is not None:
                fit_seconds.append(fit_s)
            if failure is not None:
                failures.append(failure)
            elif proba is not None:
                oof[test] = proba
        if len(failures) == len(self.folds):
            raise TrainingFailed(
                f"{family(model)} could not be fitted and scored on any cross-validation fold "
                f"({excerpt(str(failures[0]), 200)}). Choose arguments that suit "
                f"{len(y)} series (e.g. fewer neighbours), or another model.")
        metrics = {**{name: mean_score(values) for name, values in scores.items()},
                   "score_se": standard_error(scores["score"])}
        return (metrics, (oof if not np.isnan(oof).all() else None), scores["score"],
                float(np.mean(fit_seconds)) if fit_seconds else 0.0)

    def _folds_on_cluster(self, model, values: np.ndarray, y: np.ndarray,
                          folds: list[tuple]) -> list[tuple]:
        """``fold_outcome`` of each fold (its columns, train and test rows), as tasks on the
        cluster at ``dask_address``: the matrix and labels are sent once, read by every fold."""
        from dask.distributed import Client

        with Client(self.dask_address, set_as_default=False) as client:
            shared_values, shared_y = client.scatter([values, y], hash=False)
            return client.gather([
                client.submit(fold_outcome, model, shared_values, columns, shared_y, train, test,
                              self._scorers, pure=False)
                for columns, train, test in folds])

    def _score(self, model, X, y, scores: dict) -> ValueError | None:
        """Append ``model``'s scores on (X, y) to ``scores``; all missing (and the error
        returned) if it cannot score them."""
        values, failed = _scores(model, X, y, self._scorers)
        for name, value in values.items():
            scores[name].append(value)
        return failed

    def _columns(self, matrix: pd.DataFrame, rows: np.ndarray, selects: bool,
                 compact: bool = False) -> list:
        """The columns of ``matrix`` a model fitted on ``rows`` reads: tsfresh's relevant ones
        (as judged on those rows only), or its compact set, and every kernel feature."""
        if not selects:
            return list(matrix.columns)
        tsfresh_columns = set(self.extracted[TSFRESH].matrix.columns)
        kept = set(self._compact(rows) if compact else self._selection(rows).selected_)
        # In the matrix's order: the fitted engine computes its columns in that order.
        return [c for c in matrix.columns if c not in tsfresh_columns or c in kept]

    def _selection(self, rows: np.ndarray) -> RelevanceSelector:
        """tsfresh's relevance test on ``rows``, run once per fold for all candidates."""
        key = rows.tobytes()
        if key not in self._selections:
            tsfresh_matrix = self.extracted[TSFRESH].matrix
            self._selections[key] = RelevanceSelector(self.params.selection.fdr_level).fit(
                tsfresh_matrix.iloc[rows], self.y.to_numpy()[rows])
        return self._selections[key]

    def _compact(self, rows: np.ndarray) -> list:
        """The compact set learned on ``rows`` from the features relevant on them."""
        from . import feature_cost  # imports tsfresh: only once tsfresh ran

        key = rows.tobytes()
        if key not in self._compacts:
            tsfresh_matrix = self.extracted[TSFRESH].matrix
            self._compacts[key] = feature_cost.compact_set(
                tsfresh_matrix.iloc[rows], self.y.to_numpy()[rows],
                self._selection(rows).selected_)
        return self._compacts[key]


def _values(matrix: pd.DataFrame, columns: list) -> np.ndarray:
    values = matrix.to_numpy()
    return values if len(columns) == matrix.shape[1] else \
        values[:, matrix.columns.get_indexer(columns)]


def fold_outcome(model, values: np.ndarray, columns, y: np.ndarray, train: np.ndarray,
                 test: np.ndarray, scorers: dict) -> tuple:
    """One cross-validation fold, here or as a task on a cluster's worker: ``model`` cloned,
    fitted on the ``train`` rows of ``values`` (its ``columns``, or all) and scored on the
    ``test`` rows. (fit seconds per series or None, scores by name, class probabilities or
    None, the ValueError that made it fail or None); a fold the model cannot fit counts as
    missing."""
    X = values if columns is None else values[:, columns]
    fold_model = clone(model)
    began = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fold_model.fit(X[train], y[train])
    except ValueError as err:
        return None, dict.fromkeys(scorers, np.nan), None, err
    fit_s = (time.perf_counter() - began) / len(train)
    scores, failure = _scores(fold_model, X[test], y[test], scorers)
    proba = fold_model.predict_proba(X[test]) if failure is None and hasattr(
        fold_model, "predict_proba") else None
    return fit_s, scores, proba, failure


def _scores(model, X, y, scorers: dict) -> tuple[dict, ValueError | None]:
    """``model``'s score by each scorer on (X, y); all missing, and the error, if it cannot
    score them."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {name: scorer(model, X, y) for name, scorer in scorers.items()}, None
    except ValueError as err:
        return dict.fromkeys(scorers, np.nan), err


def serially(model) -> None:
    """A fitted model as it is served: one thread per prediction (its ``n_jobs`` parameters
    set to 1). Training fits default models with every CPU of its process; the web server's
    requests each predict on their own."""
    try:
        keys = [k for k in model.get_params(deep=True) if k == "n_jobs" or k.endswith("__n_jobs")]
    except (AttributeError, TypeError):
        return
    if keys:
        model.set_params(**dict.fromkeys(keys, 1))


def fit_or_explain(estimator, matrix, y, **kwargs) -> None:
    """Fit, turning what the data or the search cannot do into a 400 that says so."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TPOT warns about every budget setting
            fit = getattr(estimator, "fit_model", None) or estimator.fit
            fit(matrix, y, **kwargs)
    except Exception as err:
        # TPOT raises bare Exceptions when no pipeline survives, scikit-learn ValueErrors on
        # data it cannot fit: the user's to fix. Anything else is ours, and stays a 500.
        if type(err) is not Exception and not isinstance(err, ValueError):
            raise
        raise TrainingFailed(f"No pipeline could be trained on these features "
                             f"({excerpt(str(err), 200)}). Give the search more time or "
                             "series, or pick a fixed model in model_training.model.") from err


def family(pipeline) -> str:
    """The class name of a pipeline's final estimator (``RidgeClassifierProba``...)."""
    steps = getattr(pipeline, "steps", None)
    final = steps[-1][1] if steps else pipeline
    return type(final).__name__


def mean_score(values) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return round(float(np.mean(finite)), 4) if finite else None


def standard_error(values) -> float:
    finite = [v for v in values if np.isfinite(v)]
    if len(finite) < 2:
        return 0.0
    return round(float(np.std(finite, ddof=1) / np.sqrt(len(finite))), 4)
