"""The memory a training job may use, and how wide its engines' features can be within it.

A job holds every engine's feature matrix it has extracted (the ensemble reads them all), and
fitting a model on one adds working copies of it. Each engine is sized before it is
extracted: at its full width when that fits, else with fewer kernels (down to
``MIN_WIDTH`` of them), else skipped; a job none of whose engines would fit even at its
narrowest is refused at submission, saying what to change.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import engines
from .engines import TSFRESH
from .errors import PayloadTooLarge
from .params import AUTO_ENGINE

MIB = 1 << 20
# The training process and its search's Dask workers before any features: about the peak of
# the small GunPoint jobs in docs/benchmarks.md ("Training").
PROCESS_BYTES = 1024 * MIB
FIT_COPIES = 2             # a fit's working copies of its matrix: the scaled one, the model's
MIN_WIDTH = 0.1            # narrowed to a tenth of an engine's kernels at most, not further


@dataclass(frozen=True)
class Panel:
    """The shape of an upload's series, what feature sizes follow from."""

    series: int
    channels: int
    length: int  # the longest series


def panel_of(raw, params, series: int) -> Panel:
    """The shape of ``series`` long-format series as the parameter file's columns read them."""
    columns = params.features.columns
    keys = [columns.id] + ([columns.kind] if columns.kind else [])
    channels = raw[columns.kind].nunique() if columns.kind else 1
    return Panel(series, int(channels), int(raw.groupby(keys, sort=False).size().max()))


def fitting_bytes(feature_bytes: int) -> int:
    """A matrix of ``feature_bytes`` with the working copies a fit makes of it."""
    return (1 + FIT_COPIES) * feature_bytes


def width_that_fits(feature_bytes: int, held_bytes: int, job_bytes: int) -> float | None:
    """The share of an engine's full width (1.0: all of it) whose features, fitted on, fit
    beside the ``held_bytes`` of features already extracted; None below ``MIN_WIDTH``."""
    room = job_bytes - PROCESS_BYTES - held_bytes
    width = min(1.0, room / max(fitting_bytes(feature_bytes), 1))
    return width if width >= MIN_WIDTH else None


def fits(need_bytes: int, job_bytes: int) -> bool:
    return PROCESS_BYTES + need_bytes <= job_bytes


def bytes_needed(names, panel: Panel, extracted: dict[str, int], width: float = 1.0) -> int:
    """Feature bytes held while the engine set is fitted at ``width``, beside the ``extracted``
    matrices (engine: bytes) already held; the process's own bytes not included. A single
    engine not extracted yet is extracted at ``width`` and fitted on; a join is fitted on a
    joined copy of its parts, and is never narrowed."""
    held = sum(extracted.values())
    if engines.narrowable(names) and names[0] not in extracted:
        full = engines.feature_bytes(names, panel.series, panel.channels, panel.length)
        return held + fitting_bytes(int(full * width))
    parts = {n: extracted.get(n) or engines.feature_bytes((n,), panel.series, panel.channels,
                                                           panel.length) for n in names}
    new = sum(size for n, size in parts.items() if n not in extracted)
    fitted = fitting_bytes(sum(parts.values())) if len(names) > 1 else fitting_bytes(new) - new
    return int(held + new + fitted)


def width_for(names, panel: Panel, extracted: dict[str, int], job_bytes: int) -> float | None:
    """The width an engine set gets beside the ``extracted`` matrices already held: 1.0 (all
    of it), less for a single engine that only fits narrowed, None if it does not fit."""
    if engines.narrowable(names) and names[0] not in extracted:
        full = engines.feature_bytes(names, panel.series, panel.channels, panel.length)
        return width_that_fits(full, sum(extracted.values()), job_bytes)
    return 1.0 if fits(bytes_needed(names, panel, extracted), job_bytes) else None


def narrowest_bytes(names, panel: Panel) -> int:
    """What an engine set needs (``bytes_needed``) alone, at the narrowest width it may get:
    the least any run could give it."""
    return bytes_needed(names, panel, {}, MIN_WIDTH if engines.narrowable(names) else 1.0)


def refuse_what_cannot_fit(params, panel: Panel, job_memory_mb: int) -> None:
    """At submission: a 413 saying what to change when no engine the job may try (one of
    ``engine: auto``'s, or the set the parameter file names) fits its memory even at its
    narrowest."""
    engine = params.features.engine
    if engine == AUTO_ENGINE:
        options = [names for names in engines.auto_candidates() if len(names) == 1]
    else:
        options = [engine if isinstance(engine, tuple) else (engine,)]
    job_bytes = job_memory_mb * MIB
    need = {names: PROCESS_BYTES + narrowest_bytes(names, panel) for names in options}
    cheapest = min(need, key=need.get)
    if need[cheapest] <= job_bytes:
        return
    per_series = (need[cheapest] - PROCESS_BYTES) / panel.series
    most = max(0, int((job_bytes - PROCESS_BYTES) / per_series))
    what = "tsfresh's" if cheapest == (TSFRESH,) else f"the narrowest {engines.name_of(cheapest)}"
    raise PayloadTooLarge(
        f"{panel.series:,} series of {panel.channels} channel(s) and up to {panel.length} points "
        f"would need about {need[cheapest] // MIB:,} MiB ({what} features and a model fitted on "
        f"them), more than the {job_memory_mb:,} MiB a training may use (AUTOML_JOB_MEMORY_MB). "
        f"Send at most {most:,} series (or shorter ones), or run the service with more memory.")
