"""Uploaded raw_data and labels files (JSON, CSV or Parquet; long or wide layout) as checked,
tsfresh-ready pandas objects.

JSON is decoded with ``json.loads`` and tabulated here rather than by ``pd.read_json``, which
guesses types (dates, numbers in strings) behind the user's back. CSV and Parquet are read by
pandas and pyarrow straight from the upload (bytes or the request's spooled file), and only the
columns the caller needs: a large upload is never held as bytes, text and a table at once.
Parquet is bounded before it is decoded (its columns may expand at most ``PARQUET_EXPANSION``
times), since a small file can describe a huge table.
"""
from __future__ import annotations

import codecs
import io
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import PurePath
from typing import BinaryIO

import numpy as np
import pandas as pd

from .errors import InvalidData, PayloadTooLarge, excerpt

EXPECTED = ("Expected JSON as written by pandas DataFrame.to_json() (orient 'columns', 'records' "
            "or 'split', or an object of column lists), CSV with a header row (UTF-8), or "
            "Parquet.")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
LONG, WIDE = "long", "wide"
LAYOUTS = (LONG, WIDE)
PARQUET_MAGIC = b"PAR1"
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet",
                 "application/parquet")
# A Parquet upload's columns, decoded, may hold at most this many times the file's size (or
# PARQUET_MIN_DECODED bytes, for small files): run-length and dictionary encodings let a few
# kilobytes describe gigabytes.
PARQUET_EXPANSION = 20
PARQUET_MIN_DECODED = 64 * 2**20
_HEAD_BYTES = 64 * 1024
_BOM = codecs.BOM_UTF8

Source = "bytes | BinaryIO"


@dataclass(frozen=True)
class Columns:
    id: str = "example_id"
    value: str = "measurement"
    sort: str | None = None      # optional time column to order rows within a series
    kind: str | None = None      # optional channel column (multivariate series)
    label: str = "label"


class LongFormatInput:
    """For the feature engines, which read long-format series through the columns they were
    constructed with: the columns a prediction upload must have, and the channels every
    series must have (the same for every engine)."""

    def input_columns(self) -> Columns:
        return Columns(id=self.column_id, value=self.column_value, sort=self.column_sort,
                       kind=self.column_kind)

    def learn_channels(self, X: pd.DataFrame) -> list[str]:
        """The channels of the training series: those of ``column_kind``, or the value
        column's name (one channel)."""
        return (sorted(X[self.column_kind].astype(str).unique()) if self.column_kind
                else [self.column_value])

    def channel_codes(self, X: pd.DataFrame) -> tuple[np.ndarray, pd.Index, np.ndarray]:
        """Per row, the codes of its series and channel (``channels_`` order), and the series
        ids; a 400 naming them if any series lacks a channel or has one never trained on."""
        channels = list(getattr(self, "channels_", None) or self.legacy_channels())
        id_codes, ids = pd.factorize(X[self.column_id].astype(str))
        if not self.column_kind:
            return id_codes, pd.Index(ids), np.zeros(len(X), dtype=np.int64)
        names = X[self.column_kind].astype(str)
        codes = pd.Categorical(names, categories=channels).codes.astype(np.int64)
        if (unknown := codes < 0).any():
            unknown_names = names[unknown].unique()
            raise InvalidData(
                f"raw_data has {_plural('channel', unknown_names)} {_some(unknown_names)} in column "
                f"{self.column_kind!r}, which the pipeline was not trained on (it knows "
                f"{', '.join(channels)}). Rename or remove them.")
        present = np.zeros((len(ids), len(channels)), dtype=bool)
        present[id_codes, codes] = True
        if not present.all():
            lacking = np.flatnonzero(~present.all(axis=1))
            missing = sorted({channels[c] for c in np.flatnonzero(~present[lacking].all(axis=0))})
            raise InvalidData(
                f"raw_data series {_some(ids[lacking])} lack {_plural('channel', missing)} "
                f"{_some(missing)}: every "
                f"series needs every channel the pipeline was trained on "
                f"({', '.join(channels)}).")
        return id_codes, pd.Index(ids), codes

    def legacy_channels(self) -> list[str]:
        """Channels of an engine pickled before ``channels_`` was recorded."""
        return [self.column_value]


