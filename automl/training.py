"""One training run: check the data, extract features, search a model, measure it.

Nothing here knows about HTTP or jobs; a training process (``worker``) calls ``train``.
"""
from __future__ import annotations

import copy
import threading
import time
import warnings
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from functools import partial

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import StratifiedKFold

from . import engines, feature_cost, models
from .classifier import TimeSeriesClassifier
from .budget import MIN_SEARCH_S, Budget
from .compute import dask_client_starting
from .engines import TSFRESH, CombinedFeatures, feature_kind
from .errors import InvalidData, InvalidParameters, TrainingFailed, excerpt
from .features import worker_processes
from .estimators import build as build_fixed_estimator
from .params import AUTO_ENGINE, TrainingParams
from .search_spaces import search_space
from .selection import RelevanceSelector



def _ignore(**_):
    pass


def train(raw: pd.DataFrame, labels: pd.Series, params: TrainingParams, *,
          deadline: float | None = None, progress=_ignore, publish_provisional=None,
          dask_address: str | None = None) -> tuple[TimeSeriesClassifier, dict]:
    """Return the fitted classifier and the report the API answers with (minus ``modelId``).

    Each engine's features are extracted once; every candidate (engine x default model) is
    cross-validated on them, with tsfresh's feature selection redone inside each fold so that
    all candidates are scored honestly and alike. The best one is the baseline; a search (TPOT)
    then tries to beat it on the best engine's features and is kept only if it does.

    ``deadline`` (a ``time.time()``) bounds the job; by default it is its budget from
    now. ``progress(**fields)`` hears each stage; ``publish_provisional(classifier, report)``
    receives each better candidate found before the search, so it can be served meanwhile.
    """
    started = time.perf_counter()
    searching = params.model.searching
    budget = Budget.of(params)
    if deadline is None:
        deadline = budget.deadline(time.time())
    raw, labels = matched_training_data(raw, labels, params)
    cv = _cv_splitter(labels, params)
    classifier = TimeSeriesClassifier(positive_class=params.model.positive_class)
    y = classifier.fit_labels(labels)
    scoring = params.model.search.scoring if searching else "accuracy"
    trial = _Trial(raw, y, cv, scoring, params, classifier, started, dask_address)

    def model_for(kind):
        if searching:
            return models.baseline(kind, len(labels), params.model.search.random_state or 0)
        return build_fixed_estimator(params.model.model, params.model.estimator_args)

    scored: dict[str, _Candidate] = {}      # each engine (set) on all its features
    stand_ins: dict[str, _Candidate] = {}   # tsfresh's compact set, where it serves instead

    def choose() -> None:
        """Make the engines' choice so far the best (and serve it meanwhile). A compact set
        only stands in for its full set, never competes on its own score: one more score to
        pick from would only add selection noise."""
        chosen = choice_of_engine(list(scored.values()))
        chosen = stand_ins.get(chosen.engine, chosen)
        if chosen is trial.best:
            return
        trial.best = chosen
        if searching and publish_provisional:
            publish_provisional(*trial.finished(chosen, provisional=True))

    with ExitStack() as cluster:
        get_client = None
        for names in _candidate_engines(params, len(labels), trial, deadline, progress):
            if trial.best is not None and budget.in_reserve(deadline):
                trial.skipped["+".join(names)] = "the time budget ran out"
                continue
            progress(stage="features", engine="+".join(names))
            features, matrix = trial.extract(names)
            progress(stage="baseline", engine="+".join(names))
            model = model_for(feature_kind(names))
            candidate = trial.evaluate(names, features, matrix, model)
            scored[candidate.engine] = candidate
            choose()
            if trial.compacts(names):
                progress(stage="compact", engine="+".join(names))
                compact = trial.evaluate(names, features, matrix, model, compact=True)
                if trial.prefer_compact(compact, over=candidate):
                    stand_ins[candidate.engine] = compact
                    choose()
            if searching and get_client is None and budget.search_seconds(deadline) >= MIN_SEARCH_S:
                # A first model is served: start the search's cluster while the rest is tried.
                get_client = cluster.enter_context(
                    dask_client_starting(params.model.search.n_jobs, dask_address))

        best = trial.best
        if not searching:
            return trial.finished(best)
        if get_client is None or budget.search_seconds(deadline) < MIN_SEARCH_S:
            return trial.finished(best, searchSkipped=SEARCH_SKIPPED)
        client = get_client()  # waits if the cluster is still starting
        search_s = budget.search_seconds(deadline)
        if search_s < MIN_SEARCH_S:
            return trial.finished(best, searchSkipped=SEARCH_SKIPPED)
        progress(stage="search", engine=best.engine, searchSeconds=round(search_s, 1))
        matrix = best.selected_matrix()  # the columns selected on every series
        space = search_space(params.model.search.search_space, best.kind,
                             n_classes=len(classifier.classes_), n_samples=matrix.shape[0],
                             n_features=matrix.shape[1],
                             random_state=params.model.search.random_state)
        searched = copy.copy(classifier)
        searched.set_params(model=_search(params, cv, search_s, space))
        try:
            _fit_or_explain(searched, matrix, y.to_numpy(), client=client,
                            watch=partial(_watch_search, progress=progress,
                                          generations=params.model.search.generations))
        except TrainingFailed as failed:  # e.g. no pipeline evaluated in time: the baseline stands
            return trial.finished(best, keptBaseline=f"the search failed: {failed.message}")
        summary = _search_summary(searched.search_)
    progress(stage="finishing")
    # The search must beat the baseline by more than the standard error of the baseline's
    # fold scores: on small data, smaller CV gains are noise, and did not hold on test data
    # (ItalyPowerDemand, 67 series: SGD beat ridge in CV, and lost 0.003 accuracy on test).
    bar = best.metrics["score"] + best.metrics["score_se"]
    if summary["bestScore"] is None or summary["bestScore"] <= bar:
        # Its own CV (the same folds; on tsfresh's features, if anything optimistic) did not
        # clear the bar: no need to spend the reserve re-scoring it.
        return trial.finished(best, search=summary, keptBaseline=NOTHING_BETTER)
    try:
        found = trial.evaluate_fitted(best, searched.model_)
        if found.metrics["score"] is not None and found.metrics["score"] > bar:
            return trial.finished(found, search=summary, baseline=best.summary())
    except TrainingFailed as failed:  # its pipeline cannot be re-scored or cannot predict
        return trial.finished(best, search=summary,
                              keptBaseline=f"the search's best pipeline failed: {failed.message}")
    return trial.finished(best, search=summary, keptBaseline=NOTHING_BETTER)


