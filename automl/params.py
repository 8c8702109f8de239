"""The parameter file: literal YAML (``safe_yaml``), checked key by key against rules with ranges.

The blog post's files spell objects as dotted names and calls (``tpot.TPOTClassifier``,
``MinimalFCParameters()``). They are accepted as *aliases* of allow-listed names: the text is
looked up in a table, never imported or evaluated. Every number has a range; the ranges that
depend on the instance (its CPUs, the longest budget the operator allows) come from
:class:`Limits`. :func:`training_schema` and :func:`prediction_schema` describe the same rules
in JSON Schema for ``/openapi.json``.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from . import engines, estimators, safe_yaml
from .checks import (AnyOf, Field, Flag, Nullable, Number, OneOf, Rule, Section, Text, Whole,
                     Wrong, expect_mapping)
from .compute import available_cpus, default_job_memory_mb
from .errors import InvalidParameters, excerpt
from .fc_parameters import FcParameters
from .parsing import LAYOUTS, LONG, WIDE, Columns

PIPELINE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SEARCH_MODEL = "tpot"
AUTO_ENGINE = "auto"
ENGINES = tuple(engines.REGISTRY)
COMBINED_ORDER = engines.JOIN_ORDER
SCORERS = ("roc_auc_ovr", "accuracy", "balanced_accuracy", "f1_macro", "neg_log_loss")
SCORER_ALIASES = {"roc_auc": "roc_auc_ovr", "log_loss": "neg_log_loss"}
SEARCH_SPACES = ("auto", "linear", "linear-light", "graph", "graph-light")
IMPUTATION_ALIASES = {"impute": "median", "tsfresh.utilities.dataframe_functions.impute": "median",
                      "impute_dataframe_zero": "zero",
                      "tsfresh.utilities.dataframe_functions.impute_dataframe_zero": "zero"}
MODEL_ALIASES = {"tpot.tpotclassifier": SEARCH_MODEL, "tpotclassifier": SEARCH_MODEL,
                 **estimators.aliases()}
FIXED_MODELS = tuple(estimators.FIXED_MODELS)
MAX_GENERATIONS, MAX_POPULATION = 1_000, 1_000
MAX_VERSION = 1_000_000
MAX_ENSEMBLE_COST = 100.0  # times the chosen engine's one-series prediction
MIN_CV_SERIES, MAX_CV_SERIES = 100, 1_000_000
SECTIONS = ("extract_features", "feature_selection", "model_training", "tpot_classifier")


@dataclass(frozen=True)
class Limits:
    """The ranges that depend on the instance: its settings and the CPUs it may use."""

    cpus: int = 1
    max_budget_mins: float = 60.0          # AUTOML_MAX_BUDGET_MINS
    fixed_model_budget_mins: float = 10.0  # AUTOML_FIXED_MODEL_BUDGET_MINS
    # AUTOML_JOB_MEMORY_MB; by default, as the service's: the instance's memory
    job_memory_mb: int = field(default_factory=lambda: default_job_memory_mb(1))

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(cpus=available_cpus(),
                   max_budget_mins=float(settings.get("MAX_BUDGET_MINS", cls.max_budget_mins)),
                   fixed_model_budget_mins=float(settings.get("FIXED_MODEL_BUDGET_MINS",
                                                              cls.fixed_model_budget_mins)),
                   job_memory_mb=int(settings.get("JOB_MEMORY_MB") or default_job_memory_mb(
                       int(settings.get("MAX_CONCURRENT_TRAININGS", 1)))))


@dataclass(frozen=True)
class FeatureParams:
    columns: Columns = field(default_factory=Columns)
    # One engine, "auto" (training picks by cross-validation), or several joined side by side.
    engine: str | tuple[str, ...] = "tsfresh"
    default_fc_parameters: str | dict = "fast"  # a settings name, or {calculator: params or None}
    impute_function: str = "median"
    n_jobs: int = -1  # tsfresh's processes in the training worker: -1 picks by a timed sample
    # How raw_data is laid out: long (a row per measurement) or wide (a row per series).
    layout: str = LONG


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
    # The whole job's budget: the search's max_time_mins, or for a fixed model
    # model_training.max_time_mins (default: the instance's fixed-model budget).
    max_time_mins: float = SearchParams.max_time_mins
    # A search's ensemble predicts one series in at most this many times the chosen engine's
    # time, so an ensemble does not make serving slow; 0: no ensemble.
    ensemble_cost: float = 3.0
    # Above this many series, candidates are cross-validated on a stratified sample of about
    # this many (training_data.cv_rows).
    cv_series: int = 2_000

    @property
    def searching(self) -> bool:
        return self.model == SEARCH_MODEL


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
    version: int | None = None  # a version of the pipeline; None: the current one
    layout: str | None = None   # of raw_data; None: the layout the pipeline was trained on


# ---------------------------------------------------------------------------------------------
# Rules particular to parameter files


class PipelineId(Rule):
    """An id exactly as written (``010`` is ``"010"``): it names keys and files."""

    allowed = ("must be a number or a name of letters, digits, '_', '.', '-' (at most 64, "
               "starting with a letter or digit)")

    def __call__(self, value):
        text = safe_yaml.written(value) if isinstance(value, (str, int, float)) \
            and not isinstance(value, bool) else ""
        if not PIPELINE_ID.match(text):
            raise Wrong(self.allowed)
        return text

    def schema(self):
        return {"anyOf": [{"type": "string", "pattern": PIPELINE_ID.pattern},
                          {"type": "integer", "minimum": 0}]}


class Engine(Rule):
    """One engine name, auto, or a list of engines to join (one alone means just that one)."""

    allowed = f"must be {AUTO_ENGINE}, one of {', '.join(ENGINES)}, or a list of them to combine"

    def __call__(self, value):
        names = value if isinstance(value, list) else [value]
        if not names or len(names) > len(ENGINES) or not all(isinstance(n, str) for n in names):
            raise Wrong(self.allowed)
        names = [n.strip().lower() for n in names]
        if names == [AUTO_ENGINE]:
            return AUTO_ENGINE
        if not all(n in ENGINES for n in names) or len(set(names)) != len(names):
            raise Wrong(self.allowed + " (each once)")
        # Cheapest first, as auto joins them: minirocket+tsfresh whichever way it was written.
        return names[0] if len(names) == 1 else tuple(sorted(names, key=COMBINED_ORDER.index))

    def schema(self):
        return {"anyOf": [{"type": "string", "enum": [AUTO_ENGINE, *ENGINES]},
                          {"type": "array", "items": {"type": "string", "enum": list(ENGINES)},
                           "minItems": 1, "maxItems": len(ENGINES), "uniqueItems": True}]}


def _workers(cpus: int, allow_zero: bool) -> Rule:
    """-1 (one per CPU) or a count no larger than the CPUs this instance may use."""
    lowest = 0 if allow_zero else 1
    return AnyOf(_MinusOne(), Whole(lowest, cpus),
                 allowed=f"must be -1 (one per CPU) or from {lowest} to {cpus}, the CPUs this "
                         "service may use")


class _MinusOne(Rule):
    def __call__(self, value):
        if isinstance(value, int) and not isinstance(value, bool) and value == -1:
            return -1
        raise Wrong("must be -1")

    def schema(self):
        return {"const": -1}


COLUMN = Text()
SEED = estimators.SEED
LAYOUT = OneOf(LAYOUTS)
LAYOUT_DOC = ("how raw_data is laid out: long (a row per measurement: id, value and optional "
              "time and channel columns) or wide (a row per series, or per series and channel "
              "with column_kind; every other column but column_label is one time step, in file "
              "order)")


def _feature_section(limits: Limits) -> Section:
    d, c = FeatureParams(), Columns()
    return Section((
        Field("column_id", COLUMN, c.id, "series id column (in raw_data and labels)"),
        Field("column_value", Text(forbidden="__", why=": tsfresh joins channel and feature "
                                   "names with it"), c.value, "value column"),
        Field("column_sort", Nullable(COLUMN), c.sort, "time column to order rows by "
              "(numbers or dates); without it, file order is time order"),
        Field("column_kind", Nullable(COLUMN), c.kind, "channel column, for multivariate series"),
        Field("column_label", COLUMN, c.label, "label column of labels"),
        Field("engine", Engine(), d.engine, "tsfresh, minirocket, multirocket, auto, or a "
              "list of engines to join"),
        Field("default_fc_parameters", FcParameters(), d.default_fc_parameters,
              "tsfresh settings: minimal, fast, efficient, comprehensive, a list of calculator "
              "names, or {calculator: [ {param: value} ]}"),
        Field("impute_function", OneOf(["median", "zero"], IMPUTATION_ALIASES),
              d.impute_function, "how missing tsfresh features are filled"),
        Field("n_jobs", _workers(limits.cpus, allow_zero=True), d.n_jobs,
              "tsfresh's extraction processes: -1 automatic, 0 in-process"),
        Field("layout", LAYOUT, d.layout, LAYOUT_DOC),
    ), doc="How series become features.")


SELECTION_SECTION = Section((
    Field("enabled", Flag(), SelectionParams.enabled, "keep only tsfresh features that pass "
          "its relevance test (redone in each CV fold)"),
    Field("fdr_level", Number(0.0, 1.0, exclusive_minimum=True), SelectionParams.fdr_level,
          "the relevance test's false discovery rate"),
    Field("compact", Flag(), SelectionParams.compact, "also try a model on at most 50 "
          "important, cheap tsfresh features"),
), doc="tsfresh's feature selection.")


def _search_section(limits: Limits) -> Section:
    d = SearchParams()
    budget = Number(0.0, limits.max_budget_mins, exclusive_minimum=True)
    return Section((
        Field("generations", Whole(1, MAX_GENERATIONS), d.generations, "TPOT generations"),
        Field("population_size", Whole(2, MAX_POPULATION), d.population_size,
              "pipelines per generation"),
        Field("max_time_mins", budget, d.max_time_mins, "budget of the whole job in minutes, "
              "feature extraction included"),
        Field("max_eval_time_mins", budget, d.max_eval_time_mins,
              "budget of one pipeline's evaluation (at most max_time_mins)"),
        Field("scoring", OneOf(SCORERS, SCORER_ALIASES), d.scoring, "the search's objective"),
        Field("search_space", OneOf(SEARCH_SPACES), d.search_space, "TPOT search space"),
        Field("random_state", SEED, d.random_state, "seed, for repeatable searches"),
        Field("n_jobs", _workers(limits.cpus, allow_zero=False), d.n_jobs,
              "workers of the search's local Dask cluster (-1: one per CPU)"),
        Field("verbosity", Whole(0, 5), d.verbosity, "TPOT's log level on the server's output"),
    ), doc="TPOT's arguments (model: tpot).")


def _model_section(limits: Limits, model_args_schema: dict) -> Section:
    return Section((
        Field("model", OneOf([SEARCH_MODEL, *FIXED_MODELS], MODEL_ALIASES), SEARCH_MODEL,
              "tpot searches; or one fixed estimator"),
        Field("cv", Whole(2, 20), ModelParams.cv, "cross-validation folds (lowered to the "
              "smallest class size)"),
        Field("positive_class", Nullable(Text()), None, "binary only: whose probability "
              "/serve_prediction returns (default: the larger label)"),
        Field("max_time_mins", Number(0.0, limits.max_budget_mins, exclusive_minimum=True), None,
              f"fixed models only: the job's budget in minutes (default "
              f"{limits.fixed_model_budget_mins:g}); for tpot use model_args.max_time_mins"),
        Field("ensemble_cost", Number(0.0, MAX_ENSEMBLE_COST), ModelParams.ensemble_cost,
              "tpot only: the ensemble of candidates may take at most this many times the "
              "chosen engine's time to predict one series (0: no ensemble)"),
        Field("cv_series", Whole(MIN_CV_SERIES, MAX_CV_SERIES), ModelParams.cv_series,
              "above this many series, candidates (and the search) are cross-validated on a "
              "stratified sample of this many; the chosen model is fitted on all"),
    ), doc="The model: a TPOT search or a fixed estimator.",
        extra={"model_args": model_args_schema})


# ---------------------------------------------------------------------------------------------
# Loading


def load_yaml(payload: bytes, field_name: str = "params") -> dict:
    try:
        text = payload.decode("utf-8-sig")
        document = safe_yaml.parse(text) if text.strip() else {}
    except UnicodeDecodeError as err:
        raise InvalidParameters(f"{field_name} is not UTF-8 text (byte {err.start}). Send a "
                                "YAML mapping such as 'pipeline_id: 1'.") from None
    except yaml.YAMLError as err:
        raise InvalidParameters(f"{field_name} is not a parameter file this service reads: "
                                f"{_yaml_problem(err)}. Send a YAML mapping such as "
                                "'pipeline_id: 1'.") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise InvalidParameters(f"{field_name} must be a YAML mapping of keys to values, "
                                f"not a {type(document).__name__}.")
    return document


def parse_training_params(payload: bytes, limits: Limits = Limits()) -> TrainingParams:
    doc = dict(load_yaml(payload))
    legacy = doc.pop("tpot_classifier", None)  # the post's earliest file layout
    training = _one_of(doc, "model_training")
    if legacy is not None:
        if training is not None:
            raise InvalidParameters("Use either 'tpot_classifier' or 'model_training', not both.")
        training = {"model": SEARCH_MODEL, "model_args": expect_mapping(legacy, "tpot_classifier")}
    features = _one_of(doc, "extract_features", "feature_extraction")
    selection = _one_of(doc, "feature_selection")
    top = Section((Field("pipeline_id", PipelineId(), None, ""),
                   Field("async", Flag(), False, "")),
                  extra=dict.fromkeys(SECTIONS, {})).read(doc, "")
    return TrainingParams(top["pipeline_id"], _feature_params(features, limits),
                          SelectionParams(**SELECTION_SECTION.read(selection, "feature_selection")),
                          _model_params(training, limits), top["async"])


def parse_prediction_params(payload: bytes) -> PredictionParams:
    read = _prediction_section().read(load_yaml(payload), "")
    if read["pipeline_id"] is None:
        raise InvalidParameters("params has no 'pipeline_id': name the trained pipeline to "
                                "predict with, e.g. 'pipeline_id: 1' (GET /models lists them).")
    return PredictionParams(read["pipeline_id"], read["version"], read["layout"])


def _prediction_section() -> Section:
    return Section((
        Field("pipeline_id", PipelineId(), None, "the trained pipeline to predict with"),
        Field("version", Nullable(Whole(1, MAX_VERSION)), None,
              "one of its versions (default: the one its current alias points to)"),
        Field("layout", Nullable(LAYOUT), None, LAYOUT_DOC.replace(
            "how raw_data", "how this raw_data") + "; default: the layout the pipeline was "
            "trained on"),
    ), doc="The parameter file of POST /serve_prediction (YAML).")


def _one_of(doc: dict, *keys: str):
    present = [k for k in keys if k in doc]
    if len(present) > 1:
        raise InvalidParameters(f"Give only one of {', '.join(map(repr, present))}: they are "
                                "the same section.")
    return doc.pop(present[0]) if present else None


def _feature_params(section, limits: Limits) -> FeatureParams:
    read = _feature_section(limits).read(section, "extract_features")
    columns = Columns(id=read.pop("column_id"), value=read.pop("column_value"),
                      sort=read.pop("column_sort"), kind=read.pop("column_kind"),
                      label=read.pop("column_label"))
    named = [n for n in (columns.id, columns.value, columns.sort, columns.kind) if n is not None]
    if len(set(named)) != len(named):
        raise InvalidParameters("extract_features: column_id, column_value, column_sort and "
                                "column_kind must name different columns.")
    if read["layout"] == WIDE and columns.sort is not None:
        raise InvalidParameters("'extract_features.column_sort' is for the long layout: in the "
                                "wide layout the columns are the time steps, in file order. "
                                "Leave it out, or set layout: long.")
    return FeatureParams(columns, **read)


def _model_params(section, limits: Limits) -> ModelParams:
    section = dict(expect_mapping(section, "model_training"))
    args = section.pop("model_args", None)
    read = _model_section(limits, {}).read(section, "model_training")
    model = read["model"]
    if model == SEARCH_MODEL:
        if read["max_time_mins"] is not None:
            raise InvalidParameters("'model_training.max_time_mins' is for fixed models; a "
                                    "search's budget is 'model_training.model_args.max_time_mins'.")
        read_args = _search_section(limits).read(args, "model_training.model_args")
        if "max_eval_time_mins" not in (args or {}):  # the default, within a short budget
            read_args["max_eval_time_mins"] = min(read_args["max_eval_time_mins"],
                                                  read_args["max_time_mins"])
        search = SearchParams(**read_args)
        if search.max_eval_time_mins > search.max_time_mins:
            raise InvalidParameters(
                f"'model_training.model_args.max_eval_time_mins' ({search.max_eval_time_mins:g}) "
                f"is longer than the whole budget, max_time_mins ({search.max_time_mins:g}).")
        return ModelParams(model, search, {}, read["cv"], read["positive_class"],
                           search.max_time_mins, read["ensemble_cost"], read["cv_series"])
    given = estimators.arguments_section(model).read(args, "model_training.model_args")
    estimator_args = {k: v for k, v in given.items() if k in (args or {})}
    _validate_estimator(model, estimator_args)
    budget = read["max_time_mins"] or limits.fixed_model_budget_mins
    return ModelParams(model, SearchParams(), estimator_args, read["cv"],
                       read["positive_class"], budget, cv_series=read["cv_series"])


def _validate_estimator(model: str, args: dict) -> None:
    """scikit-learn's own checks of the arguments together (e.g. a solver and a penalty)."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        estimators.build(model, args)._validate_params()
    except (InvalidParameterError, ValueError, TypeError) as err:
        raise InvalidParameters(f"model_training.model_args: {excerpt(str(err), 300)}") from None