def _plural(noun: str, values) -> str:
    return noun if len(values) == 1 else noun + "s"


def _some(values, shown: int = 5) -> str:
    """A few of ``values`` for a message, and how many more there are."""
    values = [str(v) for v in values]
    listed = ", ".join(repr(v[:40]) for v in values[:shown])
    return listed + (f" and {len(values) - shown} more" if len(values) > shown else "")


def read_raw_data(payload: bytes | BinaryIO, *, filename: str | None = None,
                  content_type: str | None = None, columns: Columns = Columns(),
                  field: str = "raw_data", max_series: int | None = None,
                  layout: str = LONG) -> pd.DataFrame:
    """One row per finite measurement: columns [id, sort?, kind?, value], grouped by series.

    ``payload``: the file's bytes, or a seekable binary file (the request's spooled upload),
    read from where it stands. ``layout``: ``long`` (one row per measurement) or ``wide`` (one
    row per series, or per series and channel with ``columns.kind``; every other column but
    ``columns.label`` is one time step, in file order). ``max_series``: more series than this
    is a 413 (a prediction request's limit)."""
    if layout == WIDE:
        table = _read_table(payload, filename, content_type, field,
                            [(columns.id, "column_id"), (columns.kind, "column_kind")], None)
        table = _wide_to_long(table, columns, field, max_series)
    else:
        needed = [(columns.id, "column_id"), (columns.value, "column_value"),
                  (columns.sort, "column_sort"), (columns.kind, "column_kind")]
        table = _read_table(payload, filename, content_type, field, needed,
                            [name for name, _ in needed if name is not None])
    # Each column is let go once converted: a large upload is never held twice over.
    parts = dict(table.items())
    del table
    ids = text_keys(parts.pop(columns.id), field, columns.id)
    if max_series is not None and (n_series := ids.nunique()) > max_series:
        raise _too_many_series(field, n_series, max_series)
    converted = {columns.id: ids.array}  # arrays, not Series: nothing is aligned on an index
    if columns.sort:
        converted[columns.sort] = _times(parts.pop(columns.sort), ids, field, columns.sort).array
    if columns.kind:
        kinds = text_keys(parts.pop(columns.kind), field, columns.kind)
        if (bad := kinds[kinds.str.contains("__", regex=False)]).size:
            raise InvalidData(f"{field} column {columns.kind!r} has the channel {excerpt(bad.iloc[0])}: "
                              "channel names must not contain '__', which tsfresh uses to join "
                              "channel and feature names. Rename that channel.")
        converted[columns.kind] = kinds.array
    converted[columns.value] = _floats(parts.pop(columns.value), ids, field, columns.value).array
    out = pd.DataFrame(converted, copy=False)
    del parts, converted

    # tsfresh cannot take NaN or inf, so drop them, but not so many that a series vanishes.
    finite = np.isfinite(out[columns.value].to_numpy())
    all_finite = bool(finite.all())
    if not all_finite:
        series = [out[columns.id]] + ([out[columns.kind]] if columns.kind else [])
        has_finite = pd.Series(finite).groupby(series, sort=False).any()
        if not has_finite.all():
            empty = has_finite.index[~has_finite.to_numpy()][0]
            where = (f"series {excerpt(empty[0])} channel {excerpt(empty[1])}" if columns.kind
                     else f"series {excerpt(empty)}")
            raise InvalidData(f"{field} {where} has no finite {columns.value!r} value (all "
                              "missing, NaN or infinite). Remove the series or fill in its "
                              "measurements.")

    # Series in order of first appearance; within one, by time or else in file order. One
    # gather at the end: the finite rows, in that order.
    kept = np.flatnonzero(finite)
    series_codes = pd.factorize(out[columns.id] if all_finite else out[columns.id].iloc[kept])[0]
    times = out[columns.sort].to_numpy() if columns.sort else None
    if all_finite and _in_order(series_codes, times):
        return out  # the usual file: series one after another, each in time order
    rows = kept
    if columns.sort:
        rows = rows[np.argsort(times[rows], kind="stable")]
    series_of = np.zeros(len(out), dtype=np.int64)
    series_of[kept] = series_codes
    rows = rows[np.argsort(series_of[rows], kind="stable")]
    return out.take(rows).reset_index(drop=True)


