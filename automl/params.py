"""The parameter file: safe-loaded YAML, checked key by key against an allow-list.

The blog post's files spell objects as dotted names and calls (``tpot.TPOTClassifier``,
``MinimalFCParameters()``). They are accepted as *aliases* of allow-listed names: the text is
looked up in a table, never imported or evaluated.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from .errors import InvalidParameters
from .parsing import Columns

PIPELINE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

FC_SETTINGS = {
    "minimal": "minimal", "minimalfcparameters": "minimal", "fast": "fast",
    "efficient": "efficient", "efficientfcparameters": "efficient",
    "comprehensive": "comprehensive", "comprehensivefcparameters": "comprehensive",
}
IMPUTATION = {
    "median": "median", "impute": "median", "tsfresh.utilities.dataframe_functions.impute": "median",
    "zero": "zero", "impute_dataframe_zero": "zero",
    "tsfresh.utilities.dataframe_functions.impute_dataframe_zero": "zero",
}
SEARCH_MODEL = "tpot"
# name -> (module, class): the only estimators a parameter file can ask for.
FIXED_MODELS = {
    "random_forest": ("sklearn.ensemble", "RandomForestClassifier"),
    "extra_trees": ("sklearn.ensemble", "ExtraTreesClassifier"),
    "gradient_boosting": ("sklearn.ensemble", "GradientBoostingClassifier"),
    "hist_gradient_boosting": ("sklearn.ensemble", "HistGradientBoostingClassifier"),
    "logistic_regression": ("sklearn.linear_model", "LogisticRegression"),
    "k_neighbors": ("sklearn.neighbors", "KNeighborsClassifier"),
    "decision_tree": ("sklearn.tree", "DecisionTreeClassifier"),
    "svc": ("sklearn.svm", "SVC"),
}
SCORERS = {
    "roc_auc": "roc_auc_ovr", "roc_auc_ovr": "roc_auc_ovr", "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy", "f1_macro": "f1_macro",
    "neg_log_loss": "neg_log_loss", "log_loss": "neg_log_loss",
}
SEARCH_SPACES = ("auto", "linear", "linear-light", "graph", "graph-light")
ENGINES = ("tsfresh", "minirocket", "multirocket")
COMBINED_ORDER = ("minirocket", "multirocket", "tsfresh")
AUTO_ENGINE = "auto"


def _model_aliases() -> dict[str, str]:
    aliases = {SEARCH_MODEL: SEARCH_MODEL, "tpot.tpotclassifier": SEARCH_MODEL,
               "tpotclassifier": SEARCH_MODEL}
    for name, (module, cls) in FIXED_MODELS.items():
        for spelling in (name, cls, f"{module}.{cls}", f"sklearn.{cls}"):
            aliases[spelling.lower()] = name
    return aliases


MODEL_ALIASES = _model_aliases()


@dataclass(frozen=True)
class FeatureParams:
    columns: Columns = field(default_factory=Columns)
    # One engine, "auto" (training picks by cross-validation), or several joined side by side.
    engine: str | tuple[str, ...] = "tsfresh"
    default_fc_parameters: str | dict = "fast"  # a settings name, or {calculator: params or None}
    impute_function: str = "median"
    n_jobs: int = -1  # tsfresh's processes in the training worker: -1 picks by a timed sample


@dataclass(frozen=True)
class SelectionParams:
    enabled: bool = True
    fdr_level: float = 0.05
    # Also try a model on a few important, cheap-to-compute tsfresh features, and keep it when
    # cross-validation cannot tell it from the one on every relevant feature (training.py).
    compact: bool = True


@dataclass(frozen=True)
class SearchParams:
    """TPOT's budget and objective."""

    generations: int = 5
    population_size: int = 20
    max_time_mins: float = 5.0
    max_eval_time_mins: float = 1.0
    scoring: str = "roc_auc_ovr"
    search_space: str = "auto"  # shaped for the engine's features (search_spaces.py)
    random_state: int | None = None
    n_jobs: int = -1
    verbosity: int = 0


