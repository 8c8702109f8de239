"""The dashboard's charts: SVG made on the server from a training report, with matplotlib.

Each chart is a ``matplotlib.figure.Figure`` of its own, drawn by the SVG canvas: no
``pyplot``, no global figure state, so charts for concurrent requests cannot mix (the
dashboard renders them in native threads, ``serving.run_blocking``). Text is drawn as paths
(matplotlib's default), so nothing a client sent becomes markup, and the page needs no font.

Every function takes plain report fields (README, "The training report") and returns the
``<svg>`` element as a string, or None when the report does not hold what the chart needs
(older pipelines lack most of these fields): the template then says "not recorded". Ids
inside an SVG are prefixed with the chart's own, so several charts can share one page.
"""
from __future__ import annotations

import io
import itertools
import math
import re

CHART_IDS = itertools.count(1)
BLUE, ORANGE, GREY, RED = "#1f77b4", "#ff7f0e", "#7f7f7f", "#d62728"
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(xlink:href="#|href="#|url\(#)([^")]+)')
_CACHE: dict = {}
_CACHE_SIZE = 128


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=72, layout="constrained")
    return figure, figure.add_subplot()


def _svg(figure, name: str, label: str) -> str:
    """The figure as an inline ``<svg>`` element: no XML prolog, ids made unique to it."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    buffer = io.StringIO()
    FigureCanvasSVG(figure).print_svg(buffer, metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    prefix = f"{name}{next(CHART_IDS)}-"
    text = _ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = _REF.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", text)
    # Scales with the page (the viewBox keeps its proportions); a title for screen readers.
    text = re.sub(r'<svg ([^>]*?)width="[^"]+" height="[^"]+"',
                  rf'<svg class="chart" data-chart="{name}" role="img" aria-label="{_attr(label)}" \1',
                  text, count=1)
    return text.replace(">", f"><title>{_xml(label)}</title>", 1)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(text: str) -> str:
    return _xml(text).replace('"', "&quot;")


def _plain(text) -> str:
    """A label as matplotlib should print it: never mathtext (a ``$`` in a class name)."""
    text = str(text)
    return (text[:57] + "...") if len(text) > 60 else text.replace("$", r"\$")


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _at_most_one(axes, values) -> None:
    """Scores of at most 1 (accuracy, ROC AUC): no axis beyond 1, where nothing can be."""
    if values and max(values) <= 1.0:
        left, right = axes.get_xlim()
        if right > 1.0:
            low = min(left, min(values))
            axes.set_xlim(low, 1.0 + 0.04 * max(1.0 - low, 0.01))


def cached(key, render, *args):
    """``render(*args)``, remembered under ``key`` (a report's identity): a page shown again,
    by a refresh or another reader, costs no drawing. Safe to call from several threads (at
    worst two draw the same charts)."""
    value = _CACHE.get(key)
    if value is None:
        value = render(*args)
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:  # the oldest first
            try:
                _CACHE.pop(next(iter(_CACHE)))
            except (KeyError, StopIteration, RuntimeError):  # another thread got there
                break
    return value


# -- the charts ---------------------------------------------------------------------------------

def search_scores(search: dict | None, baseline_score=None) -> str | None:
    """Every pipeline the search evaluated, its CV score by model family (a strip per
    family, coloured by generation), with the baseline's score as a dashed line.

    From ``search.evaluated`` (``[{family, score, generation}]``); a report without it but
    with ``bestScoreByFamily`` gets each family's best score, said in the title."""
    if not isinstance(search, dict):
        return None
    baseline = _number(search.get("baselineScore"))
    if baseline is None:
        baseline = _number(baseline_score)
    evaluated = search.get("evaluated")
    points = []
    if isinstance(evaluated, list):
        for entry in evaluated:
            if isinstance(entry, dict) and _number(entry.get("score")) is not None:
                generation = entry.get("generation")
                points.append((str(entry.get("family") or "?"), float(entry["score"]),
                               generation if isinstance(generation, int) else 0))
        failed = sum(1 for entry in evaluated
                     if isinstance(entry, dict) and _number(entry.get("score")) is None)
        title = f"{len(points)} pipelines evaluated" + (f", {failed} without a score"
                                                        if failed else "")
        scored_by_generation = True
    else:
        best = search.get("bestScoreByFamily")
        if not isinstance(best, dict) or not best:
            return None
        points = [(str(family), float(score), 0) for family, score in best.items()
                  if _number(score) is not None]
        title = "the best CV score of each model family (each pipeline's own: not recorded)"
        scored_by_generation = False
    if not points:
        return None
    # Families ordered by their best score, best on top.
    best_of: dict[str, float] = {}
    for family, score, _ in points:
        best_of[family] = max(score, best_of.get(family, -math.inf))
    families = sorted(best_of, key=lambda f: best_of[f])
    row = {family: i for i, family in enumerate(families)}
    figure, axes = _figure(7.5, 1.2 + 0.42 * len(families))
    import numpy as np

    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, len(points))
    ys = [row[family] + (jitter[i] if scored_by_generation else 0.0)
          for i, (family, _, _) in enumerate(points)]
    xs = [score for _, score, _ in points]
    generations = [generation for _, _, generation in points]
    if scored_by_generation:
        drawn = axes.scatter(xs, ys, c=generations, cmap="viridis", s=22, alpha=0.85,
                             edgecolors="none", gid="evaluated-points")
        if len(set(generations)) > 1:
            figure.colorbar(drawn, ax=axes, label="generation", pad=0.01)
    else:
        axes.scatter(xs, ys, color=BLUE, s=36, gid="evaluated-points")
    if baseline is not None:
        axes.axvline(baseline, color=RED, linestyle="--", linewidth=1.4,
                     label=f"baseline {baseline:.4f}", gid="baseline")
        axes.legend(loc="lower left", fontsize=9, frameon=True)
    axes.set_yticks(range(len(families)), [_plain(f) for f in families], fontsize=9)
    axes.set_ylim(-0.6, len(families) - 0.4)
    axes.set_xlabel(f"CV score ({_plain(search.get('scoring') or 'score')})")
    axes.set_title(title.replace("$", r"\$"), fontsize=10)
    _at_most_one(axes, xs + ([baseline] if baseline is not None else []))
    axes.grid(axis="x", alpha=0.3)
    return _svg(figure, "search", "CV score of every pipeline the search evaluated, by model "
                                  "family, with the baseline")


