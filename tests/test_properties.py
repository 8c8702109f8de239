"""Property tests of the parsers a client's bytes reach: whatever comes in, the answer is a
valid result or the service's 4xx error, never another exception (which would be a 500).
Uploads are JSON, CSV and Parquet (whole, cut short or with bytes changed), in the long and the
wide layout.
"""
from __future__ import annotations

import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
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
WIDE_COLUMNS = st.sampled_from([Columns(), Columns(kind="kind")])
LAYOUT_AND_COLUMNS = st.one_of(st.tuples(st.just("long"), COLUMNS),
                               st.tuples(st.just("wide"), WIDE_COLUMNS))


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


@given(_uploads(), NAMES, TYPES, LAYOUT_AND_COLUMNS)
@FAST
def test_any_upload_as_raw_data(payload, filename, content_type, layout_and_columns):
    layout, columns = layout_and_columns
    result = _accepted_or_refused(lambda p: read_raw_data(
        p, filename=filename, content_type=content_type, columns=columns, max_series=5,
        layout=layout), payload)
    if result is not None:
        assert list(result.columns)[0] == columns.id and result[columns.value].dtype == "float64"
        assert result[columns.id].nunique() <= 5


@given(_uploads(), NAMES, TYPES)
@FAST
def test_any_upload_as_labels(payload, filename, content_type):
    result = _accepted_or_refused(lambda p: read_labels(
        p, filename=filename, content_type=content_type), payload)
    assert result is None or isinstance(result, pd.Series)


# Parquet: typed columns as pyarrow writes them, then the file whole, cut short or damaged.
ARROW_COLUMNS = {
    "int": (pa.int64(), st.none() | st.integers(-2**63, 2**63 - 1)),
    "float": (pa.float64(), st.none() | st.floats()),
    "text": (pa.string(), st.none() | st.text(max_size=10)),
    "bool": (pa.bool_(), st.none() | st.booleans()),
    "list": (pa.list_(pa.int64()), st.none() | st.lists(st.integers(-5, 5), max_size=3)),
    "date": (pa.timestamp("ms"), st.none() | st.integers(-2**40, 2**40)),
}


@st.composite
def _parquet_uploads(draw):
    plausible = draw(st.booleans())  # the columns a series has, of types it could have
    rows = draw(st.integers(1 if plausible else 0, 8))
    others = ["time", "kind", "label", "t1", "t2"]
    names = (["example_id", "measurement"] if plausible else []) + draw(st.lists(
        st.sampled_from(others if plausible else ["example_id", "measurement", *others]),
        min_size=0 if plausible else 1, max_size=4, unique=True))
    arrays = {}
    for name in names:
        types = {"example_id": ["int", "text"], "measurement": ["float", "int"],
                 "t1": ["float"], "t2": ["float", "int"]}.get(name) if plausible else None
        kind, values = ARROW_COLUMNS[draw(st.sampled_from(types or sorted(ARROW_COLUMNS)))]
        if plausible and name == "example_id":  # a few series, each on a few rows
            values = st.integers(0, 2) if kind == pa.int64() else st.sampled_from(["a", "b", "7"])
        array = pa.array(draw(st.lists(values, min_size=rows, max_size=rows)), type=kind)
        arrays[name] = array.dictionary_encode() if draw(st.booleans()) and kind == pa.string() \
            else array
    out = io.BytesIO()
    pq.write_table(pa.table(arrays), out, compression=draw(st.sampled_from(
        ["none", "snappy", "zstd", "gzip"])), row_group_size=draw(st.integers(1, 8)))
    payload = out.getvalue()
    damage = draw(st.sampled_from(["none", "none", "cut", "flip", "tail"]))
    at = draw(st.integers(0, max(0, len(payload) - 1)))
    if damage == "cut":
        payload = payload[:at]
    elif damage == "flip":
        payload = payload[:at] + bytes([payload[at] ^ draw(st.integers(1, 255))]) + payload[at + 1:]
    elif damage == "tail":
        payload = payload[:at] + draw(st.binary(max_size=64)) + b"PAR1"
    return payload


@given(_parquet_uploads(), st.sampled_from([None, "data.parquet", "x.bin"]),
       st.sampled_from([None, "application/vnd.apache.parquet", "application/octet-stream"]),
       LAYOUT_AND_COLUMNS)
@FAST
def test_any_parquet_upload_as_raw_data(payload, filename, content_type, layout_and_columns):
    layout, columns = layout_and_columns
    result = _accepted_or_refused(lambda p: read_raw_data(
        p, filename=filename, content_type=content_type, columns=columns, max_series=5,
        layout=layout), payload)
    if result is not None:
        assert list(result.columns)[0] == columns.id and result[columns.value].dtype == "float64"
        assert result[columns.id].nunique() <= 5


@given(_parquet_uploads())
@FAST
def test_any_parquet_upload_as_labels(payload):
    result = _accepted_or_refused(read_labels, payload)
    assert result is None or isinstance(result, pd.Series)