@dataclass(frozen=True)
class ModelParams:
    model: str = SEARCH_MODEL
    search: SearchParams = field(default_factory=SearchParams)
    estimator_args: dict = field(default_factory=dict)  # for a fixed estimator
    cv: int = 5
    positive_class: Any = None


@dataclass(frozen=True)
class TrainingParams:
    pipeline_id: str | None = None
    features: FeatureParams = field(default_factory=FeatureParams)
    selection: SelectionParams = field(default_factory=SelectionParams)
    model: ModelParams = field(default_factory=ModelParams)
    run_async: bool = False  # `async: true`: answer 202 with a job at once

    def describe_features(self) -> dict:
        """The resolved feature-engineering parameters, echoed back as ``featureEngParams``."""
        described = asdict(self.features)
        described.update(described.pop("columns"))
        described["feature_selection"] = asdict(self.selection)
        return described


@dataclass(frozen=True)
class PredictionParams:
    pipeline_id: str


# ---------------------------------------------------------------------------------------------
# Loading


def load_yaml(payload: bytes, field_name: str = "params") -> dict:
    try:
        document = yaml.safe_load(payload.decode("utf-8-sig")) if payload.strip() else {}
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise InvalidParameters(f"{field_name} is not valid YAML ({_first_line(err)}). "
                                "Send a YAML mapping such as 'pipeline_id: 1'.") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise InvalidParameters(f"{field_name} must be a YAML mapping of keys to values, "
                                f"not a {type(document).__name__}.")
    return document


def parse_training_params(payload: bytes) -> TrainingParams:
    doc = _Section(load_yaml(payload), "")
    pipeline_id = doc.pop("pipeline_id", None, _pipeline_id)
    legacy_tpot = doc.pop_section("tpot_classifier")  # the post's earliest file layout
    features = _feature_params(doc.pop_section("extract_features", "feature_extraction"))
    selection = _selection_params(doc.pop_section("feature_selection"))
    training = doc.pop_section("model_training")
    if legacy_tpot.values:
        if training.values:
            raise InvalidParameters("Use either 'tpot_classifier' or 'model_training', not both.")
        training = _Section({"model": "tpot", "model_args": legacy_tpot.values}, "model_training")
    model = _model_params(training)
    run_async = doc.pop("async", False, _bool)
    doc.reject_rest()
    return TrainingParams(pipeline_id, features, selection, model, run_async)


def parse_prediction_params(payload: bytes) -> PredictionParams:
    doc = _Section(load_yaml(payload), "")
    pipeline_id = doc.pop("pipeline_id", None, _pipeline_id)
    doc.reject_rest()
    if pipeline_id is None:
        raise InvalidParameters("params has no 'pipeline_id': name the trained pipeline to "
                                "predict with, e.g. 'pipeline_id: 1' (GET /models lists them).")
    return PredictionParams(pipeline_id)


def _feature_params(section: _Section) -> FeatureParams:
    default = Columns()
    columns = Columns(
        id=section.pop("column_id", default.id, _column_name),
        value=section.pop("column_value", default.value, _column_name),
        sort=section.pop("column_sort", default.sort, _optional(_column_name)),
        kind=section.pop("column_kind", default.kind, _optional(_column_name)),
        label=section.pop("column_label", default.label, _column_name),
    )
    engine = section.pop("engine", FeatureParams.engine, _engine)
    settings = section.pop("default_fc_parameters", FeatureParams.default_fc_parameters,
                           _fc_parameters)
    impute = section.pop("impute_function", FeatureParams.impute_function,
                         _choice(IMPUTATION, "median or zero"))
    n_jobs = section.pop("n_jobs", FeatureParams.n_jobs, _int(minimum=-1))
    section.reject_rest()
    return FeatureParams(columns, engine, settings, impute, n_jobs)