def engine_scores(candidates, chosen_engine=None) -> str | None:
    """Each engine (and compact set) tried: its CV score with one standard error."""
    rows = []
    for entry in candidates if isinstance(candidates, list) else []:
        if isinstance(entry, dict) and _number(entry.get("cvScore")) is not None:
            label = str(entry.get("engine") or "?") + (" (compact)" if entry.get("compact") else "")
            se = _number(entry.get("cvScoreStandardError")) or 0.0
            rows.append((label, float(entry["cvScore"]), se, entry.get("engine") == chosen_engine))
    if not rows:
        return None
    figure, axes = _figure(7.5, 1.0 + 0.45 * len(rows))
    for i, (label, score, se, chosen) in enumerate(rows):
        drawn = axes.errorbar([score], [i], xerr=[se], fmt="o", capsize=4, markersize=7,
                              color=ORANGE if chosen else BLUE)
        drawn.lines[0].set_gid(f"engine-{i}")
        axes.annotate(f"{score:.4f} ± {se:.4f}", (score, i), xytext=(0, 8),
                      textcoords="offset points", ha="center", fontsize=8)
    axes.set_yticks(range(len(rows)), [_plain(r[0]) for r in rows], fontsize=9)
    axes.set_ylim(-0.7, len(rows) - 0.2)
    axes.set_xlabel("CV score ± one standard error (orange: the engine chosen)")
    _at_most_one(axes, [r[1] + r[2] for r in rows] + [r[1] - r[2] for r in rows])
    axes.grid(axis="x", alpha=0.3)
    return _svg(figure, "engines", "CV score of each feature engine with its standard error")


