"""Formats beyond the post's JSON: predictions as CSV, Parquet uploads, the wide layout (UCR's),
large uploads parsed from the request's spooled file, and hostile Parquet refused.

The parsers directly for the formats' details; Flask's test client (one app, two trainings) for
the routes: content negotiation, the pipeline's layout as the prediction's default, the same
scores from every encoding of the same series.
"""
from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from automl import create_app
from automl.api import scores_csv
from automl.errors import InvalidData, InvalidParameters, PayloadTooLarge
from automl.params import Limits, parse_prediction_params, parse_training_params
from automl.parsing import Columns, read_labels, read_raw_data
from conftest import DATA, FAST_PARAMS

RAW = pd.DataFrame({"example_id": [1000, 1000, 1000, 1001, 1001, 1001],
                    "measurement": [-0.7343, -0.5, 0.25, 1.0, 2.0, 3.5]})
EXPECTED = pd.DataFrame({"example_id": ["1000"] * 3 + ["1001"] * 3,
                         "measurement": [-0.7343, -0.5, 0.25, 1.0, 2.0, 3.5]})


def sample(name: str) -> pd.DataFrame:
    """A file of data/ as exact numbers (pandas' read_json rounds some in the last digit)."""
    return read_raw_data((DATA / f"{name}.json").read_bytes()).astype({"example_id": "int64"})


def parquet(frame: pd.DataFrame, **options) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out, index=False, **options)
    return out.getvalue()


def wide(long: pd.DataFrame, kind: str | None = None) -> pd.DataFrame:
    """The long frame as one row per series (and channel), one column per time step."""
    keys = ["example_id"] + ([kind] if kind else [])
    step = long.groupby(keys, sort=False).cumcount()
    table = long.assign(step=step).pivot(index=keys, columns="step", values="measurement")
    table.columns = [f"t{c}" for c in table.columns]
    return table.reset_index()


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(actual.reset_index(drop=True), expected.reset_index(drop=True),
                                  check_dtype=False, check_exact=True)


# -- Parquet ---------------------------------------------------------------------------------

@pytest.mark.parametrize("filename, content_type", [
    ("data.parquet", None), (None, "application/vnd.apache.parquet"),
    (None, "application/x-parquet"), ("data.bin", "application/octet-stream"), (None, None)])
def test_parquet_is_recognised_by_type_name_or_magic_bytes(filename, content_type):
    read = read_raw_data(parquet(RAW), filename=filename, content_type=content_type)
    assert_same(read, EXPECTED)
    labels = read_labels(parquet(pd.DataFrame({"example_id": [1001, 1000], "label": ["b", "a"]})),
                         filename=filename, content_type=content_type)
    assert labels.to_dict() == {"1001": "b", "1000": "a"}


def test_parquet_reads_the_same_series_as_json_and_csv_to_the_last_digit():
    long = sample("data_test")
    from_json = read_raw_data((DATA / "data_test.json").read_bytes())
    for payload in (parquet(long), parquet(long, compression="zstd"),
                    parquet(long.astype({"example_id": str})), long.to_csv(index=False).encode()):
        assert_same(read_raw_data(payload), from_json)


def test_parquet_reads_only_the_columns_it_needs_and_dictionary_text_ids():
    frame = RAW.assign(example_id=RAW["example_id"].astype(str), other=["x" * 1000] * 6,
                       nested=[[1, 2]] * 6)  # a column no series has: never read
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(0, "example_id", table.column("example_id").dictionary_encode())
    out = io.BytesIO()
    pq.write_table(table, out)
    assert_same(read_raw_data(out.getvalue()), EXPECTED)


def test_a_parquet_column_of_an_unusable_type_is_refused_naming_it():
    frame = RAW.assign(measurement=[[1.0]] * 6)
    with pytest.raises(InvalidData, match="'measurement' is of the Parquet type 'list"):
        read_raw_data(parquet(frame))


@pytest.mark.parametrize("damage", ["truncated", "no footer", "flipped", "only magic",
                                    "labelled but text"])