def choice_of_engine(candidates: list[_Candidate]) -> _Candidate:
    """The one standard error rule (Hastie, Tibshirani and Friedman, *The Elements of
    Statistical Learning*, 7.10) across engines: of the candidates whose CV score is within one
    standard error of the best score, the engine ranked highest by :data:`PRIOR_RANK`.

    On small training sets CV cannot tell engines apart, and picking the top score picks
    noise: over ItalyPowerDemand's resamples 0-9 (67 training series, ``bench/resamples.py``),
    taking the top CV score chose tsfresh, MiniRocket or the join on 7 of 10 and averaged
    0.963 test accuracy; this rule chose MultiRocket on 8 of 10 and averaged 0.964. With many
    series the standard error shrinks and the scores decide.
    """
    top = max(candidates, key=lambda c: c.rank)
    if top.metrics["score"] is None:
        return top
    bar = top.metrics["score"] - top.metrics["score_se"]
    close = [c for c in candidates if c.metrics["score"] is not None and c.metrics["score"] >= bar]
    return max(close, key=lambda c: (PRIOR_RANK.get(c.engine, 0), *c.scores))


# Engines by how accurate they are on average over the UCR archive: MultiRocket over MiniRocket
# (Tan et al., "MultiRocket", 2022), both over the tsfresh-based FreshPRINCE (Middlehurst et
# al., "Bake off redux", 2024); the join, compared in neither, between them. It decides
# between engines whose CV scores are within a standard error (choice_of_engine).
PRIOR_RANK = {"multirocket": 3, "minirocket": 2, "minirocket+tsfresh": 1, "tsfresh": 0}
SEARCH_SKIPPED = "feature extraction used the time budget; raise max_time_mins to search"
NOTHING_BETTER = ("the search found nothing better in cross-validation than the baseline "
                  "plus one standard error")