def _in_order(series_codes: np.ndarray, times: np.ndarray | None) -> bool:
    """Whether rows are grouped by series (codes numbered by first appearance never go down)
    and, within each, in time order: then the gather would copy them as they are."""
    step = np.diff(series_codes)
    if (step < 0).any():
        return False
    # Compared, not differenced: a difference of unsigned times would wrap round.
    return times is None or bool((times[1:] >= times[:-1])[step == 0].all())


def _too_many_series(field: str, n_series: int, max_series: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"{field} holds {n_series} series; one request takes at most "
                           f"{max_series} (AUTOML_MAX_PREDICTION_SERIES). Send them in "
                           "several requests.")


def _wide_to_long(table: pd.DataFrame, columns: Columns, field: str,
                  max_series: int | None) -> pd.DataFrame:
    """A wide table (a row per series, or per series and channel; a column per time step) as
    the long table [id, kind?, sort?, value] the rest reads, rows in time order per series."""
    keys = [columns.id] + ([columns.kind] if columns.kind else [])
    steps = [c for c in table.columns if c not in keys and c != columns.label]
    if not steps:
        raise InvalidData(f"{field} has no time-step columns: in the wide layout every column "
                          f"other than {' and '.join(map(repr, keys))} (and {columns.label!r}) "
                          "holds one time step. Send one column per time step, or set "
                          "layout: long for one row per measurement.")
    # Each column is dropped from the upload's table once converted: a large upload is
    # never held twice over.
    ids = text_keys(table.pop(columns.id), field, columns.id)
    if max_series is not None and (n_series := ids.nunique()) > max_series:
        raise _too_many_series(field, n_series, max_series)
    key_frame = pd.DataFrame({"id": ids})
    if columns.kind:
        key_frame["kind"] = text_keys(table[columns.kind], field, columns.kind)
    repeated = key_frame.duplicated()
    if repeated.any():
        first = key_frame[repeated].iloc[0]
        which = f"series {excerpt(first['id'])}" + (
            f" channel {excerpt(first['kind'])}" if columns.kind else "")
        raise InvalidData(f"{field} has {which} on more than one row: in the wide layout each "
                          f"series{' and channel' if columns.kind else ''} is one row. For one "
                          "row per measurement, set layout: long.")
    n_rows, n_steps = len(table), len(steps)
    values = np.empty((n_rows, n_steps), dtype=np.float64)
    for j, name in enumerate(steps):
        values[:, j] = _floats(table[name], ids, field, str(name)).to_numpy()
    long = {columns.id: np.repeat(ids.to_numpy(), n_steps)}
    if columns.kind:
        long[columns.kind] = np.repeat(key_frame["kind"].to_numpy(), n_steps)
    if columns.sort:  # a pipeline trained on a time column: the step number is the time
        long[columns.sort] = np.tile(np.arange(n_steps, dtype=np.int64), n_rows)
    long[columns.value] = values.reshape(-1)
    return pd.DataFrame(long)


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def read_labels(payload: bytes | BinaryIO, *, filename: str | None = None,
                content_type: str | None = None, columns: Columns = Columns(),
                field: str = "labels") -> pd.Series:
    """One label per series id (index: str ids, file order); int64 if all integral, else str.

    Any table with the id and label columns will do, a wide raw_data file with its labels too."""
    needed = [(columns.id, "column_id"), (columns.label, "column_label")]
    table = _read_table(payload, filename, content_type, field, needed,
                        [columns.id, columns.label])
    ids = text_keys(table[columns.id], field, columns.id)  # not popped: it may be the label too
    raw = table[columns.label]
    if raw.isna().any():
        raise InvalidData(f"{field} has no {columns.label!r} for series "
                          f"{excerpt(ids[raw.isna().to_numpy()].iloc[0])}. Give every series a label.")
    if all(_is_integral(v) and INT64_MIN <= int(v) <= INT64_MAX for v in raw):
        labels = pd.Series([int(v) for v in raw], dtype="int64")
    else:  # mixed numbers and words, or integers past int64: all as text, "1" not "1.0"
        labels = pd.Series([_text(v) for v in raw], dtype="str")
    counts = labels.groupby(ids.to_numpy(), sort=False).nunique()
    if (counts > 1).any():
        raise InvalidData(f"{field} gives series {excerpt(counts.index[counts.to_numpy() > 1][0])} "
                          "more than one label. Keep one row per series.")
    keep = ~ids.duplicated().to_numpy()
    return pd.Series(labels[keep].to_numpy(), name=columns.label,
                     index=pd.Index(ids[keep].to_numpy(), name=columns.id))


