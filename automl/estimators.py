"""The fixed estimators a parameter file may name, and the arguments it may set on each.

Only the arguments listed here can be set, each with a range wide enough for any sensible
model and narrow enough that no value makes a job unbounded (a billion trees, a thousand
worker processes): the job's deadline stops what the ranges allow but the data makes slow.
"""
from __future__ import annotations

import importlib

from .checks import AnyOf, Field, Flag, Nullable, Number, OneOf, Section, Whole

SEED = Nullable(Whole(0, 2**32 - 1))   # numpy's seeds are 32-bit
CLASS_WEIGHT = Nullable(OneOf(["balanced"]))
TREES = Whole(1, 5_000)
DEPTH = Nullable(Whole(1, 1_000))
SPLIT = Whole(2, 100_000)
LEAF = Whole(1, 100_000)
FEATURES = Nullable(AnyOf(OneOf(["sqrt", "log2"]), Number(0.0, 1.0, exclusive_minimum=True),
                          allowed="must be sqrt, log2, a fraction in (0, 1] or null"))
CRITERION = OneOf(["gini", "entropy", "log_loss"])
C = Number(0.0, 1e6, exclusive_minimum=True)
ITERATIONS = Whole(1, 100_000)
TOLERANCE = Number(0.0, 1.0)

# name -> (module, class, {argument: rule}); the only estimators a parameter file can ask for.
FIXED_MODELS = {
    "random_forest": ("sklearn.ensemble", "RandomForestClassifier", {
        "n_estimators": TREES, "criterion": CRITERION, "max_depth": DEPTH,
        "min_samples_split": SPLIT, "min_samples_leaf": LEAF, "max_features": FEATURES,
        "bootstrap": Flag(), "class_weight": Nullable(OneOf(["balanced", "balanced_subsample"])),
        "random_state": SEED}),
    "extra_trees": ("sklearn.ensemble", "ExtraTreesClassifier", {
        "n_estimators": TREES, "criterion": CRITERION, "max_depth": DEPTH,
        "min_samples_split": SPLIT, "min_samples_leaf": LEAF, "max_features": FEATURES,
        "bootstrap": Flag(), "class_weight": Nullable(OneOf(["balanced", "balanced_subsample"])),
        "random_state": SEED}),
    "gradient_boosting": ("sklearn.ensemble", "GradientBoostingClassifier", {
        "n_estimators": TREES, "learning_rate": Number(0.0, 10.0, exclusive_minimum=True),
        "max_depth": DEPTH, "subsample": Number(0.0, 1.0, exclusive_minimum=True),
        "min_samples_split": SPLIT, "min_samples_leaf": LEAF, "max_features": FEATURES,
        "random_state": SEED}),
    "hist_gradient_boosting": ("sklearn.ensemble", "HistGradientBoostingClassifier", {
        "max_iter": TREES, "learning_rate": Number(0.0, 10.0, exclusive_minimum=True),
        "max_depth": DEPTH, "max_leaf_nodes": Nullable(Whole(2, 100_000)),
        "min_samples_leaf": LEAF, "l2_regularization": Number(0.0, 1e6),
        "early_stopping": AnyOf(OneOf(["auto"]), Flag(), allowed="must be auto, true or false"),
        "class_weight": CLASS_WEIGHT, "random_state": SEED}),
    "logistic_regression": ("sklearn.linear_model", "LogisticRegression", {
        "C": C, "l1_ratio": Number(0.0, 1.0), "max_iter": ITERATIONS, "tol": TOLERANCE,
        "solver": OneOf(["lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga"]),
        "fit_intercept": Flag(), "class_weight": CLASS_WEIGHT, "random_state": SEED}),
    "k_neighbors": ("sklearn.neighbors", "KNeighborsClassifier", {
        "n_neighbors": Whole(1, 10_000), "weights": OneOf(["uniform", "distance"]),
        "p": Number(1.0, 10.0), "leaf_size": Whole(1, 10_000),
        "metric": OneOf(["minkowski", "euclidean", "manhattan", "chebyshev", "cosine"]),
        "algorithm": OneOf(["auto", "ball_tree", "kd_tree", "brute"])}),
    "decision_tree": ("sklearn.tree", "DecisionTreeClassifier", {
        "criterion": CRITERION, "splitter": OneOf(["best", "random"]), "max_depth": DEPTH,
        "min_samples_split": SPLIT, "min_samples_leaf": LEAF, "max_features": FEATURES,
        "class_weight": CLASS_WEIGHT, "random_state": SEED}),
    "svc": ("sklearn.svm", "SVC", {
        "C": C, "kernel": OneOf(["linear", "poly", "rbf", "sigmoid"]), "degree": Whole(1, 10),
        "gamma": AnyOf(OneOf(["scale", "auto"]), Number(0.0, 1e6, exclusive_minimum=True),
                       allowed="must be scale, auto or a number above 0"),
        "coef0": Number(-1e6, 1e6), "tol": TOLERANCE, "max_iter": ITERATIONS,
        "class_weight": CLASS_WEIGHT, "random_state": SEED}),
}


def aliases() -> dict[str, str]:
    """Spellings of each estimator a parameter file may use: ``extra_trees``,
    ``ExtraTreesClassifier``, ``sklearn.ensemble.ExtraTreesClassifier``..."""
    table = {}
    for name, (module, cls, _) in FIXED_MODELS.items():
        for spelling in (name, cls, f"{module}.{cls}", f"sklearn.{cls}"):
            table[spelling] = name
    return table


def arguments_section(model: str) -> Section:
    module, cls, rules = FIXED_MODELS[model]
    return Section(tuple(Field(name, rule, None, f"{cls}'s {name} (scikit-learn)")
                         for name, rule in rules.items()),
                   doc=f"Arguments of {module}.{cls}; unset ones keep scikit-learn's defaults.")


def build(model: str, args: dict):
    """The estimator with ``args`` (already checked) set."""
    module, cls, _ = FIXED_MODELS[model]
    estimator = getattr(importlib.import_module(module), cls)()
    if model == "svc":
        estimator.set_params(probability=True)  # scores need predict_proba
    return estimator.set_params(**args)
