"""One training run: check the data, extract features, search a model, measure it.

Nothing here knows about HTTP; the routes (or, later, a job worker) call ``train``.
"""
from __future__ import annotations

import time
import warnings
from contextlib import nullcontext
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_validate

from .classifier import TimeSeriesClassifier
from .compute import dask_client
from .errors import InvalidData, InvalidParameters, TrainingFailed
from .features import TsfreshFeatures
from .params import SEARCH_MODEL, TrainingParams, build_fixed_estimator


def train(raw: pd.DataFrame, labels: pd.Series, params: TrainingParams
          ) -> tuple[TimeSeriesClassifier, dict]:
    """Return the fitted classifier and the report the API answers with (minus ``modelId``)."""
    started = time.perf_counter()
    raw, labels = _matched(raw, labels, params)
    cv = _cv_splitter(labels, params)
    features = TsfreshFeatures(
        column_id=params.features.columns.id, column_value=params.features.columns.value,
        column_sort=params.features.columns.sort, column_kind=params.features.columns.kind,
        fc_parameters=params.features.default_fc_parameters,
        impute=params.features.impute_function, select=params.selection.enabled,
        fdr_level=params.selection.fdr_level, n_jobs=params.features.n_jobs,
    )
    classifier = TimeSeriesClassifier(features, positive_class=params.model.positive_class)
    matrix, y = classifier.fit_features(raw, labels)

    searching = params.model.model == SEARCH_MODEL
    with dask_client(params.model.search.n_jobs) if searching else nullcontext() as client:
        classifier.set_params(model=_model(params, cv))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TPOT warns about every budget setting
                classifier.fit_model(matrix, y, client=client)
        except Exception as err:  # TPOT raises bare Exceptions when no pipeline survives
            raise TrainingFailed(f"No pipeline could be trained on these features ({err}). "
                                 "Give the search more time or series, or pick a fixed model "
                                 "in model_training.model.") from err
        summary = _search_summary(classifier.search_) if searching else None

    report = {
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
        "createdAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return classifier, report


def _matched(raw: pd.DataFrame, labels: pd.Series, params: TrainingParams):
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


def _model(params: TrainingParams, cv: StratifiedKFold):
    if params.model.model != SEARCH_MODEL:
        return build_fixed_estimator(params.model.model, params.model.estimator_args)
    from tpot import TPOTClassifier

    search = params.model.search
    return TPOTClassifier(
        search_space=search.search_space, scorers=[search.scoring], cv=cv,
        generations=search.generations, population_size=search.population_size,
        max_time_mins=search.max_time_mins, max_eval_time_mins=search.max_eval_time_mins,
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