# -- reading a table ---------------------------------------------------------------------------

def _read_table(source: bytes | BinaryIO, filename: str | None, content_type: str | None,
                field: str, needed: list[tuple[str | None, str]],
                wanted: list[str] | None) -> pd.DataFrame:
    """The upload as a table of the ``wanted`` columns (None: all), after checking that the
    ``needed`` ones are there (naming the parameter that renames each)."""
    head, whole = _peek(source)
    stripped = head.removeprefix(_BOM)
    if head.startswith(PARQUET_MAGIC):
        table = _parquet_table(source, field, needed, wanted)
    elif not stripped.strip() and whole:
        raise InvalidData(f"{field} is empty. {EXPECTED}")
    elif _is_json(stripped, filename, content_type):
        text = _decode(_all_bytes(source), field)
        table = _checked(_json_table(text, field, content_type), field, needed, wanted)
    elif _mime(content_type) in PARQUET_TYPES or _suffix(filename) == ".parquet":
        raise InvalidData(f"{field} is labelled Parquet but is not a Parquet file (it does not "
                          f"start with {PARQUET_MAGIC.decode()}); it may be cut short. {EXPECTED}")
    else:
        _decode(head, field, final=whole)  # a clear message for text that is not UTF-8
        table = _csv_table(source, field, needed, wanted)
    if table.empty:
        raise _no_rows(field)
    return table


def _checked(table: pd.DataFrame, field: str, needed, wanted: list[str] | None) -> pd.DataFrame:
    """A table read whole from an upload: its column names as text, refused if it has no
    rows or lacks a ``needed`` column, then only its ``wanted`` columns."""
    table.columns = [str(c) for c in table.columns]
    if table.empty:
        raise _no_rows(field)
    _require(list(table.columns), field, needed)
    return _only(table, wanted)


def _only(table: pd.DataFrame, wanted: list[str] | None) -> pd.DataFrame:
    """The ``wanted`` columns of ``table`` (None: all); the table itself when it has no others,
    since selecting costs as much as parsing a small upload."""
    if wanted is None or set(table.columns) == set(wanted):
        return table
    return table[list(dict.fromkeys(wanted))]


def _no_rows(field: str) -> InvalidData:
    return InvalidData(f"{field} has no rows. {EXPECTED}")


