"""Class probabilities of a fitted model, without the per-call machinery that costs more than
the model on a small batch.

sklearn's forests predict through joblib even with one worker, wrap every tree's call in a
configuration context and warning filters, and check every tree as they go: on a one-series
request that was most of the request's time (docs/benchmarks.md, "Serving overhead"). Up to
``SMALL_BATCH`` rows the trees are summed here instead, in the same order and with the same
arithmetic as sklearn's one-worker path, so the probabilities are the same to the last bit.
Everything else is the model's own ``predict_proba``.
"""
from __future__ import annotations

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline

SMALL_BATCH = 256  # rows; above it the trees' own work dominates and sklearn's path is kept


def class_probabilities(model, X) -> np.ndarray:
    """``model.predict_proba(X)``, the same values; a pipeline's steps, then its final
    estimator, and a forest on a small batch tree by tree."""
    if isinstance(model, Pipeline):
        for _, step in model.steps[:-1]:
            if step is not None and step != "passthrough":
                X = step.transform(X)
        return class_probabilities(model.steps[-1][1], X)
    if _small_forest_batch(model, X):
        X = model._validate_X_predict(X)  # what the forest's predict_proba checks first
        total = np.zeros((X.shape[0], model.n_classes_), dtype=np.float64)
        for tree in model.estimators_:
            # A tree's predict_proba with check_input=False, less its checks (the forest's
            # above cover them): its leaves' class fractions, its classes' columns.
            total += tree.tree_.predict(X)[:, :tree.n_classes_]
        total /= len(model.estimators_)
        return total
    return model.predict_proba(X)


def _small_forest_batch(model, X) -> bool:
    return (isinstance(model, (ExtraTreesClassifier, RandomForestClassifier))
            and hasattr(model, "estimators_") and getattr(model, "n_outputs_", None) == 1
            and len(X) <= SMALL_BATCH and hasattr(model, "_validate_X_predict"))