def confusion_matrix(cross_validation) -> str | None:
    """Counts of true class (rows) against predicted class, over the CV folds' held-out
    predictions."""
    if not isinstance(cross_validation, dict):
        return None
    classes, matrix = cross_validation.get("classes"), cross_validation.get("confusionMatrix")
    if not isinstance(classes, list) or not isinstance(matrix, list) or not classes \
            or len(matrix) != len(classes) \
            or any(not isinstance(r, list) or len(r) != len(classes) for r in matrix):
        return None
    import numpy as np

    try:
        counts = np.array(matrix, dtype=float)
    except (TypeError, ValueError):
        return None
    n = len(classes)
    side = min(2.2 + 0.55 * n, 9)
    figure, axes = _figure(side + 1.2, side)
    shown = axes.imshow(counts, cmap="Blues", gid="confusion-cells")
    figure.colorbar(shown, ax=axes, pad=0.02, shrink=0.8)
    if n <= 30:
        top = counts.max() or 1
        for (i, j), value in np.ndenumerate(counts):
            axes.text(j, i, f"{int(value)}", ha="center", va="center", fontsize=9,
                      color="white" if value > top / 2 else "black")
    labels = [_plain(c) for c in classes]
    axes.set_xticks(range(n), labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center",
                    fontsize=9)
    axes.set_yticks(range(n), labels, fontsize=9)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    return _svg(figure, "confusion", "Confusion matrix of the cross-validation folds' "
                                     "out-of-fold predictions")


def roc_curves(cross_validation) -> str | None:
    """One ROC curve per class (one-vs-rest), from the folds' out-of-fold scores."""
    roc = cross_validation.get("roc") if isinstance(cross_validation, dict) else None
    if not isinstance(roc, dict) or not roc:
        return None
    figure, axes = _figure(5.5, 4.6)
    drawn = 0
    for i, (label, curve) in enumerate(list(roc.items())[:20]):
        if not isinstance(curve, dict):
            continue
        fpr, tpr = curve.get("fpr"), curve.get("tpr")
        if not isinstance(fpr, list) or not isinstance(tpr, list) or len(fpr) != len(tpr) \
                or len(fpr) < 2:
            continue
        auc = _number(curve.get("auc"))
        axes.plot(fpr, tpr, linewidth=1.6, gid=f"roc-{i}",
                  label=f"{_plain(label)}" + (f" (AUC {auc:.3f})" if auc is not None else ""))
        drawn += 1
    if not drawn:
        return None
    axes.plot([0, 1], [0, 1], color=GREY, linestyle=":", linewidth=1)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    return _svg(figure, "roc", "ROC curve per class from the cross-validation folds")


def top_features(features) -> str | None:
    """The model's most important features (at most 20), largest on top."""
    rows = [(str(f.get("name")), float(f["importance"]))
            for f in (features if isinstance(features, list) else [])[:20]
            if isinstance(f, dict) and _number(f.get("importance")) is not None]
    if not rows:
        return None
    rows.reverse()
    figure, axes = _figure(7.5, 0.8 + 0.3 * len(rows))
    bars = axes.barh(range(len(rows)), [r[1] for r in rows], color=BLUE)
    for i, bar in enumerate(bars):
        bar.set_gid(f"feature-{len(rows) - 1 - i}")
    axes.set_yticks(range(len(rows)), [_plain(r[0]) for r in rows], fontsize=8)
    axes.set_xlabel("importance")
    axes.grid(axis="x", alpha=0.3)
    return _svg(figure, "features", "The most important features of the model")


def for_report(report: dict) -> dict[str, str | None]:
    """Every chart of a pipeline page, by name (None: the report does not hold its data)."""
    baseline = report.get("baseline")
    baseline_score = baseline.get("cvScore") if isinstance(baseline, dict) else None
    if baseline_score is None and report.get("keptBaseline"):
        baseline_score = report.get("mean_cv_score")  # the final model is the baseline
    return {
        "search": search_scores(report.get("search"), baseline_score),
        "engines": engine_scores(report.get("candidates"), report.get("engine")),
        "confusion": confusion_matrix(report.get("crossValidation")),
        "roc": roc_curves(report.get("crossValidation")),
        "features": top_features(report.get("topFeatures")),
    }