def _peek(source) -> tuple[bytes, bool]:
    """The first bytes of the upload, and whether they are all of it; a file is left where it
    was."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        head = bytes(source[:_HEAD_BYTES])
        return head, len(source) <= _HEAD_BYTES
    start = source.tell()
    head = source.read(_HEAD_BYTES + 1)
    source.seek(start)
    return head[:_HEAD_BYTES], len(head) <= _HEAD_BYTES


def _all_bytes(source) -> bytes:
    return bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else source.read()


def _as_file(source):
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source


def _decode(payload: bytes, field: str, final: bool = True) -> str:
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(payload, final=final)
    except UnicodeDecodeError as err:
        raise InvalidData(f"{field} is not UTF-8 text (byte {err.start}). {EXPECTED}") from None


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _suffix(filename: str | None) -> str:
    return PurePath(filename or "").suffix.lower()


# Below this a CSV is read in one pass, all its columns: the header's own pass cost as much.
SMALL_CSV_BYTES = 1 << 20


def _csv_table(source, field: str, needed, wanted: list[str] | None) -> pd.DataFrame:
    stream = _as_file(source)
    start = stream.tell()
    # round_trip: pandas' fast float parser can be off by one ulp, which is enough to score a
    # CSV upload differently from the same numbers sent as JSON.
    options = dict(encoding="utf-8-sig", float_precision="round_trip")
    try:
        if _size(stream) <= SMALL_CSV_BYTES:  # read once, every column (a prediction's upload)
            return _checked(pd.read_csv(stream, **options), field, needed, wanted)
        # Large: the header (and a first row) checked first, then only the columns needed read.
        _checked(pd.read_csv(stream, nrows=1, encoding="utf-8-sig"), field, needed, None)
        stream.seek(start)
        table = pd.read_csv(stream, **options,
                            usecols=None if wanted is None else list(dict.fromkeys(wanted)))
    except UnicodeDecodeError:
        raise InvalidData(f"{field} is not UTF-8 text. {EXPECTED}") from None
    except (ValueError, OverflowError) as err:
        raise InvalidData(f"{field} is not readable CSV ({excerpt(str(err), 80)}). "
                          f"{EXPECTED}") from None
    table.columns = [str(c) for c in table.columns]
    return table


def _parquet_table(source, field: str, needed, wanted: list[str] | None) -> pd.DataFrame:
    """The ``wanted`` columns of a Parquet file, refused (400) if it is damaged or of types no
    column of series holds, and (413) if they would decode to more than the file's size allows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = len(source) if isinstance(source, (bytes, bytearray, memoryview)) else _size(source)
    budget = max(PARQUET_MIN_DECODED, PARQUET_EXPANSION * size)
    try:
        reader = pa.BufferReader(source) if isinstance(source, (bytes, bytearray, memoryview)) \
            else source
        parquet = pq.ParquetFile(reader)
        arrow = parquet.schema_arrow
        names = [str(n) for n in arrow.names]
        if parquet.metadata.num_rows <= 0:
            raise _no_rows(field)
        _require(names, field, needed)
        wanted = names if wanted is None else list(dict.fromkeys(wanted))
        if len(set(names)) != len(names):
            raise InvalidData(f"{field} is a Parquet file with two columns of one name. Rename "
                              "one of them.")
        for name in wanted:
            _check_parquet_type(arrow.field(name).type, field, name)
        _check_parquet_size(parquet, wanted, budget, field)
        text = [n for n in wanted if _is_text(arrow.field(n).type)]
        # Text columns stay dictionary-encoded (each distinct id once), however the file has them.
        parquet = pq.ParquetFile(reader, read_dictionary=text) if text else parquet
        table = parquet.read(columns=wanted, use_threads=False, use_pandas_metadata=False)
        _check_decoded_size(table, budget, field)
        return table.to_pandas(ignore_metadata=True, self_destruct=True)
    except (InvalidData, PayloadTooLarge):
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError, IndexError,
            OverflowError) as err:
        raise InvalidData(f"{field} is not a readable Parquet file ({excerpt(str(err), 80)}). "
                          f"{EXPECTED}") from None


def _size(stream) -> int:
    start = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    stream.seek(start)
    return end - start