def _selection_params(section: _Section) -> SelectionParams:
    enabled = section.pop("enabled", SelectionParams.enabled, _bool)
    fdr_level = section.pop("fdr_level", SelectionParams.fdr_level, _fraction)
    compact = section.pop("compact", SelectionParams.compact, _bool)
    section.reject_rest()
    return SelectionParams(enabled, fdr_level, compact)


def _model_params(section: _Section) -> ModelParams:
    model = section.pop("model", SEARCH_MODEL, _choice(MODEL_ALIASES, "tpot or one of "
                                                        + ", ".join(FIXED_MODELS)))
    cv = section.pop("cv", ModelParams.cv, _int(minimum=2, maximum=20))
    positive_class = section.pop("positive_class", None, _scalar)
    args = section.pop_section("model_args")
    section.reject_rest()
    if model == SEARCH_MODEL:
        search = _search_params(args)
        return ModelParams(model, search, {}, cv, positive_class)
    return ModelParams(model, SearchParams(), _estimator_args(model, args), cv, positive_class)


def _search_params(section: _Section) -> SearchParams:
    d = SearchParams()
    search = SearchParams(
        generations=section.pop("generations", d.generations, _int(minimum=1)),
        population_size=section.pop("population_size", d.population_size, _int(minimum=2)),
        max_time_mins=section.pop("max_time_mins", d.max_time_mins, _positive_number),
        max_eval_time_mins=section.pop("max_eval_time_mins", d.max_eval_time_mins,
                                       _positive_number),
        scoring=section.pop("scoring", d.scoring, _choice(SCORERS, ", ".join(SCORERS))),
        search_space=section.pop("search_space", d.search_space,
                                 _choice({s: s for s in SEARCH_SPACES}, ", ".join(SEARCH_SPACES))),
        random_state=section.pop("random_state", d.random_state, _optional(_int(minimum=0))),
        n_jobs=section.pop("n_jobs", d.n_jobs, _n_jobs),
        verbosity=section.pop("verbosity", d.verbosity, _int(minimum=0, maximum=5)),
    )
    section.reject_rest()
    return search


def _estimator_args(model: str, section: _Section) -> dict:
    """Arguments for a fixed estimator: names it accepts, plain scalar values it validates."""
    from sklearn.utils._param_validation import InvalidParameterError

    estimator = build_fixed_estimator(model, {})
    allowed = estimator.get_params(deep=False)
    args = {}
    for key in list(section.values):
        if key not in allowed:
            raise InvalidParameters(f"'{section.path(key)}' is not an argument of "
                                    f"{type(estimator).__name__}; allowed: {', '.join(sorted(allowed))}.")
        args[key] = section.pop(key, None, _scalar)
    try:
        estimator.set_params(**args)._validate_params()
    except (InvalidParameterError, ValueError, TypeError) as err:
        raise InvalidParameters(f"model_training.model_args: {err}") from None
    return args


def build_fixed_estimator(model: str, args: dict):
    import importlib

    module, cls = FIXED_MODELS[model]
    estimator = getattr(importlib.import_module(module), cls)()
    if model == "svc":
        estimator.set_params(probability=True)  # scores need predict_proba
    return estimator.set_params(**args)


# ---------------------------------------------------------------------------------------------
# Key-by-key checking


class _Section:
    """A mapping being consumed key by key, so whatever is left over can be named as unknown."""

    def __init__(self, values: Any, path: str):
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise InvalidParameters(f"'{path}' must be a mapping of keys to values.")
        self.values = dict(values)
        self.prefix = path

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else str(key)

    def pop(self, key: str, default: Any, check) -> Any:
        if key not in self.values:
            return default
        value = self.values.pop(key)
        try:
            return check(value)
        except _Wrong as wrong:
            raise InvalidParameters(f"'{self.path(key)}' {wrong} (got {value!r}).") from None

    def pop_section(self, *keys: str) -> _Section:
        present = [k for k in keys if k in self.values]
        if len(present) > 1:
            raise InvalidParameters(f"Give only one of {', '.join(map(repr, present))}: they are "
                                    "the same section.")
        key = present[0] if present else keys[0]
        return _Section(self.values.pop(key, None), self.path(key))

    def reject_rest(self) -> None:
        if self.values:
            key = sorted(map(str, self.values))[0]
            where = f"in '{self.prefix}'" if self.prefix else "at the top level"
            raise InvalidParameters(f"Unknown key '{self.path(key)}' {where}. Check the spelling "
                                    "against the parameter reference in the README.")


