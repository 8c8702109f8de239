"""The training data as a run takes it: labelled series matched to their labels, refused
when no classifier could be trained from them (or, at submission, when they cannot fit a
training's memory), and the cross-validation folds every candidate shares."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from . import memory
from .errors import InvalidData, InvalidParameters, excerpt
from .params import Limits, TrainingParams
from .parsing import text_keys


def refuse_unusable(raw: pd.DataFrame, labels: pd.Series, params: TrainingParams,
                    limits: Limits) -> None:
    """At submission, what the job would fail on: data that cannot train a classifier, and
    an upload too large for the memory a training may use."""
    raw, labels = matched_training_data(raw, labels, params)
    memory.refuse_what_cannot_fit(params, memory.panel_of(raw, params, len(labels)),
                                  limits.job_memory_mb)


def matched_training_data(raw: pd.DataFrame, labels: pd.Series, params: TrainingParams):
    """Keep the labelled series; refuse data that cannot train a classifier. Series ids are
    text from here on, as the upload parser spells them (``parsing.text_keys``): the engines
    key their rows by text, so a caller in Python passing integer ids gets the same model."""
    column_id = params.features.columns.id
    raw, labels = _ids_as_text(raw, labels, column_id)
    series_ids = pd.Index(raw[column_id].unique())
    matched = labels[labels.index.isin(series_ids)]
    if matched.empty:
        raise InvalidData(
            f"No id in labels matches a series in raw_data (labels has e.g. "
            f"{_examples(labels.index)}; raw_data has e.g. {_examples(series_ids)}). Both files "
            f"must use the same ids in column '{column_id}'.")
    counts = matched.value_counts()
    if len(counts) < 2:
        raise InvalidData(f"The labelled series all have class {excerpt(counts.index[0])}: a "
                          "classifier needs at least two classes. Add series of another class.")
    if counts.min() < 2:
        rare = counts.idxmin()
        raise InvalidData(f"Class {excerpt(rare)} has a single series; every class needs at least "
                          "2 for cross-validation. Add series or drop that class.")
    positive = params.model.positive_class
    if positive is not None and (len(counts) != 2 or str(positive) not in map(str, counts.index)):
        raise InvalidParameters(f"'model_training.positive_class' is {excerpt(positive)}, which "
                                f"is not one of the two labels ({_examples(counts.index)}). "
                                "Name one of them, or leave it out for binary data only.")
    return raw[raw[column_id].isin(matched.index)], matched


def _ids_as_text(raw: pd.DataFrame, labels: pd.Series, column_id: str):
    if not pd.api.types.is_string_dtype(raw[column_id]):
        raw = raw.assign(**{column_id: text_keys(raw[column_id], "raw_data", column_id).to_numpy()})
    if not pd.api.types.is_string_dtype(labels.index):
        labels = labels.set_axis(pd.Index(text_keys(labels.index.to_series(), "labels",
                                                    column_id).to_numpy(), name=labels.index.name))
    return raw, labels


def cv_rows(y: np.ndarray, params: TrainingParams) -> np.ndarray:
    """Positions (in label order) of the series the candidates are cross-validated on: every
    series, or above ``model_training.cv_series`` a stratified random sample of about that
    many. Each class keeps its share, and at least as many series as there are folds (or all
    it has), so a rare class is still in every fold. The chosen model is fitted on all series
    afterwards: CV cost grows with the series, and a few thousand rank candidates well."""
    limit = params.model.cv_series
    if len(y) <= limit:
        return np.arange(len(y))
    rng = np.random.default_rng(params.model.search.random_state or 0)
    chosen = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        share = round(len(members) * limit / len(y))
        chosen.append(rng.choice(members, min(len(members), max(params.model.cv, share)),
                                 replace=False))
    return np.sort(np.concatenate(chosen))


def cv_splitter(labels: pd.Series, params: TrainingParams) -> StratifiedKFold:
    folds = min(params.model.cv, int(labels.value_counts().min()))
    return StratifiedKFold(n_splits=folds, shuffle=True,
                           random_state=params.model.search.random_state or 0)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _examples(index) -> str:
    shown = ", ".join(excerpt(_plain(v), 30) for v in list(index[:3]))
    return shown + (", ..." if len(index) > 3 else "")
