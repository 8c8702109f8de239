"""What a run ends with: the servable classifier for its choice (a candidate or an ensemble),
checked to predict, and the report the API answers with.

Besides the scores, the report keeps what the dashboard draws, each bounded in size: every
pipeline the search evaluated (``search.evaluated``), each candidate's CV score with its
standard error, the confusion matrix and ROC curves of the chosen model's out-of-fold
predictions (``crossValidation``), its most important features (``topFeatures``), the data's
shape and the time each stage took.
"""
from __future__ import annotations

import copy
import time
import warnings
from datetime import datetime, timezone

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from .candidates import Candidate, family
from .engines import JOIN_ORDER, CombinedFeatures
from .ensemble import Selection, WeightedEnsemble
from .errors import TrainingFailed, excerpt

MAX_ROC_POINTS = 101
TOP_FEATURES = 20
CHECK_SERIES = 3


def finished(pool, classifier, choice, started: float, stage_seconds: dict,
             provisional: bool = False, **extra):
    """The servable classifier for ``choice`` and its report.

    It has predicted a few training series first: a pipeline is stored only once it is known
    to serve (a model can fit and still fail every prediction)."""
    served, features, model = _servable(pool, classifier, choice)
    predict_ms = _check_predicts(pool, served)
    lead = choice.members[0] if isinstance(choice, Selection) else choice
    described = features.describe()
    parts = features.parts_ if isinstance(features, CombinedFeatures) else [features]
    report = {
        "trainTime": round(time.perf_counter() - started, 3),
        "trainShape": [lead.matrix.shape[0], len(features.output_columns())],
        "mean_cv_accuracy": choice.metrics["accuracy"],
        "mean_cv_roc_auc": choice.metrics["roc_auc"],
        "mean_cv_score": choice.metrics["score"],
        "scoring": pool.scoring,
        "modelType": " ".join(repr(model).split())[:2_000],
        "modelFamily": family(model),
        "engine": described["engine"],
        "features": described,
        "featureEngParams": pool.params.describe_features(),
        "selectedFeatures": [c for p in parts for c in getattr(p, "selected_features_", [])],
        "featuresExtracted": described["featuresExtracted"],
        "featureSelectionFallback": bool(getattr(lead, "selection_fallback", False)),
        "classes": [_plain(c) for c in classifier.classes_],
        "positiveClass": _plain(classifier.positive_class_),
        "cvFolds": len(pool.folds),
        "cvSeries": cv_series(pool),
        "heldOut": held_out(pool, choice),
        "candidates": list(pool.tried),
        "compactFeatures": pool.compact_outcome,
        "enginesSkipped": dict(pool.skipped) or None,
        "enginesNarrowed": {name: round(width, 3) for name, width in pool.widths.items()}
                           or None,
        "ensemble": _ensemble_summary(choice) if isinstance(choice, Selection) else None,
        "search": None,
        "crossValidation": cross_validation_summary(choice.oof, pool.y_cv,
                                                    classifier.classes_),
        "topFeatures": top_features(model, features.output_columns()),
        "dataShape": data_shape(pool),
        "predictMsPerSeries": predict_ms,
        "stageSeconds": {stage: round(s, 2) for stage, s in stage_seconds.items()},
        "provisional": provisional,
        **extra,
        "createdAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return served, report


def _servable(pool, classifier, choice):
    """(the classifier serving ``choice``, its features, its model)."""
    features, model = (_ensemble_parts(pool, choice) if isinstance(choice, Selection)
                       else (choice.features, choice.model))
    return copy.copy(classifier).use(features, model), features, model


def _ensemble_parts(pool, selection: Selection):
    """The features every member needs (each engine once, narrowed to the columns its members
    read) and the ensemble reading each member's columns of them."""
    needed: dict[str, set] = {}
    for member in selection.members:
        for name in member.names:
            own = set(pool.extracted[name].matrix.columns)
            needed.setdefault(name, set()).update(c for c in member.columns if c in own)
    engines = [pool.extracted[name].engine.narrowed(
                   [c for c in pool.extracted[name].matrix.columns if c in needed[name]])
               for name in sorted(needed, key=JOIN_ORDER.index)]
    features = engines[0] if len(engines) == 1 else CombinedFeatures.from_fitted(engines)
    position = {c: i for i, c in enumerate(features.output_columns())}
    model = WeightedEnsemble.from_fitted(
        [m.model for m in selection.members],
        [[position[c] for c in m.columns] for m in selection.members], selection.weights,
        classes=np.arange(len(np.unique(pool.y))), temperatures=selection.temperatures)
    return features, model


def _ensemble_summary(selection: Selection) -> dict:
    return {"rule": "CAWPE (accuracy^4 weights, temperature-scaled probabilities)",
            "members": [{"engine": m.engine, "modelType": family(m.model), "weight": w,
                         "temperature": t, "cvScore": m.metrics["score"],
                         "cvAccuracy": m.metrics["accuracy"], "searched": m.searched}
                        for m, w, t in zip(selection.members, selection.weights,
                                           selection.temperatures)],
            "candidatesConsidered": selection.considered,
            "leftOutForPredictionTime": [m.engine for m in selection.left_out],
            "outerCvScore": selection.metrics["score"],
            "outerCvScoreStandardError": selection.metrics["score_se"]}


def one_series_ms(pool, classifier, choice, repeats: int = 3) -> float:
    """The fastest of ``repeats`` in-process predictions of one training series by
    ``choice`` (a candidate, or members as a Selection), in milliseconds."""
    served, _, _ = _servable(pool, classifier, choice)
    column_id = pool.params.features.columns.id
    one = pool.raw[pool.raw[column_id] == pool.y.index[0]]
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeats):
            began = time.perf_counter()
            served.predict_proba(one)
            times.append(time.perf_counter() - began)
    return 1000 * min(times)