class _Wrong(Exception):
    """What a value should have been; _Section.pop adds the key and the value."""


def _int(minimum: int | None = None, maximum: int | None = None):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Wrong("must be a whole number")
        if minimum is not None and value < minimum:
            raise _Wrong(f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise _Wrong(f"must be at most {maximum}")
        return value
    return check


def _n_jobs(value):
    if isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1):
        return value
    raise _Wrong("must be a positive number of workers, or -1 for one per CPU")


def _positive_number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise _Wrong("must be a number greater than 0")
    return float(value)


def _fraction(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise _Wrong("must be a number in (0, 1]")
    return float(value)


def _bool(value):
    if not isinstance(value, bool):
        raise _Wrong("must be true or false")
    return value


def _scalar(value):
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise _Wrong("must be a single value (text, number, true/false or null)")
    return value


def _optional(check):
    return lambda value: None if value is None else check(value)


def _column_name(value):
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
        raise _Wrong("must be a column name")
    return str(value)


def _pipeline_id(value):
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not PIPELINE_ID.match(text):
        raise _Wrong("must be a number or a name of letters, digits, '_', '.', '-' "
                     "(at most 64, starting with a letter or digit)")
    return text


def _choice(table: dict[str, str], allowed: str):
    def check(value):
        if not isinstance(value, str) or value.strip().lower().removesuffix("()") not in table:
            raise _Wrong(f"must be one of: {allowed}")
        return table[value.strip().lower().removesuffix("()")]
    return check


def _engine(value):
    """One engine name, auto, or a list of engines to combine (one alone means just that one)."""
    allowed = f"must be {AUTO_ENGINE}, one of {', '.join(ENGINES)}, or a list of them to combine"
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) for n in names):
        raise _Wrong(allowed)
    names = [n.strip().lower() for n in names]
    if names == [AUTO_ENGINE]:
        return AUTO_ENGINE
    if not all(n in ENGINES for n in names) or len(set(names)) != len(names):
        raise _Wrong(allowed + " (each once)")
    # Cheapest first, as auto joins them: minirocket+tsfresh whichever way it was written.
    return names[0] if len(names) == 1 else tuple(sorted(names, key=COMBINED_ORDER.index))


def _fc_parameters(value):
    """A settings name, a list of calculator names, or {calculator: None | [ {param: value} ]}."""
    from tsfresh.feature_extraction.settings import ComprehensiveFCParameters

    if isinstance(value, str):
        name = value.strip().lower().removesuffix("()").rsplit(".", 1)[-1]
        if name in FC_SETTINGS:
            return FC_SETTINGS[name]
        raise _Wrong("must be minimal, fast, efficient, comprehensive, or a list of tsfresh calculators")
    if isinstance(value, list):
        value = {name: None for name in value}
    if not isinstance(value, dict) or not value:
        raise _Wrong("must be minimal, fast, efficient, comprehensive, or a list of tsfresh calculators")
    known = ComprehensiveFCParameters()
    for name, params in value.items():
        if name not in known:
            raise _Wrong(f"names an unknown tsfresh calculator {name!r}")
        if params is not None and not (
            isinstance(params, list)
            and all(isinstance(p, dict) and all(isinstance(v, (str, int, float, bool))
                                                for v in p.values()) for p in params)
        ):
            raise _Wrong(f"gives {name!r} parameters that are not a list of mappings of plain values")
    return value


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
