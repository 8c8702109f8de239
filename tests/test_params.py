"""The parameter file: defaults, the post's spellings, and a 400 naming every bad key."""
from pathlib import Path

import pytest

from automl.errors import InvalidParameters
from automl.params import parse_prediction_params, parse_training_params

ROOT = Path(__file__).resolve().parents[1]


def test_empty_file_means_every_default():
    params = parse_training_params(b"")
    assert params.pipeline_id is None
    assert params.features.default_fc_parameters == "fast" and params.features.n_jobs == -1
    assert params.features.columns.id == "example_id"
    assert params.selection.enabled and params.selection.fdr_level == 0.05
    assert params.selection.compact
    assert params.model.model == "tpot" and params.model.cv == 5
    assert params.features.engine == "tsfresh"  # the post's design stays the default
    assert params.model.search.search_space == "auto"


@pytest.mark.parametrize("value, engine", [
    ("auto", "auto"), ("MiniRocket", "minirocket"), ("[multirocket]", "multirocket"),
    ("[tsfresh, minirocket]", ("minirocket", "tsfresh")),
])
def test_engines_by_name_or_joined_in_a_list(value, engine):
    params = parse_training_params(f"extract_features: {{engine: {value}}}".encode())
    assert params.features.engine == engine


def test_the_posts_parameter_file_is_accepted_verbatim():
    post_file = b"""
pipeline_id: 2
model_training:
  model_args:
    generations: 20
    population_size: 10
    verbosity: 2
    max_time_mins: 5
  model: tpot.TPOTClassifier
extract_features:
  column_id: example_id
  impute_function: tsfresh.utilities.dataframe_functions.impute
  default_fc_parameters: MinimalFCParameters()
"""
    params = parse_training_params(post_file)
    assert params.pipeline_id == "2"
    assert params.model.model == "tpot"
    assert params.model.search.generations == 20 and params.model.search.max_time_mins == 5.0
    assert params.features.default_fc_parameters == "minimal"
    assert params.features.impute_function == "median"


def test_the_posts_earliest_layout_is_accepted():
    params = parse_training_params(b"tpot_classifier: {generations: 3, population_size: 4}")
    assert params.model.model == "tpot" and params.model.search.population_size == 4


def test_repository_parameter_files_parse():
    assert parse_training_params((ROOT / "pipeline_parameters.yml").read_bytes()).pipeline_id == "1"
    assert parse_prediction_params((ROOT / "test_parameters.yml").read_bytes()).pipeline_id == "1"


@pytest.mark.parametrize("spelling", ["sklearn.ensemble.RandomForestClassifier",
                                      "RandomForestClassifier", "random_forest"])
def test_fixed_estimator_spellings_are_aliases(spelling):
    params = parse_training_params(
        f"model_training: {{model: {spelling}, model_args: {{n_estimators: 7}}}}".encode())
    assert params.model.model == "random_forest"
    assert params.model.estimator_args == {"n_estimators": 7}


def test_calculator_list_is_accepted():
    params = parse_training_params(b"extract_features: {default_fc_parameters: [mean, fft_coefficient]}")
    assert params.features.default_fc_parameters == {"mean": None, "fft_coefficient": None}


@pytest.mark.parametrize("document, named", [
    (b"pipeline_idd: 1", "pipeline_idd"),
    (b"extract_features: {column_idd: x}", "extract_features.column_idd"),
    (b"model_training: {model_args: {generation: 3}}", "model_training.model_args.generation"),
    (b"model_training: {model_args: {generations: three}}", "model_training.model_args.generations"),
    (b"model_training: {model_args: {max_time_mins: -1}}", "model_training.model_args.max_time_mins"),
    (b"model_training: {model: os.system}", "model_training.model"),
    (b"model_training: {model: random_forest, model_args: {n_estimators: -3}}", "n_estimators"),
    (b"model_training: {model: random_forest, model_args: {bogus: 1}}", "model_training.model_args.bogus"),
    (b"model_training: {model: random_forest, model_args: {n_estimators: [1, 2]}}", "n_estimators"),
    (b"model_training: {cv: 1}", "model_training.cv"),
    (b"extract_features: {default_fc_parameters: __import__('os')}", "default_fc_parameters"),
    (b"extract_features: {default_fc_parameters: [not_a_calculator]}", "not_a_calculator"),
    (b"feature_selection: {fdr_level: 2}", "feature_selection.fdr_level"),
    (b"feature_selection: {enabled: maybe}", "feature_selection.enabled"),
    (b"feature_selection: {compact: 30}", "feature_selection.compact"),
    (b"pipeline_id: ../../etc", "pipeline_id"),
    (b"extract_features: 3", "extract_features"),
    (b"extract_features: {engine: rocket}", "extract_features.engine"),
    (b"extract_features: {engine: [auto, tsfresh]}", "extract_features.engine"),
    (b"extract_features: {engine: [tsfresh, tsfresh]}", "extract_features.engine"),
    (b"extract_features: {engine: []}", "extract_features.engine"),
    (b"model_training: {model_args: {search_space: everything}}", "search_space"),
])
def test_bad_keys_are_named(document, named):
    with pytest.raises(InvalidParameters) as err:
        parse_training_params(document)
    assert named in err.value.message


@pytest.mark.parametrize("document", [b"[1, 2]", b"key: [unclosed", b"\xff\xfe\x00"])
def test_unreadable_files_are_refused(document):
    with pytest.raises(InvalidParameters) as err:
        parse_training_params(document)
    assert "params" in err.value.message


def test_yaml_tags_are_never_constructed():
    with pytest.raises(InvalidParameters):
        parse_training_params(b"pipeline_id: !!python/object/apply:os.system ['true']")


def test_prediction_needs_a_pipeline_id():
    with pytest.raises(InvalidParameters) as err:
        parse_prediction_params(b"")
    assert "pipeline_id" in err.value.message
