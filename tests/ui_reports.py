"""Training reports for the dashboard's tests: today's real shape, and one with every field the
training adds for the dashboard (search.evaluated, crossValidation, topFeatures, dataShape...)."""
from __future__ import annotations

import copy
import math
import random

FAMILIES = ("ExtraTreesClassifier", "RandomForestClassifier", "HistGradientBoostingClassifier",
            "LGBMClassifier", "XGBClassifier", "LogisticRegression")

# As the service stores it today (a fixed model, tsfresh minimal): most new fields absent.
PLAIN = {
    "trainTime": 0.259, "trainShape": [50, 9], "mean_cv_accuracy": 0.7218,
    "mean_cv_roc_auc": 0.8218, "mean_cv_score": 0.7218, "scoring": "accuracy",
    "modelType": "RandomForestClassifier(n_estimators=30)", "modelFamily": "RandomForestClassifier",
    "engine": "tsfresh", "features": {"engine": "tsfresh", "featuresExtracted": 10, "featuresUsed": 9},
    "featuresExtracted": 10, "featureSelectionFallback": True, "classes": [0, 1],
    "positiveClass": 1, "cvFolds": 3,
    "candidates": [{"engine": "tsfresh", "compact": False, "modelType": "RandomForestClassifier",
                    "cvScore": 0.7218, "cvAccuracy": 0.7218, "cvScoreStandardError": 0.0484,
                    "featuresUsed": 9, "featuresExtracted": 9, "extractSeconds": 0.02}],
    "compactFeatures": None, "enginesSkipped": None, "search": None, "provisional": False,
    "createdAt": "2026-12-01T23:49:29+00:00",
}


def _roc(rng: random.Random, quality: float) -> dict:
    fpr = [0.0] + sorted(rng.random() for _ in range(18)) + [1.0]
    tpr = [min(1.0, f ** (1 - quality)) for f in fpr]
    auc = sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(len(fpr) - 1))
    return {"fpr": fpr, "tpr": tpr, "auc": round(auc, 4)}


def full(classes=("cat", "dog", "$bird<b>"), evaluated: int = 120, seed: int = 0) -> dict:
    """A report with every field the dashboard draws (three classes, a search)."""
    rng = random.Random(seed)
    report = copy.deepcopy(PLAIN)
    n = len(classes)
    report.update({
        "modelType": "ExtraTreesClassifier(n_estimators=300, max_features=0.3)",
        "modelFamily": "ExtraTreesClassifier", "engine": "minirocket", "scoring": "roc_auc_ovr",
        "mean_cv_accuracy": 0.9, "mean_cv_roc_auc": 0.97, "mean_cv_score": 0.97,
        "classes": list(classes), "positiveClass": None, "trainShape": [60, 9996],
        "candidates": [
            {"engine": "minirocket", "compact": False, "modelType": "RidgeClassifierCV",
             "cvScore": 0.97, "cvAccuracy": 0.9, "cvScoreStandardError": 0.012,
             "featuresUsed": 9996, "featuresExtracted": 9996, "extractSeconds": 1.4},
            {"engine": "tsfresh", "compact": False, "modelType": "ExtraTreesClassifier",
             "cvScore": 0.93, "cvAccuracy": 0.85, "cvScoreStandardError": 0.02,
             "featuresUsed": 120, "featuresExtracted": 777, "extractSeconds": 9.8},
            {"engine": "tsfresh", "compact": True, "modelType": "ExtraTreesClassifier",
             "cvScore": 0.925, "cvAccuracy": 0.84, "cvScoreStandardError": 0.021,
             "featuresUsed": 50, "featuresExtracted": 777, "extractSeconds": 9.8}],
        "search": {
            "scoring": "roc_auc_ovr", "pipelinesEvaluated": evaluated, "pipelinesScored": evaluated - 3,
            "generations": 6, "bestScore": 0.975,
            "bestScoreByFamily": {"ExtraTreesClassifier": 0.975, "LogisticRegression": 0.9},
            "baselineScore": 0.97,
            "evaluated": [{"family": FAMILIES[i % len(FAMILIES)],
                           "score": None if i < 3 else round(0.6 + 0.37 * rng.random(), 4),
                           "generation": i * 6 // evaluated} for i in range(evaluated)]},
        "ensemble": {
            "rule": "CAWPE (accuracy^4 weights, temperature-scaled probabilities)",
            "members": [{"engine": "minirocket", "modelType": "RidgeClassifierCV", "weight": 0.61,
                         "temperature": 0.35, "cvScore": 0.97, "cvAccuracy": 0.9,
                         "searched": False},
                        {"engine": "tsfresh", "modelType": "ExtraTreesClassifier<i>",
                         "weight": 0.39, "temperature": 1.4, "cvScore": 0.93,
                         "cvAccuracy": 0.85, "searched": False}],
            "candidatesConsidered": 2, "outerCvScore": 0.974,
            "outerCvScoreStandardError": 0.01},
        "keptBaseline": "the search found nothing better in cross-validation than the baseline "
                        "plus one standard error",
        "crossValidation": {
            "classes": list(classes),
            "confusionMatrix": [[18 if i == j else 1 for j in range(n)] for i in range(n)],
            "roc": {str(c): _roc(rng, 0.8 + 0.05 * i) for i, c in enumerate(classes)}},
        "topFeatures": [{"name": f"measurement__feature_{i}<x>", "importance": round(0.2 / (i + 1), 4)}
                        for i in range(20)],
        "dataShape": {"series": 60, "channels": 1, "length": [120, 150], "classes": n},
        "predictMsPerSeries": 0.42,
        "stageSeconds": {"features": 1.4, "baseline": 0.6, "search": 55.2, "finishing": 0.3},
    })
    assert all(math.isfinite(e["score"]) for e in report["search"]["evaluated"] if e["score"] is not None)
    return report