def _is_text(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or \
        pa.types.is_string_view(kind)


def _check_parquet_type(kind, field: str, name: str) -> None:
    """Numbers, text, booleans, dates and times: what ids, channels, labels, times and
    measurements are. Nested, binary and extension types are refused before reading."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    t = pa.types
    if isinstance(kind, pa.ExtensionType) or not (
            t.is_integer(kind) or t.is_floating(kind) or t.is_boolean(kind) or _is_text(kind)
            or t.is_timestamp(kind) or t.is_date(kind) or t.is_decimal(kind) or t.is_null(kind)):
        raise InvalidData(f"{field} column {excerpt(name, 40)} is of the Parquet type "
                          f"{excerpt(str(kind), 40)}; series need numbers, text or dates "
                          "(ids, channels and labels: text or whole numbers; measurements: "
                          "numbers).")


def _check_parquet_size(parquet, wanted: list[str], budget: int, field: str) -> None:
    """What reading the columns would allocate at most, from the row groups' metadata (their
    rows, and the decompressed size of all their columns), before reading.

    Only row-group fields are read: pyarrow 26 aborts the whole process, rather than raising,
    on some damaged column-chunk metadata (its size statistics) when Python asks for it,
    while reading the same file raises an error as it should."""
    meta = parquet.metadata
    total = 0
    for r in range(meta.num_row_groups):
        group = meta.row_group(r)
        total += 8 * max(group.num_rows, 0) * len(wanted) + max(group.total_byte_size, 0)
    if total > budget:
        raise _decodes_too_large(field, total, budget)


def _check_decoded_size(table, budget: int, field: str) -> None:
    """What the columns hold once every text value is spelt out (dictionary-encoded text can
    repeat one long value on every row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for column in table.columns:
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type):
                lengths = pc.fill_null(pc.binary_length(chunk.dictionary), 0).to_numpy(
                    zero_copy_only=False)
                indices = pc.fill_null(chunk.indices, 0).to_numpy(zero_copy_only=False)
                spelt = int(lengths[indices].sum()) if len(lengths) and len(indices) else 0
                total += spelt + 8 * len(chunk)
            else:
                total += chunk.nbytes
    if total > budget:
        raise _decodes_too_large(field, total, budget)


def _decodes_too_large(field: str, total: int, budget: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"{field} is a Parquet file whose columns would decode to about "
                           f"{total / 2**20:,.0f} MB; the service reads at most {budget / 2**20:,.0f} "
                           f"MB from a file of this size ({PARQUET_EXPANSION} times its size, "
                           f"at least {PARQUET_MIN_DECODED // 2**20} MB). Send it in parts.")


def _is_json(head: bytes, filename: str | None, content_type: str | None) -> bool:
    """JSON by content type or file extension; but a body that opens as JSON does (a CSV
    header never starts with ``{`` or ``[``), whatever it was labelled."""
    if head.lstrip()[:1] in (b"{", b"["):
        return True
    mime = _mime(content_type)
    if mime == "application/json" or mime.endswith("+json"):
        return True
    return _suffix(filename) == ".json" and mime not in ("text/csv", "application/csv")


def _json_table(text: str, field: str, content_type: str | None = None) -> pd.DataFrame:
    labelled = (content_type or "").split(";")[0].strip().lower()
    sent_as = f" (it was sent as {labelled[:40]})" if labelled and "json" not in labelled else ""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidData(f"{field} looks like JSON{sent_as} but is not valid JSON (line "
                          f"{err.lineno}, column {err.colno}: {err.msg}). {EXPECTED}") from None
    except RecursionError:
        raise InvalidData(f"{field} is JSON nested too deeply to be a table. {EXPECTED}") from None
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise InvalidData(f"{field} is JSON that cannot be read ({excerpt(str(err), 80)}). "
                          f"{EXPECTED}") from None
    if isinstance(doc, list) and all(isinstance(row, dict) for row in doc):
        return pd.DataFrame(doc)  # orient "records"
    if isinstance(doc, dict) and isinstance(doc.get("columns"), list) \
            and isinstance(doc.get("data"), list) and set(doc) <= {"columns", "index", "data"}:
        try:  # orient "split"; its index is pandas' row labels, not data
            return pd.DataFrame(doc["data"], columns=doc["columns"])
        except ValueError as err:
            raise InvalidData(f"{field} is 'split' JSON whose rows do not fit its columns "
                              f"({excerpt(str(err), 80)}). {EXPECTED}") from None
    if isinstance(doc, dict) and doc and all(isinstance(c, dict) for c in doc.values()):
        rows = _row_keys(doc)  # orient "columns", pandas' default
        return pd.DataFrame({name: [cells.get(row) for row in rows] for name, cells in doc.items()})
    if isinstance(doc, dict) and doc and all(isinstance(c, list) for c in doc.values()):
        if len({len(c) for c in doc.values()}) > 1:
            raise InvalidData(f"{field} is JSON with columns of different lengths. {EXPECTED}")
        return pd.DataFrame(doc)
    raise InvalidData(f"{field} is JSON but not a table. {EXPECTED}")


