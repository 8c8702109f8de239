"""One training run: check the data, extract features, search a model, measure it.

Nothing here knows about HTTP or jobs; a training process (``worker``) calls ``train``.
"""
from __future__ import annotations

import copy
import threading
import time
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import partial

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score, cross_validate

from .classifier import TimeSeriesClassifier
from .compute import dask_client
from .errors import InvalidData, InvalidParameters, TrainingFailed
from .features import TsfreshFeatures
from .params import SEARCH_MODEL, TrainingParams, build_fixed_estimator


# The search is given the budget minus this reserve, for TPOT's own overrun (measured ~6 s: it
# stops only between evaluations, then refits its best) and for measuring the winner.
RESERVE_FRACTION, RESERVE_MIN_S = 0.1, 10.0
# Below this much time left after feature extraction, the search is skipped: the baseline stays.
MIN_SEARCH_S = 10.0


def _ignore(**_):
    pass


def train(raw: pd.DataFrame, labels: pd.Series, params: TrainingParams, *,
          deadline: float | None = None, progress=_ignore, publish_provisional=None,
          dask_address: str | None = None) -> tuple[TimeSeriesClassifier, dict]:
    """Return the fitted classifier and the report the API answers with (minus ``modelId``).

    ``deadline`` (a ``time.time()``) bounds a search; by default it is ``max_time_mins`` from
    now. ``progress(**fields)`` hears each stage; ``publish_provisional(classifier, report)``
    receives the fast baseline fitted before a search, so it can be served meanwhile.
    """
    started = time.perf_counter()
    searching = params.model.model == SEARCH_MODEL
    if searching and deadline is None:
        deadline = time.time() + params.model.search.max_time_mins * 60
    raw, labels = matched_training_data(raw, labels, params)
    cv = _cv_splitter(labels, params)
    progress(stage="features")
    features = TsfreshFeatures(
        column_id=params.features.columns.id, column_value=params.features.columns.value,
        column_sort=params.features.columns.sort, column_kind=params.features.columns.kind,
        fc_parameters=params.features.default_fc_parameters,
        impute=params.features.impute_function, select=params.selection.enabled,
        fdr_level=params.selection.fdr_level, n_jobs=params.features.n_jobs,
    )
    classifier = TimeSeriesClassifier(features, positive_class=params.model.positive_class)
    matrix, y = classifier.fit_features(raw, labels, dask_address=dask_address)

    def report(fitted, search_summary=None, **extra):
        return _report(fitted, matrix, y, cv, params, started, search_summary, **extra)

    if not searching:
        progress(stage="model")
        classifier.set_params(model=build_fixed_estimator(params.model.model,
                                                          params.model.estimator_args))
        _fit_or_explain(classifier, matrix, y)
        return classifier, report(classifier)

    progress(stage="baseline")
    baseline = _fit_baseline(classifier, matrix, y)
    scoring = params.model.search.scoring
    baseline_score = _mean(cross_val_score(clone(baseline.model_), matrix, y, cv=cv,
                                           scoring=scoring, error_score=np.nan))
    baseline_info = {"modelType": type(baseline.model_).__name__, "cvScore": baseline_score,
                     "scoring": scoring}
    baseline_report = report(baseline, provisional=True, baseline=baseline_info)
    if publish_provisional:
        publish_provisional(baseline, baseline_report)

    def final_baseline(**extra):  # the baseline as the final model: measured once already
        return baseline, {**baseline_report, "provisional": False, **extra,
                          "trainTime": round(time.perf_counter() - started, 3)}

    budget_s = params.model.search.max_time_mins * 60
    reserve_s = max(RESERVE_MIN_S, RESERVE_FRACTION * budget_s)
    skipped = "feature extraction used the time budget; raise max_time_mins to search"
    if deadline - time.time() - reserve_s < MIN_SEARCH_S:
        return final_baseline(searchSkipped=skipped)  # not worth starting a cluster for
    with dask_client(params.model.search.n_jobs, dask_address) as client:
        search_s = deadline - time.time() - reserve_s  # what is left once the cluster is up
        if search_s < MIN_SEARCH_S:
            return final_baseline(searchSkipped=skipped)
        progress(stage="search", searchSeconds=round(search_s, 1))
        classifier.set_params(model=_search(params, cv, search_s))
        _fit_or_explain(classifier, matrix, y, client=client,
                        watch=partial(_watch_search, progress=progress,
                                      generations=params.model.search.generations))
        summary = _search_summary(classifier.search_)
    progress(stage="finishing")
    best = summary["bestScore"]
    if best is None or (baseline_score is not None and best <= baseline_score):
        return final_baseline(search=summary, keptBaseline="the search found nothing better")
    return classifier, report(classifier, summary, baseline=baseline_info)