# In auto, tsfresh is skipped when a sample predicts its extraction would take more than this
# share of the time left; MultiRocket when its ~50,000 float32 features per series would
# exceed this many bytes.
TSFRESH_TIME_SHARE = 0.5
# An explicit tsfresh job fails at once when a sample predicts its extraction would take this
# many times the whole budget: a sample of 8 series is a rough guide, so borderline jobs run.
HOPELESS_FACTOR = 1.5
# Extraction with N worker processes ran 1.3-2x faster than in-process with N = 2.
PROCESS_EFFICIENCY = 0.75
MULTIROCKET_MAX_BYTES = 1 << 30


def _candidate_engines(params: TrainingParams, n_series: int, trial, deadline, progress):
    """The engine sets to try, cheapest first: kernels take seconds, tsfresh can take minutes."""
    engine = params.features.engine
    if engine != AUTO_ENGINE:
        names = engine if isinstance(engine, tuple) else (engine,)
        if TSFRESH in names:
            _refuse_hopeless_extraction(trial, deadline, progress)
        yield names
        return
    yield ("minirocket",)
    if n_series * 50_000 * 4 <= MULTIROCKET_MAX_BYTES:
        yield ("multirocket",)
    else:
        trial.skipped["multirocket"] = f"{n_series} series would need over 1 GiB of features"
    progress(stage="features", engine="tsfresh", estimating=True)
    estimate = trial.estimate_extraction_s(TSFRESH)
    left = deadline - time.time()
    if estimate > TSFRESH_TIME_SHARE * left:
        trial.skipped[TSFRESH] = (f"extraction would take about {estimate:.0f} s of the "
                                  f"{left:.0f} s left")
        return
    yield (TSFRESH,)
    yield ("minirocket", TSFRESH)  # joined from the two extractions above: nothing re-extracted


def _refuse_hopeless_extraction(trial, deadline: float, progress) -> None:
    """Fail at once, with advice, when tsfresh alone would clearly outlast the whole budget,
    rather than after it (the job would be stopped at the budget with no model)."""
    progress(stage="features", engine=TSFRESH, estimating=True)
    estimate, left = trial.estimate_extraction_s(TSFRESH), deadline - time.time()
    if estimate > HOPELESS_FACTOR * left:
        raise TrainingFailed(
            f"tsfresh's extraction of {len(trial.y)} series would take about {estimate:.0f} s, "
            f"more than the whole budget of {left:.0f} s (max_time_mins). Raise "
            "max_time_mins, pick cheaper tsfresh settings (default_fc_parameters: minimal), or "
            "use extract_features.engine: minirocket or auto, which take seconds.")


def _fit_or_explain(classifier, matrix, y, **kwargs) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TPOT warns about every budget setting
            fit = getattr(classifier, "fit_model", None) or classifier.fit
            fit(matrix, y, **kwargs)
    except Exception as err:
        # TPOT raises bare Exceptions when no pipeline survives, scikit-learn ValueErrors on
        # data it cannot fit: the user's to fix. Anything else is ours, and stays a 500.
        if type(err) is not Exception and not isinstance(err, ValueError):
            raise
        raise TrainingFailed(f"No pipeline could be trained on these features ({err}). "
                             "Give the search more time or series, or pick a fixed model "
                             "in model_training.model.") from err


