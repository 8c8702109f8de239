"""Property tests of the parsers a client's bytes reach: whatever comes in, the answer is a
valid result or the service's 4xx error, never another exception (which would be a 500).
"""
from __future__ import annotations

import json

import pandas as pd
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automl.errors import ApiError
from automl.params import (Limits, PredictionParams, TrainingParams, parse_prediction_params,
                           parse_training_params)
from automl.parsing import Columns, read_labels, read_raw_data

LIMITS = Limits(cpus=2)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

# Keys and values a parameter file is made of, real and wrong ones mixed, nested as sections.
KEYS = st.sampled_from([
    "pipeline_id", "async", "extract_features", "feature_selection", "model_training",
    "tpot_classifier", "model_args", "model", "cv", "engine", "default_fc_parameters", "n_jobs",
    "column_id", "column_value", "column_kind", "column_sort", "max_time_mins", "generations",
    "n_estimators", "random_state", "quantile", "q", "fdr_level", "bogus", "version"])
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from(["tpot", "extra_trees", "k_neighbors", "auto", "minimal", "fast",
                              "minirocket", "m__v", "", "010", "0x1F", "1:30", "../x"])
           | st.text(max_size=30))
DOCUMENTS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(KEYS, inner, max_size=5), max_leaves=25)


def _accepted_or_refused(parse, payload):
    try:
        return parse(payload)
    except ApiError as err:
        assert 400 <= err.status < 500, err
        assert err.message and len(err.message) < 1_000
        return None


@given(st.binary(max_size=2_000))
@FAST
def test_any_bytes_as_a_training_parameter_file(payload):
    result = _accepted_or_refused(lambda p: parse_training_params(p, LIMITS), payload)
    assert result is None or isinstance(result, TrainingParams)


@given(st.dictionaries(KEYS, DOCUMENTS, max_size=6))
@FAST
def test_any_yaml_document_as_a_training_parameter_file(document):
    payload = yaml.safe_dump(document).encode()
    result = _accepted_or_refused(lambda p: parse_training_params(p, LIMITS), payload)
    if result is not None:  # what is accepted is within its ranges
        assert 0 < result.model.max_time_mins <= LIMITS.max_budget_mins
        assert result.features.n_jobs <= LIMITS.cpus and result.model.search.n_jobs <= LIMITS.cpus


@given(st.binary(max_size=500) | st.dictionaries(KEYS, DOCUMENTS, max_size=4).map(
    lambda d: yaml.safe_dump(d).encode()))
@FAST
def test_any_bytes_as_a_prediction_parameter_file(payload):
    result = _accepted_or_refused(parse_prediction_params, payload)
    assert result is None or isinstance(result, PredictionParams)


CELLS = (st.none() | st.booleans() | st.integers(-2**80, 2**80) | st.floats()
         | st.text(max_size=10) | st.lists(st.integers(), max_size=2))
TABLES = st.dictionaries(st.sampled_from(["example_id", "measurement", "time", "kind", "label",
                                          "other"]),
                         st.lists(CELLS, min_size=0, max_size=8), min_size=1, max_size=5)
NAMES = st.sampled_from([None, "data.json", "data.csv", "x.bin"])
TYPES = st.sampled_from([None, "application/json", "text/csv", "application/octet-stream"])
COLUMNS = st.sampled_from([Columns(), Columns(sort="time"), Columns(kind="kind", sort="time")])


def _uploads():
    """Raw bytes, and tables written in each format the service reads."""
    def as_bytes(table, how):
        lengths = {len(v) for v in table.values()}
        if how == "columns":
            return json.dumps({k: {str(i): v for i, v in enumerate(vs)}
                               for k, vs in table.items()}).encode()
        if how == "records" and len(lengths) == 1:
            n = lengths.pop()
            return json.dumps([{k: vs[i] for k, vs in table.items()} for i in range(n)]).encode()
        if how == "csv" and len(lengths) == 1:
            return pd.DataFrame(table).to_csv(index=False).encode()
        return json.dumps(table).encode()
    return st.binary(max_size=1_000) | st.builds(
        as_bytes, TABLES, st.sampled_from(["columns", "records", "csv", "lists"]))


@given(_uploads(), NAMES, TYPES, COLUMNS)
@FAST
def test_any_upload_as_raw_data(payload, filename, content_type, columns):
    result = _accepted_or_refused(lambda p: read_raw_data(
        p, filename=filename, content_type=content_type, columns=columns, max_series=5), payload)
    if result is not None:
        assert list(result.columns)[0] == columns.id and result[columns.value].dtype == "float64"
        assert result[columns.id].nunique() <= 5


@given(_uploads(), NAMES, TYPES)
@FAST
def test_any_upload_as_labels(payload, filename, content_type):
    result = _accepted_or_refused(lambda p: read_labels(
        p, filename=filename, content_type=content_type), payload)
    assert result is None or isinstance(result, pd.Series)
