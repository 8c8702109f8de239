"""TPOT search spaces shaped for the feature matrices the engines produce.

TPOT's stock spaces try every classifier, most of them hopeless or slow on ten thousand
random-kernel features. ``auto`` (the default) gives kernel features a scaler and linear
models, and tsfresh's few hundred statistics tree ensembles and boosting; the stock spaces
stay available by name.
"""
from __future__ import annotations

import numpy as np

AUTO = "auto"


def search_space(name: str, feature_kind: str, *, n_classes: int, n_samples: int,
                 n_features: int, random_state: int | None):
    """A TPOT ``search_space`` argument: a stock name as is, or ``auto`` built for the matrix."""
    if name != AUTO:
        return name
    if feature_kind == "kernel":
        return _linear_models(random_state)
    return _tree_models(n_classes, n_samples, n_features, random_state)


def _linear_models(random_state):
    from ConfigSpace import Categorical, ConfigurationSpace, Float
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.preprocessing import StandardScaler
    from tpot.search_spaces.nodes import EstimatorNode
    from tpot.search_spaces.pipelines import ChoicePipeline, SequentialPipeline

    from .models import RidgeClassifierProba

    seed = {} if random_state is None else {"random_state": random_state}
    # Few iterations: on thousands of features a fully converged fit costs seconds per fold,
    # and a search learns more from many rough candidates than from a few polished ones.
    ridge = EstimatorNode(RidgeClassifierProba, ConfigurationSpace({
        "alphas": Categorical("alphas", [0.1, 1.0, 10.0, 100.0, 1000.0]),
        "class_weight": Categorical("class_weight", [None, "balanced"]),
    }), hyperparameter_parser=_ridge_alphas)
    logistic = EstimatorNode(LogisticRegression, ConfigurationSpace({
        "C": Float("C", (1e-4, 1e2), log=True), "max_iter": 300,
        "class_weight": Categorical("class_weight", [None, "balanced"]), **seed}))
    sgd = EstimatorNode(SGDClassifier, ConfigurationSpace({
        "loss": Categorical("loss", ["log_loss", "modified_huber"]),
        "alpha": Float("alpha", (1e-6, 1e-1), log=True),
        "penalty": Categorical("penalty", ["l2", "elasticnet"]), "max_iter": 300, **seed}))
    return SequentialPipeline([EstimatorNode(StandardScaler, {}),
                               ChoicePipeline([ridge, logistic, sgd])])


def _ridge_alphas(params: dict) -> dict:
    # ConfigSpace holds scalars; RidgeClassifierCV wants a grid: search one decade around it.
    params = dict(params)
    centre = params.pop("alphas")
    return {**params, "alphas": tuple(np.logspace(-1, 1, 5) * centre)}


def _tree_models(n_classes, n_samples, n_features, random_state):
    from tpot.config import get_search_space
    from tpot.search_spaces.pipelines import SequentialPipeline

    sizes = {"n_classes": n_classes, "n_samples": n_samples, "n_features": n_features,
             "random_state": random_state}
    selectors = get_search_space(["SelectFwe", "SelectPercentile", "VarianceThreshold",
                                  "Passthrough"], **sizes)
    models = get_search_space(["ExtraTreesClassifier", "RandomForestClassifier",
                               "HistGradientBoostingClassifier", "LGBMClassifier",
                               "XGBClassifier"], **sizes)
    return SequentialPipeline([selectors, models])