@dataclass
class _Candidate:
    """One engine (or join of engines) with one fitted model, scored by cross-validation."""

    engine: str
    kind: str
    features: object              # the fitted engine, narrowed to what the model reads
    matrix: pd.DataFrame          # every feature the engine extracted, one row per series
    columns: list                 # the columns of ``matrix`` the model reads
    model: object                 # fitted on those columns
    metrics: dict                 # CV means: score (the job's scoring), accuracy, roc_auc;
                                  # score_se: the standard error of the fold scores
    selection_fallback: bool = False
    compact: bool = False         # tsfresh's compact feature set (see _Trial.compacts)

    @property
    def rank(self) -> tuple:
        """CV score, then CV accuracy, then the engine's standing in published comparisons."""
        return (*self.scores, PRIOR_RANK.get(self.engine, 0))

    @property
    def scores(self) -> tuple:
        return tuple(-np.inf if self.metrics[k] is None else self.metrics[k]
                     for k in ("score", "accuracy"))

    def selected_matrix(self) -> np.ndarray:
        return self.matrix[self.columns].to_numpy()

    def summary(self) -> dict:
        return {"engine": self.engine, "compact": self.compact, "modelType": _family(self.model),
                "cvScore": self.metrics["score"], "cvAccuracy": self.metrics["accuracy"],
                "cvScoreStandardError": self.metrics["score_se"]}


