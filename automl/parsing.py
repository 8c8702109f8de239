"""Uploaded raw_data and labels files (JSON or CSV) as checked, tsfresh-ready pandas objects.

JSON is decoded with ``json.loads`` and tabulated here rather than by ``pd.read_json``, which
guesses types (dates, numbers in strings) behind the user's back.
"""
from __future__ import annotations

import io
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import pandas as pd

from .errors import InvalidData, PayloadTooLarge, excerpt

EXPECTED = ("Expected JSON as written by pandas DataFrame.to_json() (orient 'columns', 'records' "
            "or 'split', or an object of column lists) or CSV with a header row, UTF-8 encoded.")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


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


def read_raw_data(payload: bytes, *, filename: str | None = None, content_type: str | None = None,
                  columns: Columns = Columns(), field: str = "raw_data",
                  max_series: int | None = None) -> pd.DataFrame:
    """One row per finite measurement: columns [id, sort?, kind?, value], grouped by series.

    ``max_series``: more series than this is a 413 (a prediction request's limit)."""
    table = _read_table(payload, filename, content_type, field)
    _require(table, field, [(columns.id, "column_id"), (columns.value, "column_value"),
                            (columns.sort, "column_sort"), (columns.kind, "column_kind")])
    ids = _keys(table[columns.id], field, columns.id)
    if max_series is not None and (n_series := ids.nunique()) > max_series:
        raise PayloadTooLarge(f"{field} holds {n_series} series; one request takes at most "
                              f"{max_series} (AUTOML_MAX_PREDICTION_SERIES). Send them in "
                              "several requests.")
    out = pd.DataFrame({columns.id: ids})
    if columns.sort:
        out[columns.sort] = _times(table[columns.sort], ids, field, columns.sort)
    if columns.kind:
        kinds = _keys(table[columns.kind], field, columns.kind)
        if (bad := kinds[kinds.str.contains("__", regex=False)]).size:
            raise InvalidData(f"{field} column {columns.kind!r} has the channel {excerpt(bad.iloc[0])}: "
                              "channel names must not contain '__', which tsfresh uses to join "
                              "channel and feature names. Rename that channel.")
        out[columns.kind] = kinds
    out[columns.value] = _floats(table[columns.value], ids, field, columns.value)

    # tsfresh cannot take NaN or inf, so drop them, but not so many that a series vanishes.
    finite = np.isfinite(out[columns.value].to_numpy())
    series = [out[columns.id]] + ([out[columns.kind]] if columns.kind else [])
    has_finite = pd.Series(finite).groupby(series, sort=False).any()
    if not has_finite.all():
        empty = has_finite.index[~has_finite.to_numpy()][0]
        where = (f"series {excerpt(empty[0])} channel {excerpt(empty[1])}" if columns.kind
                 else f"series {excerpt(empty)}")
        raise InvalidData(f"{field} {where} has no finite {columns.value!r} value (all missing, "
                          "NaN or infinite). Remove the series or fill in its measurements.")
    out = out[finite]

    # Series in order of first appearance; within one, by time or else in file order.
    order = (np.argsort(out[columns.sort].to_numpy(), kind="stable") if columns.sort
             else np.arange(len(out)))
    order = order[np.argsort(pd.factorize(out[columns.id])[0][order], kind="stable")]
    return out.iloc[order].reset_index(drop=True)


def read_labels(payload: bytes, *, filename: str | None = None, content_type: str | None = None,
                columns: Columns = Columns(), field: str = "labels") -> pd.Series:
    """One label per series id (index: str ids, file order); int64 if all integral, else str."""
    table = _read_table(payload, filename, content_type, field)
    _require(table, field, [(columns.id, "column_id"), (columns.label, "column_label")])
    ids = _keys(table[columns.id], field, columns.id)
    raw = table[columns.label]
    if raw.isna().any():
        raise InvalidData(f"{field} has no {columns.label!r} for series "
                          f"{excerpt(ids[raw.isna().to_numpy()].iloc[0])}. Give every series a label.")
    if all(_is_integral(v) for v in raw):
        labels = pd.Series([int(v) for v in raw], dtype="int64")
    else:  # mixed numbers and words: all as text, "1" rather than "1.0"
        labels = pd.Series([_text(v) for v in raw], dtype="str")
    counts = labels.groupby(ids.to_numpy(), sort=False).nunique()
    if (counts > 1).any():
        raise InvalidData(f"{field} gives series {excerpt(counts.index[counts.to_numpy() > 1][0])} "
                          "more than one label. Keep one row per series.")
    keep = ~ids.duplicated().to_numpy()
    return pd.Series(labels[keep].to_numpy(), name=columns.label,
                     index=pd.Index(ids[keep].to_numpy(), name=columns.id))


def _read_table(payload: bytes, filename: str | None, content_type: str | None,
                field: str) -> pd.DataFrame:
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InvalidData(f"{field} is not UTF-8 text (byte {err.start}). {EXPECTED}") from None
    if not text.strip():
        raise InvalidData(f"{field} is empty. {EXPECTED}")
    if _is_json(text, filename, content_type):
        table = _json_table(text, field, content_type)
    else:
        try:
            # round_trip: pandas' fast float parser can be off by one ulp, which is enough to
            # score a CSV upload differently from the same numbers sent as JSON.
            table = pd.read_csv(io.BytesIO(payload), encoding="utf-8-sig",
                                float_precision="round_trip")
        except (ValueError, OverflowError) as err:
            raise InvalidData(f"{field} is not readable CSV ({excerpt(str(err), 80)}). "
                              f"{EXPECTED}") from None
    if table.empty:
        raise InvalidData(f"{field} has no rows. {EXPECTED}")
    table.columns = [str(c) for c in table.columns]
    return table


def _is_json(text: str, filename: str | None, content_type: str | None) -> bool:
    """JSON by content type or file extension; but a body that opens as JSON does (a CSV
    header never starts with ``{`` or ``[``), whatever it was labelled."""
    if text.lstrip()[:1] in ("{", "["):
        return True
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        return True
    return PurePath(filename or "").suffix.lower() == ".json" and mime not in (
        "text/csv", "application/csv")


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


def _require(table: pd.DataFrame, field: str, needed: list[tuple[str | None, str]]) -> None:
    for name, key in needed:
        if name is not None and name not in table.columns:
            found = ", ".join(str(c)[:40] for c in table.columns[:20]) + (
                ", ..." if len(table.columns) > 20 else "")
            raise InvalidData(f"{field} has no column {name!r} (columns found: {found}). Rename "
                              f"the column or set extract_features.{key} in the parameter file.")


def _keys(column: pd.Series, field: str, name: str) -> pd.Series:
    """Ids and channel names as text, so JSON 1000, CSV "1000" and a float 1000.0 all match."""
    if column.isna().any():
        row = int(np.flatnonzero(column.isna().to_numpy())[0]) + 1
        raise InvalidData(f"{field} has a missing {name!r} in data row {row}.")
    return pd.Series([_text(v) for v in column], dtype="str")


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