def test_damaged_parquet_is_a_400_not_a_crash(damage):
    good = parquet(sample("data_test"))
    payload = {"truncated": good[: len(good) // 2], "no footer": good[:-8],
               "flipped": good[:4] + bytes(b ^ 0x5A for b in good[4:-8]) + good[-8:],
               "only magic": b"PAR1", "labelled but text": b"example_id,measurement\n1,2\n"}[damage]
    with pytest.raises(InvalidData) as refused:
        read_raw_data(payload, filename="x.parquet")
    assert "Parquet" in refused.value.message and len(refused.value.message) < 600


def test_damaged_column_metadata_is_a_400_not_an_abort_of_the_process():
    # Found by fuzzing: pyarrow 26 calls std::terminate when Python asks for this file's
    # column-chunk metadata (its size statistics are damaged); the parser never asks.
    fixture = Path(__file__).parent / "fixtures" / "damaged-size-statistics.parquet"
    code = ("import sys; from automl.parsing import read_raw_data, Columns; "
            "from automl.errors import InvalidData\n"
            "try: read_raw_data(open(sys.argv[1], 'rb').read(), columns=Columns(kind='kind'))\n"
            "except InvalidData as err: print(err.status, err.message)")
    ran = subprocess.run([sys.executable, "-c", code, str(fixture)], capture_output=True,
                         text=True, cwd=Path(__file__).parents[1], timeout=120)
    assert ran.returncode == 0, ran.stderr[-500:]
    assert ran.stdout.startswith("400 raw_data is not a readable Parquet file"), ran.stdout


def test_a_parquet_file_that_decodes_to_far_more_than_its_size_is_a_413():
    # Ten million equal rows: run-length encoding stores them in a few kilobytes.
    bomb = pa.table({"example_id": pa.array(np.zeros(10_000_000, dtype=np.int64)),
                     "measurement": pa.array(np.zeros(10_000_000))})
    out = io.BytesIO()
    pq.write_table(bomb, out, compression="zstd")
    assert len(out.getvalue()) < 1_000_000
    with pytest.raises(PayloadTooLarge, match="decode to about"):
        read_raw_data(out.getvalue())


def test_one_long_text_id_repeated_on_every_row_is_refused_before_it_is_spelt_out():
    ids = pa.DictionaryArray.from_arrays(pa.array(np.zeros(200_000, dtype=np.int32)),
                                         pa.array(["x" * 5_000]))
    out = io.BytesIO()
    pq.write_table(pa.table({"example_id": ids, "measurement": np.ones(200_000)}), out)
    with pytest.raises(PayloadTooLarge):  # 1 GB of ids from a file of a few kilobytes
        read_raw_data(out.getvalue())


# -- the wide layout ---------------------------------------------------------------------------

def test_wide_rows_are_series_in_column_order_and_ragged_ends_are_dropped():
    table = pd.DataFrame({"example_id": [7, 8], "c": [1.0, 4.0], "a": [2.0, np.nan],
                          "b": [3.0, np.nan], "label": [0, 1]})
    read = read_raw_data(table.to_csv(index=False).encode(), layout="wide")
    assert_same(read, pd.DataFrame({"example_id": ["7", "7", "7", "8"],
                                    "measurement": [1.0, 2.0, 3.0, 4.0]}))


@pytest.mark.parametrize("encode", [lambda t: t.to_csv(index=False).encode(), parquet,
                                    lambda t: t.to_json().encode()], ids=["csv", "parquet", "json"])
def test_wide_univariate_and_multivariate_read_as_their_long_form(encode):
    long = sample("data_test")
    assert_same(read_raw_data(encode(wide(long)), layout="wide"),
                read_raw_data((DATA / "data_test.json").read_bytes()))
    two = pd.concat([long.assign(kind="a"), long.assign(kind="b", measurement=-long["measurement"])])
    two = two.iloc[np.argsort(two["example_id"].to_numpy(), kind="stable")]
    columns = Columns(kind="kind")
    assert_same(read_raw_data(encode(wide(two, "kind")), layout="wide", columns=columns),
                read_raw_data(two.to_csv(index=False).encode(), columns=columns))


def test_a_wide_file_also_serves_as_its_labels():
    table = pd.DataFrame({"example_id": [7, 8], "label": ["x", "y"], "t0": [1.0, 2.0]})
    payload = parquet(table)
    assert read_labels(payload).to_dict() == {"7": "x", "8": "y"}
    assert list(read_raw_data(payload, layout="wide")["measurement"]) == [1.0, 2.0]


def test_wide_refusals_say_what_to_change():
    twice = pd.DataFrame({"example_id": [7, 7], "t0": [1.0, 2.0]}).to_csv(index=False).encode()
    with pytest.raises(InvalidData, match="on more than one row.*layout: long"):
        read_raw_data(twice, layout="wide")
    only_ids = pd.DataFrame({"example_id": [7, 8]}).to_csv(index=False).encode()
    with pytest.raises(InvalidData, match="no time-step columns"):
        read_raw_data(only_ids, layout="wide")
    words = pd.DataFrame({"example_id": [7], "t0": ["high"]}).to_csv(index=False).encode()
    with pytest.raises(InvalidData, match="'t0' has the non-numeric value 'high'"):
        read_raw_data(words, layout="wide")
    with pytest.raises(InvalidParameters, match="column_sort.*wide"):
        parse_training_params(b"extract_features: {layout: wide, column_sort: t}", Limits())
    with pytest.raises(InvalidParameters, match="layout"):
        parse_prediction_params(b"pipeline_id: 1\nlayout: tall")
    assert parse_prediction_params(b"pipeline_id: 1\nlayout: WIDE").layout == "wide"
    assert parse_training_params(b"", Limits()).features.layout == "long"


def test_the_series_limit_holds_for_every_format_and_layout():
    long = sample("data_test")  # 150 series
    for payload, layout in ((parquet(long), "long"), (parquet(wide(long)), "wide"),
                            (wide(long).to_csv(index=False).encode(), "wide")):
        with pytest.raises(PayloadTooLarge, match="150 series"):
            read_raw_data(payload, layout=layout, max_series=100)


# -- large uploads ---------------------------------------------------------------------------

def test_a_large_csv_is_parsed_from_the_spooled_file_without_a_second_copy():
    rng = np.random.default_rng(0)
    n_series, length = 1_000, 200
    long = pd.DataFrame({"example_id": np.repeat(np.arange(n_series) + 10_000, length),
                         "measurement": rng.normal(size=n_series * length).round(6)})
    payload = long.to_csv(index=False).encode()
    with tempfile.SpooledTemporaryFile(max_size=1024) as spooled:  # on disk, as werkzeug's
        spooled.write(payload)
        spooled.seek(0)
        tracemalloc.start()
        read = read_raw_data(spooled)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    frame = read.memory_usage(deep=True).sum()
    assert_same(read, read_raw_data(payload))
    # Before: the bytes, their text, every column and a Python string per row (~6x the frame).
    assert peak < 3.5 * frame, (peak / 2**20, frame / 2**20)


# -- the routes ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """One app and two pipelines: 'long' from the sample JSON, 'wide' from one wide Parquet
    file sent as both raw_data and labels."""
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path_factory.mktemp("formats")),
                      "SECRET_KEY": "formats-secret", "MAX_CONTENT_LENGTH": 8 * 2**20})
    client = app.test_client()
    long = sample("data_train")
    labels = pd.read_json(DATA / "label_train.json")
    table = parquet(wide(long).merge(labels, on="example_id"))
    for pipeline_id, files in (
            ("long", {"raw_data": ((DATA / "data_train.json").read_bytes(), "raw.json"),
                      "labels": ((DATA / "label_train.json").read_bytes(), "labels.json")}),
            ("wide", {"raw_data": (table, "train.parquet"), "labels": (table, "train.parquet")})):
        layout = b"extract_features: {layout: wide}\n" if pipeline_id == "wide" else b""
        params = (b"pipeline_id: " + pipeline_id.encode() + b"\n"
                  + FAST_PARAMS.replace(b"extract_features: {default_fc_parameters: minimal}",
                                        b"extract_features: {default_fc_parameters: minimal"
                                        + (b", layout: wide" if layout else b"") + b"}"))
        trained = client.post("/train_model", content_type="multipart/form-data", data={
            **{k: (io.BytesIO(body), name) for k, (body, name) in files.items()},
            "params": (io.BytesIO(params), "params.yml")})
        assert trained.status_code == 200, trained.json
    yield app, client
    app.extensions["job_runner"].stop()


def predict(client, raw: bytes, params: str, filename="data.json", query="", **more):
    data = {"raw_data": (io.BytesIO(raw), filename), "params": params, **more.pop("form", {})}
    return client.post(f"/serve_prediction{query}", data=data, content_type="multipart/form-data",
                       **more)


def test_json_stays_the_default_and_csv_is_asked_for_three_ways(service):
    _, client = service
    raw = (DATA / "data_test.json").read_bytes()
    default = predict(client, raw, "pipeline_id: long")
    assert default.status_code == 200 and default.mimetype == "application/json"
    assert "Accept" in default.headers["Vary"]
    for asked in ({"query": "?format=csv"}, {"form": {"format": "csv"}},
                  {"headers": {"Accept": "text/csv"}},
                  {"headers": {"Accept": "application/json;q=0.5, text/csv"}}):
        answer = predict(client, raw, "pipeline_id: long", **asked)
        assert answer.status_code == 200 and answer.mimetype == "text/csv", asked
        table = pd.read_csv(io.BytesIO(answer.data), dtype={"series_id": str})
        assert list(table.columns) == ["series_id", "probability"]
        assert dict(zip(table["series_id"], table["probability"])) == default.json  # exactly
    for json_anyway in ({"headers": {"Accept": "*/*"}}, {"headers": {"Accept": "text/html"}},
                        {"query": "?format=json", "headers": {"Accept": "text/csv"}}):
        assert predict(client, raw, "pipeline_id: long", **json_anyway).json == default.json


def test_a_wrong_or_contradictory_format_is_a_400(service):
    _, client = service
    raw = (DATA / "data_test.json").read_bytes()
    wrong = predict(client, raw, "pipeline_id: long", query="?format=xml")
    assert wrong.status_code == 400 and "'format'" in wrong.json["message"]
    both = predict(client, raw, "pipeline_id: long", query="?format=csv", form={"format": "json"})
    assert both.status_code == 400 and "different formats" in both.json["message"]


def test_multiclass_csv_has_a_column_per_class():
    text = scores_csv({"a": {"x": 0.25, "y": 0.5, "z": 0.25}, "b,c": {"x": 1.0, "y": 0.0,
                                                                        "z": float("nan")}},
                      np.array(["x", "y", "z"]))
    assert text.splitlines() == ["series_id,x,y,z", "a,0.25,0.5,0.25", '"b,c",1.0,0.0,']


def test_every_encoding_and_layout_of_the_same_series_scores_alike(service):
    _, client = service
    long = sample("data_test")
    expected = predict(client, (DATA / "data_test.json").read_bytes(), "pipeline_id: long").json
    for raw, filename, params in (
            (parquet(long), "x.parquet", "pipeline_id: long"),
            (parquet(long), "upload", "pipeline_id: long"),
            (parquet(wide(long)), "x.parquet", "pipeline_id: long\nlayout: wide"),
            (wide(long).to_csv(index=False).encode(), "x.csv", "pipeline_id: long\nlayout: wide")):
        answer = predict(client, raw, params, filename)
        assert answer.status_code == 200, answer.json
        assert answer.json == expected, (filename, params)


def test_a_pipeline_trained_wide_reads_wide_by_default_and_long_when_told(service):
    _, client = service
    long = sample("data_test")
    labels = pd.read_json(DATA / "label_test.json")
    report = client.get("/models/wide").json
    assert report["featureEngParams"]["layout"] == "wide" and report["trainShape"][0] == 50
    test_table = wide(long).merge(labels, on="example_id").to_csv(index=False).encode()
    by_default = predict(client, test_table, "pipeline_id: wide", "test.csv")
    assert by_default.status_code == 200, by_default.json
    assert len(by_default.json) == 150
    told = predict(client, (DATA / "data_test.json").read_bytes(), "pipeline_id: wide\nlayout: long")
    assert told.json == by_default.json
    untold = predict(client, (DATA / "data_test.json").read_bytes(), "pipeline_id: wide")
    assert untold.status_code == 400 and "layout: long" in untold.json["message"]


def test_hostile_parquet_through_the_route_is_a_4xx(service):
    app, client = service
    good = parquet(sample("data_test"))
    for payload in (good[:100], b"PAR1" + b"\0" * 64 + b"PAR1", good[:-12] + b"\xff" * 12):
        answer = predict(client, payload, "pipeline_id: long", "x.parquet")
        assert answer.status_code == 400 and answer.json["error"] == "invalid_data"
    app.config["MAX_PREDICTION_SERIES"] = 100
    try:
        answer = predict(client, good, "pipeline_id: long", "x.parquet")
        assert answer.status_code == 413 and "AUTOML_MAX_PREDICTION_SERIES" in answer.json["message"]
    finally:
        app.config["MAX_PREDICTION_SERIES"] = 10_000
