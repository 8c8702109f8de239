"""Reading uploads: every accepted format, the normalisation tsfresh needs, and clear refusals."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from automl.errors import InvalidData
from automl.parsing import Columns, read_labels, read_raw_data

# Two series of three measurements, as a user's pandas would hold them.
RAW = pd.DataFrame({"example_id": [1000, 1000, 1000, 1001, 1001, 1001],
                    "measurement": [-0.7343, -0.5, 0.25, 1.0, 2.0, 3.5]})
EXPECTED_RAW = pd.DataFrame({"example_id": ["1000"] * 3 + ["1001"] * 3,
                             "measurement": [-0.7343, -0.5, 0.25, 1.0, 2.0, 3.5]})
LABELS = pd.DataFrame({"example_id": [1001, 1000], "label": [1, 0]})


def refused(read, payload: bytes | str, *words: str, **kwargs) -> str:
    """Assert that the upload is refused with a message containing every word."""
    if isinstance(payload, str):
        payload = payload.encode()
    with pytest.raises(InvalidData) as caught:
        read(payload, **kwargs)
    for word in words:
        assert word in caught.value.message, caught.value.message
    return caught.value.message


def assert_raw_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    # Exactly: a last-digit difference between formats would change the model's scores.
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, check_exact=True)
    assert all(isinstance(v, str) for v in actual["example_id"])
    assert actual["measurement"].dtype == np.float64


# ---------------------------------------------------------------------------------------------
# Formats

@pytest.mark.parametrize("write", [
    lambda df: df.to_json(),
    lambda df: df.to_json(orient="records"),
    lambda df: json.dumps(df.to_dict(orient="list")),
    lambda df: df.to_json(orient="split"),
    lambda df: df.to_csv(index=False),
], ids=["json-columns", "json-records", "json-list", "json-split", "csv"])
def test_every_format_round_trips_a_pandas_frame(write):
    assert_raw_equal(read_raw_data(write(RAW).encode()), EXPECTED_RAW)
    labels = read_labels(write(LABELS).encode())
    expected = pd.Series([1, 0], name="label", index=pd.Index(["1001", "1000"], name="example_id"))
    pd.testing.assert_series_equal(labels, expected, check_index_type=False)
    assert labels.dtype == np.int64


def test_json_row_keys_are_ordered_as_numbers_past_ten():
    raw = pd.DataFrame({"example_id": [7] * 12, "measurement": np.arange(12.0)})
    # Written back to front, the keys run "11", "10", ..., "0"; lexical order would put "10"
    # before "2". Row order is time order, so it must come back as 0..11.
    parsed = read_raw_data(raw.iloc[::-1].to_json().encode())
    assert parsed["measurement"].tolist() == list(range(12))


def test_json_row_keys_that_are_not_numbers_keep_file_order():
    payload = b'{"example_id": {"b": 1, "a": 1}, "measurement": {"b": 2.0, "a": 1.0}}'
    assert read_raw_data(payload)["measurement"].tolist() == [2.0, 1.0]


@pytest.mark.parametrize("content_type, filename", [
    ("application/json", "raw_data.csv"),  # the content type wins over the extension
    ("application/octet-stream", "raw_data.json"),
    ("application/octet-stream", "raw_data.dat"),  # sniffed from the first byte
    (None, None),
])
def test_json_is_recognised_by_content_type_extension_or_content(content_type, filename):
    payload = b"\n  " + RAW.to_json().encode()
    parsed = read_raw_data(payload, content_type=content_type, filename=filename)
    assert_raw_equal(parsed, EXPECTED_RAW)


@pytest.mark.parametrize("content_type, filename", [
    ("text/csv; charset=utf-8", "raw_data.json"), (None, "raw_data.csv"), (None, "raw_data.dat")])
def test_csv_is_recognised_by_content_type_extension_or_content(content_type, filename):
    payload = RAW.to_csv(index=False).encode()
    parsed = read_raw_data(payload, content_type=content_type, filename=filename)
    assert_raw_equal(parsed, EXPECTED_RAW)


def test_csv_floats_are_read_to_the_last_digit():
    # pandas' default CSV float parser misreads this one by one ulp.
    raw = pd.DataFrame({"example_id": [1, 1], "measurement": [3.1327023920027237, 0.1]})
    parsed = read_raw_data(raw.to_csv(index=False).encode())
    assert parsed["measurement"].tolist() == [3.1327023920027237, 0.1]


@pytest.mark.parametrize("text", [RAW.to_json(), RAW.to_csv(index=False)], ids=["json", "csv"])
def test_utf8_byte_order_mark_is_accepted(text):
    assert_raw_equal(read_raw_data(text.encode("utf-8-sig")), EXPECTED_RAW)


# ---------------------------------------------------------------------------------------------
# raw_data normalisation

def test_ids_match_across_int_float_and_text():
    from_json = read_raw_data(b'[{"example_id": 1000, "measurement": 1}]')
    from_float = read_raw_data(b'[{"example_id": 1000.0, "measurement": 1}]')
    from_csv = read_raw_data(b"example_id,measurement\n1000,1\n")
    from_text = read_raw_data(b'[{"example_id": "1000", "measurement": 1}]')
    parsed = (from_json, from_float, from_csv, from_text)
    assert {df["example_id"].iloc[0] for df in parsed} == {"1000"}


def test_extra_columns_are_dropped_and_configured_names_used():
    csv = b"t,extra,axis,value,id\n2,x,a,2.0,s1\n1,y,a,1.0,s1\n"
    columns = Columns(id="id", value="value", sort="t", kind="axis")
    parsed = read_raw_data(csv, columns=columns)
    assert list(parsed.columns) == ["id", "t", "axis", "value"]
    assert parsed["value"].tolist() == [1.0, 2.0]


def test_without_a_sort_column_file_order_is_kept_and_series_grouped_by_first_appearance():
    csv = b"example_id,measurement\nb,3\na,1\nb,2\na,0\n"
    parsed = read_raw_data(csv)
    assert parsed["example_id"].tolist() == ["b", "b", "a", "a"]
    assert parsed["measurement"].tolist() == [3.0, 2.0, 1.0, 0.0]


def test_sort_column_orders_rows_within_each_series():
    csv = b"example_id,time,measurement\nb,3,30\na,2,20\nb,1,10\na,1,11\na,2,21\n"
    parsed = read_raw_data(csv, columns=Columns(sort="time"))
    assert parsed["example_id"].tolist() == ["b", "b", "a", "a", "a"]
    assert parsed["time"].tolist() == [1, 3, 1, 2, 2]
    assert parsed["measurement"].tolist() == [10, 30, 11, 20, 21]  # ties keep file order


def test_sort_column_accepts_dates():
    payload = (b'[{"example_id": 1, "time": "2024-01-02T10:00:00", "measurement": 2},'
               b' {"example_id": 1, "time": "2024-01-02", "measurement": 1}]')
    parsed = read_raw_data(payload, columns=Columns(sort="time"))
    assert parsed["measurement"].tolist() == [1.0, 2.0]
    assert pd.api.types.is_datetime64_any_dtype(parsed["time"])


def test_kind_column_is_text_and_each_channel_is_kept():
    raw = pd.DataFrame({"example_id": [1, 1, 1, 1], "axis": [0, 1, 0, 1],
                        "measurement": [1.0, 2.0, 3.0, 4.0]})
    parsed = read_raw_data(raw.to_json().encode(), columns=Columns(kind="axis"))
    assert list(parsed.columns) == ["example_id", "axis", "measurement"]
    assert parsed["axis"].tolist() == ["0", "1", "0", "1"]


def test_nan_null_and_infinite_measurements_are_dropped():
    raw = pd.DataFrame({"example_id": [1, 1, 1, 1, 2],
                        "measurement": [1.0, np.nan, np.inf, -np.inf, 5.0]})
    csv = raw.to_csv(index=False)
    assert "inf" in csv
    for payload in (csv, raw.to_json(orient="records"),
                    '{"example_id": [1, 1, 2], "measurement": [1.0, null, 5.0]}'):
        parsed = read_raw_data(payload.encode())
        assert parsed["example_id"].tolist() == ["1", "2"]
        assert parsed["measurement"].tolist() == [1.0, 5.0]


def test_a_series_with_no_finite_measurement_is_refused():
    payload = b"example_id,measurement\n1,1.0\n2,\n2,inf\n"
    refused(read_raw_data, payload, "raw_data", "series '2'", "measurement")


def test_a_channel_with_no_finite_measurement_is_refused():
    payload = b"example_id,axis,measurement\n1,x,1.0\n1,y,nan\n"
    refused(read_raw_data, payload, "series '1'", "channel 'y'", columns=Columns(kind="axis"))


# ---------------------------------------------------------------------------------------------
# raw_data refusals

@pytest.mark.parametrize("payload", [b"", b" \n\t", b"[]", b"{}", b"example_id,measurement\n"],
                         ids=["0-bytes", "whitespace", "no-records", "no-columns", "header-only"])
@pytest.mark.parametrize("read, field", [(read_raw_data, "raw_data"), (read_labels, "labels")])
def test_empty_uploads_are_refused_naming_the_field_and_format(read, field, payload):
    refused(read, payload, field, "JSON", "CSV")


@pytest.mark.parametrize("payload, words", [
    (b"{not json", ["not valid JSON", "line 1"]),
    (b"\xff\xfe\x00e\x00x", ["UTF-8"]),
    (b'["example_id", "measurement"]', ["not a table"]),
    (b'{"example_id": 1, "measurement": 2}', ["not a table"]),
    (b'{"example_id": [1, 2], "measurement": [1.0]}', ["different lengths"]),
    (b'{"columns": ["example_id", "measurement"], "data": [[1, 2, 3]]}', ["split"]),
])
def test_unreadable_uploads_are_refused_saying_what_is_expected(payload, words):
    refused(read_raw_data, payload, "raw_data", "Expected JSON", *words)


def test_field_name_comes_from_the_caller():
    refused(read_raw_data, b"", "test_data", field="test_data")


@pytest.mark.parametrize("columns, missing, key", [
    (Columns(), "measurement", "extract_features.column_value"),
    (Columns(id="id", value="value"), "id", "extract_features.column_id"),
    (Columns(value="value", sort="time"), "time", "extract_features.column_sort"),
    (Columns(value="value", kind="axis"), "axis", "extract_features.column_kind"),
])
def test_missing_raw_data_column_names_it_and_the_parameter(columns, missing, key):
    refused(read_raw_data, b"example_id,value\n1,2\n", f"raw_data has no column '{missing}'",
            "columns found: example_id, value", key, columns=columns)


def test_non_numeric_measurement_names_the_column_and_series():
    payload = b'{"example_id": {"0": 1, "1": 2}, "measurement": {"0": 1.0, "1": "abc"}}'
    refused(read_raw_data, payload, "raw_data", "'measurement'", "'abc'", "series '2'")
    refused(read_raw_data, b'[{"example_id": 5, "measurement": true}]', "series '5'")


def test_missing_id_is_refused():
    payload = b"example_id,measurement\n1,1\n,2\n"
    refused(read_raw_data, payload, "raw_data", "'example_id'", "row 2")


def test_unorderable_sort_column_is_refused():
    csv = b"example_id,time,measurement\n1,soon,1\n1,later,2\n"
    refused(read_raw_data, csv, "raw_data", "'time'", "numbers or dates",
            columns=Columns(sort="time"))
    refused(read_raw_data, b"example_id,time,measurement\n1,,1\n", "'time'", "series '1'",
            columns=Columns(sort="time"))


def test_channel_names_with_double_underscore_are_refused():
    csv = b"example_id,axis,measurement\n1,acc__x,1\n"
    refused(read_raw_data, csv, "'acc__x'", "'__'", "tsfresh", columns=Columns(kind="axis"))


# ---------------------------------------------------------------------------------------------
# labels

@pytest.mark.parametrize("payload, expected", [
    (b'{"example_id": [1, 2], "label": [1.0, 0.0]}', [1, 0]),
    (b"example_id,label\n1,1\n2,0\n", [1, 0]),
    (b'{"example_id": [1, 2], "label": ["1", "0"]}', [1, 0]),
])
def test_integral_labels_become_int64(payload, expected):
    labels = read_labels(payload)
    assert labels.dtype == np.int64 and labels.tolist() == expected


@pytest.mark.parametrize("payload, expected", [
    (b"example_id,label\n1,yes\n2,no\n", ["yes", "no"]),
    (b'{"example_id": [1, 2, 3], "label": ["a", 1, 2.0]}', ["a", "1", "2"]),
    (b'{"example_id": [1, 2], "label": [0.5, 1]}', ["0.5", "1"]),
    # Past int64 (a uint64 Parquet column, found by fuzzing): text, not an overflow.
    (b"example_id,label\n1,9223372036854775808\n2,0\n", ["9223372036854775808", "0"]),
])
def test_other_labels_stay_text(payload, expected):
    labels = read_labels(payload)
    assert labels.tolist() == expected and all(isinstance(v, str) for v in labels)


def test_labels_use_configured_names_and_keep_file_order():
    csv = b"activity,id,other\nwalk,s2,x\nrun,s1,y\n"
    labels = read_labels(csv, columns=Columns(id="id", label="activity"))
    assert labels.name == "activity" and labels.index.name == "id"
    assert labels.to_dict() == {"s2": "walk", "s1": "run"}
    assert list(labels.index) == ["s2", "s1"]


def test_repeated_id_with_the_same_label_is_kept_once():
    labels = read_labels(b"example_id,label\n1,a\n2,b\n1,a\n")
    assert labels.to_dict() == {"1": "a", "2": "b"}


def test_repeated_id_with_different_labels_is_refused():
    refused(read_labels, b"example_id,label\n1,a\n2,b\n2,c\n", "labels", "series '2'")


def test_missing_label_names_the_series():
    refused(read_labels, b'{"example_id": [1, 2], "label": [0, null]}', "labels", "series '2'")


@pytest.mark.parametrize("columns, missing, key", [
    (Columns(), "label", "extract_features.column_label"),
    (Columns(id="id"), "id", "extract_features.column_id"),
])
def test_missing_labels_column_names_it_and_the_parameter(columns, missing, key):
    refused(read_labels, b'{"example_id": {"0": 1}, "class": {"0": 1}}', "labels",
            f"no column '{missing}'", "columns found: example_id, class", key, columns=columns)


@pytest.mark.parametrize("times", [[1, 2, 0, 1], [2**64 - 1, 2**64 - 2, 0, 1]],
                         ids=["int64", "uint64"])
def test_a_file_already_in_order_comes_back_as_a_reordered_one_would(times):
    # Rows grouped by series, times going back only where a new series starts: returned as
    # read. A time going back inside a series (the uint64 case) is still sorted.
    csv = "example_id,time,measurement\n" + "".join(
        f"{s},{t},{v}\n" for s, t, v in zip("aabb", times, [1, 2, 3, 4]))
    parsed = read_raw_data(csv.encode(), columns=Columns(sort="time"))
    expected = sorted(zip("aabb", times, [1, 2, 3, 4]), key=lambda row: (row[0], row[1]))
    assert parsed["measurement"].tolist() == [v for *_, v in expected]
    assert parsed.index.equals(pd.RangeIndex(4))


@pytest.mark.parametrize("csv", [
    b"example_id,time,measurement,extra\nb,1,3,x\nb,0,2,y\na,0,1,z\n",
    b"\xef\xbb\xbfmeasurement,example_id,time\n1.5,a,0\n",
    b"example_id,time\n",                      # no rows
    b"example_id,time,value\na,0,1\n",         # no measurement column
    b"example_id,time,measurement\na,0,\"x\n",  # not readable
])
def test_a_small_csv_read_in_one_pass_reads_as_a_large_one_does(monkeypatch, csv):
    def parsed():
        try:
            frame = read_raw_data(csv, columns=Columns(sort="time"))
            return frame.to_dict("list"), list(frame.columns)
        except InvalidData as err:
            return type(err), str(err).split(" (")[0]

    one_pass = parsed()
    monkeypatch.setattr("automl.parsing.SMALL_CSV_BYTES", 0)  # header first, then the columns
    assert parsed() == one_pass