def _check_predicts(pool, classifier) -> float:
    """Predict a few training series with ``classifier``; its milliseconds per series."""
    column_id = pool.params.features.columns.id
    ids = pool.y.index[:CHECK_SERIES]
    rows = pool.raw[pool.raw[column_id].isin(ids)]
    began = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proba = classifier.predict_proba(rows).to_numpy()
        usable = proba.shape == (len(ids), len(classifier.classes_)) and np.isfinite(proba).all()
        problem = None if usable else f"it gave {proba.shape} scores, not one per class"
    except (ValueError, TypeError, IndexError, KeyError) as err:
        problem = excerpt(str(err), 200)
    if problem:
        raise TrainingFailed(f"The trained pipeline could not predict its own training series "
                             f"({problem}), so it was not stored. Choose another model or "
                             "other arguments.")
    return round((time.perf_counter() - began) * 1000 / len(ids), 3)


def cross_validation_summary(oof: np.ndarray | None, y: np.ndarray, classes) -> dict | None:
    """The confusion matrix and one-vs-rest ROC curves of out-of-fold probabilities (for two
    classes, one curve: the positive class's); rows without a prediction are left out."""
    if oof is None:
        return None
    rows = np.isfinite(oof).all(axis=1)
    if not rows.any():
        return None
    proba, truth = oof[rows], y[rows]
    labels = np.arange(len(classes))
    curves = {}
    for k in ([1] if len(classes) == 2 else labels):
        positive = truth == k
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, k])
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), MAX_ROC_POINTS)).astype(int))
        curves[str(_plain(classes[k]))] = {
            "fpr": [round(float(v), 4) for v in fpr[keep]],
            "tpr": [round(float(v), 4) for v in tpr[keep]],
            "auc": round(float(roc_auc_score(positive, proba[:, k])), 4)}
    return {"classes": [_plain(c) for c in classes], "series": int(rows.sum()),
            "confusionMatrix": confusion_matrix(truth, proba.argmax(axis=1),
                                                labels=labels).tolist(),
            "roc": curves}


def top_features(model, columns: list[str]) -> list[dict]:
    """The features the model leans on most: tree importances, or the size of a linear
    model's coefficients (on standardised features); an ensemble's, weighted by member."""
    importance = _importances(model, len(columns))
    if importance is None:
        return []
    order = np.argsort(-importance, kind="stable")[:TOP_FEATURES]
    return [{"name": columns[i], "importance": round(float(importance[i]), 5)}
            for i in order if importance[i] > 0]


def _importances(model, n_columns: int) -> np.ndarray | None:
    if isinstance(model, WeightedEnsemble):
        total = np.zeros(n_columns)
        for member, columns, weight in zip(model.members_, model.columns, model.weights):
            own = _importances(member, len(columns))
            if own is not None:
                total[list(columns)] += weight * own / max(own.sum(), 1e-12)
        return total if total.any() else None
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(final, "feature_importances_"):
        values = np.asarray(final.feature_importances_, dtype=float)
    elif hasattr(final, "coef_"):
        values = np.abs(np.asarray(final.coef_, dtype=float)).reshape(-1, np.shape(final.coef_)[-1]).sum(axis=0)
    else:
        return None
    return values if len(values) == n_columns else None


def held_out(pool, choice) -> dict | None:
    """For a first model scored on held-out series instead of by CV: how many it was fitted
    and scored on (its ``mean_cv_*`` are those scores)."""
    count = getattr(choice, "held_out", 0)
    return {"fittedOn": int(len(pool.rows)), "scoredOn": int(count)} if count else None


def cv_series(pool) -> dict:
    """How many series cross-validation ran on, of how many (the model is fitted on all)."""
    return {"series": int(len(pool.rows)), "of": int(len(pool.y)), "sampled": pool.sampled}


def data_shape(pool) -> dict:
    columns = pool.params.features.columns
    raw = pool.raw
    lengths = raw.groupby([columns.id] + ([columns.kind] if columns.kind else [])).size()
    return {"series": int(len(pool.y)),
            "channels": int(raw[columns.kind].nunique()) if columns.kind else 1,
            "length": int(lengths.iloc[0]) if lengths.nunique() == 1
            else [int(lengths.min()), int(lengths.max())],
            "classes": int(pool.y.nunique())}


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