def _fit_baseline(classifier: TimeSeriesClassifier, matrix, y) -> TimeSeriesClassifier:
    """A fast, strong default on the same features: the floor the search must beat."""
    baseline = copy.copy(classifier)  # shares the fitted features; gets its own model
    baseline.set_params(model=ExtraTreesClassifier(n_estimators=300, random_state=0, n_jobs=1))
    baseline.fit_model(matrix, y)
    return baseline


def _fit_or_explain(classifier, matrix, y, **kwargs) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TPOT warns about every budget setting
            classifier.fit_model(matrix, y, **kwargs)
    except Exception as err:
        # TPOT raises bare Exceptions when no pipeline survives, scikit-learn ValueErrors on
        # data it cannot fit: the user's to fix. Anything else is ours, and stays a 500.
        if type(err) is not Exception and not isinstance(err, ValueError):
            raise
        raise TrainingFailed(f"No pipeline could be trained on these features ({err}). "
                             "Give the search more time or series, or pick a fixed model "
                             "in model_training.model.") from err


def _report(classifier, matrix, y, cv, params, started, summary, **extra) -> dict:
    return {
        "trainTime": round(time.perf_counter() - started, 3),
        "trainShape": list(matrix.shape),
        **_cross_validated_metrics(classifier.model_, matrix, y, cv),
        "modelType": " ".join(repr(classifier.model_).split()),
        "featureEngParams": params.describe_features(),
        "selectedFeatures": list(classifier.features_.selected_features_),
        "featuresExtracted": classifier.features_.n_features_extracted_,
        "featureSelectionFallback": classifier.features_.selection_fallback_,
        "classes": [_plain(c) for c in classifier.classes_],
        "positiveClass": _plain(classifier.positive_class_),
        "cvFolds": cv.get_n_splits(),
        "search": summary,
        "provisional": False,
        **extra,
        "createdAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


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
    labels = labels[labels.index.isin(series_ids)]
    if labels.empty:
        raise InvalidData(
            f"No id in labels matches a series in raw_data (labels has e.g. "
            f"{_examples(labels.index)}; raw_data has e.g. {_examples(series_ids)}). Both files "
            f"must use the same ids in column '{column_id}'.")
    counts = labels.value_counts()
    if len(counts) < 2:
        raise InvalidData(f"The labelled series all have class {counts.index[0]!r}: a classifier "
                          "needs at least two classes. Add series of another class.")
    if counts.min() < 2:
        rare = counts.idxmin()
        raise InvalidData(f"Class {rare!r} has a single series; every class needs at least 2 for "
                          "cross-validation. Add series or drop that class.")
    positive = params.model.positive_class
    if positive is not None and (len(counts) != 2 or str(positive) not in map(str, counts.index)):
        raise InvalidParameters(f"'model_training.positive_class' is {positive!r}, which is not "
                                f"one of the two labels ({', '.join(map(str, counts.index))}). "
                                "Name one of them, or leave it out for binary data only.")
    return raw[raw[column_id].isin(labels.index)], labels


def _cv_splitter(labels: pd.Series, params: TrainingParams) -> StratifiedKFold:
    folds = min(params.model.cv, int(labels.value_counts().min()))
    return StratifiedKFold(n_splits=folds, shuffle=True,
                           random_state=params.model.search.random_state or 0)


def _search(params: TrainingParams, cv: StratifiedKFold, seconds: float):
    from tpot import TPOTClassifier

    search = params.model.search
    return TPOTClassifier(
        search_space=search.search_space, scorers=[search.scoring], cv=cv,
        generations=search.generations, population_size=search.population_size,
        max_time_mins=seconds / 60, max_eval_time_mins=min(search.max_eval_time_mins, seconds / 60),
        random_state=search.random_state, verbose=search.verbosity,
    )


def _cross_validated_metrics(model, matrix, y, cv) -> dict:
    scores = cross_validate(clone(model), matrix, y, cv=cv, error_score=np.nan,
                            scoring={"accuracy": "accuracy", "roc_auc": "roc_auc_ovr"})
    return {"mean_cv_accuracy": _mean(scores["test_accuracy"]),
            "mean_cv_roc_auc": _mean(scores["test_roc_auc"])}


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


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _examples(index) -> str:
    return ", ".join(map(str, list(index[:3]))) or "none"