def _row_keys(doc: dict[str, dict]) -> list[str]:
    keys = list(dict.fromkeys(key for cells in doc.values() for key in cells))
    # pandas writes row labels as strings; "10" must follow "9", not "1".
    if all(_INTEGER.fullmatch(key) for key in keys):
        keys.sort(key=int)
    return keys


def _require(found: list[str], field: str, needed: list[tuple[str | None, str]]) -> None:
    """A 400 naming the first ``needed`` column that is not among the ``found`` ones."""
    for name, key in needed:
        if name is not None and name not in found:
            listed = ", ".join(str(c)[:40] for c in found[:20]) + (
                ", ..." if len(found) > 20 else "")
            raise InvalidData(f"{field} has no column {name!r} (columns found: {listed}). Rename "
                              f"the column or set extract_features.{key} in the parameter file.")


def text_keys(column: pd.Series, field: str, name: str) -> pd.Series:
    """Ids and channel names as text, so JSON 1000, CSV "1000" and a float 1000.0 all match.

    Each distinct value is spelt once (a column of one type: numbers, text, categories); a
    column of mixed Python objects value by value, as ``1`` and ``True`` are equal keys."""
    if column.isna().any():
        row = int(np.flatnonzero(column.isna().to_numpy())[0]) + 1
        raise InvalidData(f"{field} has a missing {name!r} in data row {row}.")
    if column.dtype == object:
        return pd.Series([_text(v) for v in column], dtype="str")
    codes, distinct = pd.factorize(column)
    spelt = pd.Series([_text(v) for v in distinct], dtype="str")
    return spelt.take(codes).reset_index(drop=True)


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_integral(value: object) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, str):
        return _INTEGER.fullmatch(value) is not None
    return isinstance(value, int) and not isinstance(value, bool)


def _floats(column: pd.Series, ids: pd.Series, field: str, name: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype("float64")
    values = [_as_float(v) for v in column]
    if (bad := next((i for i, v in enumerate(values) if v is None), None)) is not None:
        raise InvalidData(f"{field} column {name!r} has the non-numeric value "
                          f"{excerpt(column.iloc[bad])} in series {excerpt(ids.iloc[bad])}. Measurements must be "
                          "numbers (missing values may be empty or null).")
    return pd.Series(values, dtype="float64")


def _as_float(value: object) -> float | None:
    """The value as a float (NaN when missing), or None when it is no number at all."""
    if value is None:
        return math.nan
    if isinstance(value, bool):  # JSON true/false is no measurement, though float() takes it
        return None
    try:
        return float(value)  # also "nan", "inf" and "1e-3" as text
    except (TypeError, ValueError):
        return None


def _times(column: pd.Series, ids: pd.Series, field: str, name: str) -> pd.Series:
    """Numbers or datetimes, the only time values that order meaningfully."""
    if column.isna().any():
        raise InvalidData(f"{field} column {name!r} has a missing time in series "
                          f"{excerpt(ids[column.isna()].iloc[0])}. Every measurement needs its time.")
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all() and not pd.api.types.is_bool_dtype(column):
        return numbers
    if all(isinstance(v, str) for v in column):
        for fmt in (None, "ISO8601"):  # one inferred format, else ISO 8601 variants
            try:
                with warnings.catch_warnings():  # the refusal below says it better
                    warnings.simplefilter("ignore", UserWarning)
                    return pd.to_datetime(column, format=fmt)
            except (ValueError, TypeError, OverflowError):
                pass
    raise InvalidData(f"{field} column {name!r} must hold numbers or dates (ISO 8601 such as "
                      "2024-01-31T12:00:00 is safest); some values are neither.")