class _Trial:
    """The candidates of one training run, sharing every extraction, one CV splitter, and
    tsfresh's feature selection per fold."""

    def __init__(self, raw, y, cv, scoring, params, classifier, started, dask_address):
        self.raw, self.y, self.cv, self.scoring, self.params = raw, y, cv, scoring, params
        self.classifier, self.started, self.dask_address = classifier, started, dask_address
        self.folds = list(cv.split(np.zeros(len(y)), y.to_numpy()))
        self.extracted: dict[str, tuple[object, pd.DataFrame, float]] = {}
        self.tried: list[dict] = []
        self.skipped: dict[str, str] = {}
        self.best: _Candidate | None = None
        self.compact_outcome: dict | None = None
        self._selections: dict[bytes, RelevanceSelector] = {}
        self._compacts: dict[bytes, list] = {}

    def extract(self, names: tuple[str, ...]):
        """The fitted engine(s) and their full feature matrix; each engine is extracted once."""
        for name in names:
            if name not in self.extracted:
                began = time.perf_counter()
                engine = engines.build(name, self.params)
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
                self.extracted[name] = (engine, matrix, time.perf_counter() - began)
        if len(names) == 1:
            engine, matrix, _ = self.extracted[names[0]]
            return engine, matrix
        parts = [self.extracted[n] for n in names]
        return (CombinedFeatures.from_fitted([p[0] for p in parts]),
                pd.concat([p[1] for p in parts], axis=1))

    def estimate_extraction_s(self, name: str, sample: int = 8) -> float:
        """Seconds a full extraction would take, extrapolated from a few series extracted
        in-process, and divided among the worker processes the extraction would use."""
        ids = self.y.index[:sample]
        column_id = self.params.features.columns.id
        began = time.perf_counter()
        engines.build(name, self.params).fit_transform(
            self.raw[self.raw[column_id].isin(ids)], self.y.loc[ids])
        serial = (time.perf_counter() - began) * len(self.y) / len(ids)
        processes = 0 if self.dask_address else worker_processes(
            self.params.features.n_jobs, len(self.y), serial)
        return serial / (PROCESS_EFFICIENCY * processes) if processes else serial

    def evaluate(self, names, features, matrix, model, compact: bool = False) -> _Candidate:
        """Cross-validate ``model`` on the engine's features (tsfresh's selection, and the
        compact set's choice, redone in each fold), then fit it on every series."""
        selects = TSFRESH in names and self.params.selection.enabled
        metrics = self._cross_validate(model, matrix, selects, compact)
        everything = np.arange(len(matrix))
        columns = self._columns(matrix, everything, selects, compact)
        if selects:
            features = _narrowed(features, columns)
        fitted = clone(model)
        _fit_or_explain(fitted, matrix[columns].to_numpy(), self.y.to_numpy())
        fallback = selects and self._selection(everything).fallback_
        candidate = _Candidate("+".join(names), feature_kind(names), features, matrix, columns,
                               fitted, metrics, fallback, compact)
        self.tried.append({**candidate.summary(), "featuresUsed": len(columns),
                           "featuresExtracted": matrix.shape[1],
                           "extractSeconds": round(sum(self.extracted[n][2] for n in names), 2)})
        return candidate

    def evaluate_fitted(self, best: _Candidate, model) -> _Candidate:
        """Score a model fitted elsewhere (the search's best) exactly as the baseline was."""
        selects = best.engine.count(TSFRESH) > 0 and self.params.selection.enabled
        metrics = self._cross_validate(model, best.matrix, selects, best.compact)
        return _Candidate(best.engine, best.kind, best.features, best.matrix, best.columns,
                          model, metrics, best.selection_fallback, best.compact)

    def compacts(self, names) -> bool:
        """Whether to try the compact set: for tsfresh alone (a join's kernels are cheap to
        compute anyway), when selection runs and keeps more than the compact set would."""
        if tuple(names) != (TSFRESH,) or not (self.params.selection.enabled
                                              and self.params.selection.compact):
            return False
        everything = np.arange(len(self.y))
        return len(self._compact(everything)) < len(self._selection(everything).selected_)

    def prefer_compact(self, compact: _Candidate, over: _Candidate) -> bool:
        """Keep the compact set unless the full one is better by more than one standard error
        of its fold scores (the "one standard error rule": Hastie, Tibshirani and Friedman,
        *The Elements of Statistical Learning*, 7.10): cheaper predictions, same evidence."""
        full, small = over.metrics, compact.metrics
        kept = small["score"] is not None and (
            full["score"] is None or small["score"] >= full["score"] - full["score_se"])
        extracted = list(self.extracted[TSFRESH][1].columns)
        self.compact_outcome = {
            "kept": kept, "featuresUsed": len(compact.columns),
            "cvScore": small["score"], "fullCvScore": full["score"],
            "fullCvScoreStandardError": full["score_se"],
        }
        cost = feature_cost.extraction_ms(compact.columns, extracted)
        for name, columns in (("speedupOverRelevant", over.columns),
                              ("speedupOverFullExtraction", extracted)):
            self.compact_outcome[name] = round(
                feature_cost.extraction_ms(columns, extracted) / cost, 1)
        return kept

    def finished(self, candidate: _Candidate, provisional: bool = False, **extra):
        """The servable classifier for ``candidate`` and the report the API answers with.

        It has predicted a few training series first: a pipeline is stored only once it is
        known to serve (a model can fit and still fail every prediction)."""
        classifier = copy.copy(self.classifier).use(candidate.features, candidate.model)
        self._check_predicts(classifier)
        described = candidate.features.describe()
        parts = (candidate.features.parts_ if isinstance(candidate.features, CombinedFeatures)
                 else [candidate.features])
        report = {
            "trainTime": round(time.perf_counter() - self.started, 3),
            "trainShape": [candidate.matrix.shape[0], len(candidate.columns)],
            "mean_cv_accuracy": candidate.metrics["accuracy"],
            "mean_cv_roc_auc": candidate.metrics["roc_auc"],
            "mean_cv_score": candidate.metrics["score"],
            "scoring": self.scoring,
            "modelType": " ".join(repr(candidate.model).split()),
            "modelFamily": _family(candidate.model),
            "engine": candidate.engine,
            "features": described,
            "featureEngParams": self.params.describe_features(),
            "selectedFeatures": [c for p in parts for c in getattr(p, "selected_features_", [])],
            "featuresExtracted": described["featuresExtracted"],
            "featureSelectionFallback": bool(candidate.selection_fallback),
            "classes": [_plain(c) for c in classifier.classes_],
            "positiveClass": _plain(classifier.positive_class_),
            "cvFolds": len(self.folds),
            "candidates": list(self.tried),
            "compactFeatures": self.compact_outcome,
            "enginesSkipped": dict(self.skipped) or None,
            "search": None,
            "provisional": provisional,
            **extra,
            "createdAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return classifier, report

    def _check_predicts(self, classifier, n_series: int = 3) -> None:
        column_id = self.params.features.columns.id
        rows = self.raw[self.raw[column_id].isin(self.y.index[:n_series])]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                proba = classifier.predict_proba(rows).to_numpy()
            usable = proba.shape == (min(n_series, len(self.y)), len(classifier.classes_)) \
                and np.isfinite(proba).all()
            problem = None if usable else f"it gave {proba.shape} scores, not one per class"
        except (ValueError, TypeError, IndexError, KeyError) as err:
            problem = excerpt(str(err), 200)
        if problem:
            raise TrainingFailed(f"The trained pipeline could not predict its own training series "
                                 f"({problem}), so it was not stored. Choose another model or "
                                 "other arguments.")

    def _cross_validate(self, model, matrix: pd.DataFrame, selects: bool,
                        compact: bool = False) -> dict:
        """Mean fold scores of ``model``, refitted per fold on that fold's selected columns,
        and the standard error of the job's score."""
        y = self.y.to_numpy()
        scorers = {name: get_scorer(scoring) for name, scoring in (
            ("score", self.scoring), ("accuracy", "accuracy"), ("roc_auc", "roc_auc_ovr"))}
        scores = {name: [] for name in scorers}
        failures = []
        for train, test in self.folds:
            X = matrix[self._columns(matrix, train, selects, compact)].to_numpy()
            fold_model = clone(model)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fold_model.fit(X[train], y[train])
                    for name, scorer in scorers.items():
                        scores[name].append(scorer(fold_model, X[test], y[test]))
            except ValueError as err:  # a fold the model cannot fit or score counts as missing
                failures.append(err)
                for name in scorers:
                    scores[name].append(np.nan)
        if len(failures) == len(self.folds):
            raise TrainingFailed(
                f"{_family(model)} could not be fitted and scored on any cross-validation fold "
                f"({excerpt(str(failures[0]), 200)}). Choose arguments that suit "
                f"{len(self.y)} series (e.g. fewer neighbours), or another model.")
        return {**{name: _mean(values) for name, values in scores.items()},
                "score_se": _standard_error(scores["score"])}

    def _columns(self, matrix: pd.DataFrame, rows: np.ndarray, selects: bool,
                 compact: bool = False) -> list:
        """The columns of ``matrix`` a model fitted on ``rows`` reads: tsfresh's relevant ones
        (as judged on those rows only), or its compact set, and every kernel feature."""
        if not selects:
            return list(matrix.columns)
        tsfresh_columns = set(self.extracted[TSFRESH][1].columns)
        kept = set(self._compact(rows) if compact else self._selection(rows).selected_)
        # In the matrix's order: the fitted engine computes its columns in that order.
        return [c for c in matrix.columns if c not in tsfresh_columns or c in kept]

    def _selection(self, rows: np.ndarray) -> RelevanceSelector:
        """tsfresh's relevance test on ``rows``, run once per fold for all candidates."""
        key = rows.tobytes()
        if key not in self._selections:
            tsfresh_matrix = self.extracted[TSFRESH][1]
            self._selections[key] = RelevanceSelector(self.params.selection.fdr_level).fit(
                tsfresh_matrix.iloc[rows], self.y.to_numpy()[rows])
        return self._selections[key]

    def _compact(self, rows: np.ndarray) -> list:
        """The compact set learned on ``rows`` from the features relevant on them."""
        key = rows.tobytes()
        if key not in self._compacts:
            tsfresh_matrix = self.extracted[TSFRESH][1]
            self._compacts[key] = feature_cost.compact_set(
                tsfresh_matrix.iloc[rows], self.y.to_numpy()[rows],
                self._selection(rows).selected_)
        return self._compacts[key]


def _narrowed(features, columns: list[str]):
    """The fitted engine computing only ``columns`` of its tsfresh part (kernels stay whole)."""
    if isinstance(features, CombinedFeatures):
        return CombinedFeatures.from_fitted([_narrowed(p, columns) for p in features.parts_])
    if hasattr(features, "restricted"):
        wanted = set(columns)
        return features.restricted([c for c in features.selected_features_ if c in wanted])
    return features


@contextmanager
def _watch_search(search, progress, generations: int, every_s: float = 2.0):
    """Report TPOT's progress while it runs: it has no callback, so poll what it has scored."""
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


def matched_training_data(raw: pd.DataFrame, labels: pd.Series, params: TrainingParams):
    """Keep the labelled series; refuse data that cannot train a classifier."""
    column_id = params.features.columns.id
    series_ids = pd.Index(raw[column_id].unique())
    matched = labels[labels.index.isin(series_ids)]
    if matched.empty:
        raise InvalidData(
            f"No id in labels matches a series in raw_data (labels has e.g. "
            f"{_examples(labels.index)}; raw_data has e.g. {_examples(series_ids)}). Both files "
            f"must use the same ids in column '{column_id}'.")
    counts = matched.value_counts()
    if len(counts) < 2:
        raise InvalidData(f"The labelled series all have class {excerpt(counts.index[0])}: a "
                          "classifier needs at least two classes. Add series of another class.")
    if counts.min() < 2:
        rare = counts.idxmin()
        raise InvalidData(f"Class {excerpt(rare)} has a single series; every class needs at least "
                          "2 for cross-validation. Add series or drop that class.")
    positive = params.model.positive_class
    if positive is not None and (len(counts) != 2 or str(positive) not in map(str, counts.index)):
        raise InvalidParameters(f"'model_training.positive_class' is {excerpt(positive)}, which "
                                f"is not one of the two labels ({_examples(counts.index)}). "
                                "Name one of them, or leave it out for binary data only.")
    return raw[raw[column_id].isin(matched.index)], matched


def _cv_splitter(labels: pd.Series, params: TrainingParams) -> StratifiedKFold:
    folds = min(params.model.cv, int(labels.value_counts().min()))
    return StratifiedKFold(n_splits=folds, shuffle=True,
                           random_state=params.model.search.random_state or 0)


def _search(params: TrainingParams, cv: StratifiedKFold, seconds: float, space):
    from tpot import TPOTClassifier

    search = params.model.search
    return TPOTClassifier(
        search_space=space, scorers=[search.scoring], cv=cv,
        generations=search.generations, population_size=search.population_size,
        max_time_mins=seconds / 60,
        max_eval_time_mins=Budget.eval_seconds(seconds, search.max_eval_time_mins) / 60,
        random_state=search.random_state, verbose=search.verbosity,
    )


def _search_summary(search) -> dict:
    """How TPOT spent its budget: pipelines tried, and the best CV score per model family."""
    evaluated = search.evaluated_individuals
    scorer = search.objective_names[0]
    scored = evaluated[evaluated[scorer].notna()]
    families = scored["Instance"].map(_family)
    best = scored[scorer].groupby(families).max().sort_values(ascending=False)
    return {
        "scoring": scorer,
        "pipelinesEvaluated": int(len(evaluated)),
        "pipelinesScored": int(len(scored)),
        "generations": int(evaluated["Generation"].max() + 1) if len(evaluated) else 0,
        "bestScore": round(float(best.iloc[0]), 4) if len(best) else None,
        "bestScoreByFamily": {name: round(float(score), 4) for name, score in best.items()},
    }


def _family(pipeline) -> str:
    steps = getattr(pipeline, "steps", None)
    final = steps[-1][1] if steps else pipeline
    return type(final).__name__


def _mean(values) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return round(float(np.mean(finite)), 4) if finite else None


def _standard_error(values) -> float:
    finite = [v for v in values if np.isfinite(v)]
    if len(finite) < 2:
        return 0.0
    return round(float(np.std(finite, ddof=1) / np.sqrt(len(finite))), 4)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _examples(index) -> str:
    shown = ", ".join(excerpt(_plain(v), 30) for v in list(index[:3]))
    return shown + (", ..." if len(index) > 3 else "")