# ---------------------------------------------------------------------------------------------
# The same rules as JSON Schema, for /openapi.json


def training_schema(limits: Limits) -> dict:
    model_args = {"description": "For tpot: TPOT's arguments; for a fixed estimator: its "
                                 "arguments (each model's are listed).",
                  "anyOf": [_search_section(limits).schema(),
                            *(estimators.arguments_section(m).schema() for m in FIXED_MODELS)]}
    schema = Section((
        Field("pipeline_id", PipelineId(), None, "id to store the pipeline under (default: the "
              "next free whole number); an existing id gets a new version"),
        Field("async", Flag(), False, "answer 202 with a job at once instead of waiting"),
    ), doc="The parameter file of POST /train_model (YAML; every key optional).", extra={
        "extract_features": _feature_section(limits).schema(),
        "feature_selection": SELECTION_SECTION.schema(),
        "model_training": _model_section(limits, model_args).schema(),
        "tpot_classifier": {**_search_section(limits).schema(),
                            "description": "The post's earliest layout: model_args of tpot."},
    }).schema()
    return schema


def prediction_schema() -> dict:
    return _prediction_section().schema()


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What PyYAML found wrong and where, in one short line."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{err.problem or err.context or 'unreadable YAML'}{where}"[:200]
    return (str(err) or type(err).__name__)[:200]
