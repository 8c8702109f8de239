"""A trained pipeline's model card, in Markdown, from its training report.

``GET /models/<id>/card`` answers it and every export archive holds it (``card.md``): what the
model was trained on, how, how well it did in cross-validation, what the search tried, who
trained it and when, and with which libraries. Reports written by older versions of the service
lack some fields; each is then said to be "not recorded" rather than guessed.
"""
from __future__ import annotations

import math

NOT_RECORDED = "not recorded"
MAX_LISTED_FEATURES = 30


def render(report: dict, *, libraries: dict | None = None, trained_with: dict | None = None,
           exported_at: str | None = None) -> str:
    """The card of the version ``report`` describes (as ``GET /models/<id>`` answers it)."""
    r = report or {}
    pid, version = r.get("modelId", "?"), r.get("version", "?")
    lines = [f"# Model card: pipeline {_text(pid)}, version {_text(version)}", ""]
    status = ("provisional: its training job had not finished its search when this was "
              "written" if r.get("provisional") else "finished")
    lines += _table([
        ("Pipeline", pid), ("Version", version),
        ("Current version", _yes(r.get("current")) if "current" in r else None),
        ("Status", status),
        ("Trained by", r.get("createdBy") or ("no key (the service ran open)"
                                              if "createdBy" in r else None)),
        ("Owner", r.get("owner")),
        ("Trained at", r.get("createdAt")),
        ("Training job", r.get("jobId")),
        ("Training time", _seconds(r.get("trainTime"))),
        ("Exported at", exported_at),
    ], header=("", ""))

    lines += ["", "## Data", ""]
    shape = r.get("trainShape") or []
    feature_params = r.get("featureEngParams") or {}
    features = r.get("features") or {}
    lines += _table([
        ("Training series", shape[0] if len(shape) == 2 else None),
        ("Classes", ", ".join(map(_text, r["classes"])) if r.get("classes") else None),
        ("Positive class (binary scores)", r.get("positiveClass")),
        ("Layout", feature_params.get("layout") or ("long" if feature_params else None)),
        ("Columns", _columns(feature_params)),
        ("Channels", ", ".join(map(_text, features["channels"])) if features.get("channels")
         else None),
        ("Series length (kernel engines resample to it)", features.get("seriesLength")),
    ], header=("", ""))

    lines += ["", "## Features", ""]
    selected = r.get("selectedFeatures") or []
    compact = r.get("compactFeatures") or {}
    lines += _table([
        ("Engine", r.get("engine") or features.get("engine")),
        ("Features extracted", r.get("featuresExtracted", features.get("featuresExtracted"))),
        ("Features the model reads", shape[1] if len(shape) == 2 else None),
        ("tsfresh settings", _text(feature_params["default_fc_parameters"])
         if "default_fc_parameters" in feature_params else None),
        ("Imputation", feature_params.get("impute_function")),
        ("Relevance test", _selection(feature_params.get("feature_selection"))),
        ("Selection fell back to every informative feature",
         _yes(r["featureSelectionFallback"]) if "featureSelectionFallback" in r else None),
        ("Compact feature set", _compact(compact) if compact else None),
    ], header=("", ""))
    if selected:
        shown = ", ".join(f"`{name}`" for name in selected[:MAX_LISTED_FEATURES])
        more = len(selected) - MAX_LISTED_FEATURES
        lines += ["", f"Selected tsfresh features ({len(selected)}): {shown}"
                  + (f" and {more} more (report.json lists them all)." if more > 0 else ".")]
    skipped = r.get("enginesSkipped") or {}
    if skipped:
        lines += ["", "Engines not tried: " + "; ".join(f"{_text(k)}: {_text(v)}"
                                                        for k, v in skipped.items()) + "."]
    narrowed = r.get("enginesNarrowed") or {}
    if narrowed:
        lines += ["", "Engines given fewer kernels to fit the memory a training may use: "
                  + "; ".join(f"{_text(k)}: {_text(v)} of them" for k, v in narrowed.items())
                  + "."]

    lines += ["", "## Model", ""]
    lines += _table([
        ("Model", f"`{r['modelType']}`" if r.get("modelType") else None),
        ("Family", r.get("modelFamily")),
        ("How it was chosen", _outcome(r)),
    ], header=("", ""))

    lines += ["", "## Cross-validation", ""]
    standard_error = _final_standard_error(r)
    scoring = r.get("scoring")
    lines += _table([
        ("Folds", r.get("cvFolds")),
        ("Series cross-validated", _cv_series(r.get("cvSeries"), r.get("heldOut"))),
        (f"Mean CV {scoring or 'score'} (the search's objective)",
         _score(r.get("mean_cv_score"), standard_error)),
        ("Mean CV accuracy", _score(r.get("mean_cv_accuracy"))),
        ("Mean CV ROC AUC (one-vs-rest, macro)", _score(r.get("mean_cv_roc_auc"))),
    ], header=("", ""))
    lines += ["", "± is the standard error of the fold scores, where the report records it (for "
              "the objective only). tsfresh's feature selection is redone inside every fold, so "
              "these estimate held-out performance; on few series they are noisy."]
    candidates = r.get("candidates") or []
    if candidates:
        lines += ["", "Every engine and default model tried:", ""]
        lines += _table([(c.get("engine"), ("compact " if c.get("compact") else "")
                          + _text(c.get("modelType") or ""),
                          _score(c.get("cvScore"), c.get("cvScoreStandardError")),
                          _score(c.get("cvAccuracy")), c.get("featuresUsed"),
                          _seconds(c.get("extractSeconds"))) for c in candidates],
                        header=("engine", "model", "CV score", "CV accuracy", "features used",
                                "extraction"))
    baseline = r.get("baseline")
    if isinstance(baseline, dict):
        lines += ["", f"The search's pipeline replaced the baseline ({_text(baseline.get('engine'))}"
                  f", {_text(baseline.get('modelType'))}: CV score "
                  f"{_score(baseline.get('cvScore'), baseline.get('cvScoreStandardError'))})."]

    lines += ["", "## Search", ""]
    search = r.get("search")
    if isinstance(search, dict) and search:
        lines += _table([
            ("Scoring", search.get("scoring")),
            ("Pipelines evaluated", search.get("pipelinesEvaluated")),
            ("Pipelines scored", search.get("pipelinesScored")),
            ("Generations", search.get("generations")),
            ("Best CV score in the search", _score(search.get("bestScore"))),
        ], header=("", ""))
        by_family = search.get("bestScoreByFamily") or {}
        if by_family:
            lines += ["", "Best CV score by final estimator:", ""]
            lines += _table([(name, _score(score)) for name, score in by_family.items()],
                            header=("estimator", "best CV score"))
    elif r.get("searchSkipped"):
        lines += [f"No search: {_text(r['searchSkipped'])}."]
    elif "search" in r:
        lines += ["No search: a fixed model was trained."]
    else:
        lines += [f"Search summary {NOT_RECORDED}."]

    lines += ["", "## Libraries", ""]
    rows = []
    for name, version_ in (trained_with or {}).items():
        if version_:
            rows.append((f"{name} (recorded in the model file)", version_))
    for name, version_ in (libraries or {}).items():
        rows.append((name, version_ or "not installed"))
    if rows:
        lines += ["The service's when this card was written (the training process ran with the "
                  "service's own environment, unless it has been upgraded since):", ""]
        lines += _table(rows, header=("library", "version"))
    else:
        lines += [f"Library versions {NOT_RECORDED}."]

    lines += ["", "## Use", "",
              "`POST /serve_prediction` with `pipeline_id: " + _text(pid) + "` and `version: "
              + _text(version) + "` scores raw series; the export archive "
              "(`GET /models/" + _text(pid) + "/export`) loads locally with "
              "`automl.export.load(path, trust=key)`.", ""]
    return "\n".join(lines)


def _table(rows, header: tuple) -> list[str]:
    """A Markdown table of the rows whose value is known (two-column rows with None as the
    value are left out; wider rows show a missing cell as a dash)."""
    shown = []
    for row in rows:
        if len(row) == 2 and row[1] is None:
            continue
        shown.append("| " + " | ".join(_cell(c) for c in row) + " |")
    if not shown:
        return [f"({NOT_RECORDED})"]
    head = "| " + " | ".join(header) + " |"
    return [head, "|" + "---|" * len(header), *shown]


def _cell(value) -> str:
    if value is None:
        return "–"
    return _text(value).replace("|", "\\|").replace("\n", " ")


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else NOT_RECORDED
    return str(value)


def _yes(value) -> str:
    return "yes" if value else "no"


def _seconds(value) -> str | None:
    return None if not isinstance(value, (int, float)) else f"{value:.1f} s"


def _score(value, standard_error=None) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return NOT_RECORDED
    if isinstance(standard_error, (int, float)) and math.isfinite(standard_error):
        return f"{value:.4f} ± {standard_error:.4f}"
    return f"{value:.4f}"


def _columns(params: dict) -> str | None:
    if not params:
        return None
    named = [(k, params.get(k)) for k in ("id", "value", "sort", "kind", "label")]
    return ", ".join(f"{k} `{v}`" for k, v in named if v is not None) or None


def _selection(selection) -> str | None:
    if not isinstance(selection, dict):
        return None
    if not selection.get("enabled", True):
        return "off"
    return f"on (false discovery rate {selection.get('fdr_level', NOT_RECORDED)})"


def _compact(compact: dict) -> str:
    kept = "kept" if compact.get("kept") else "not kept"
    parts = [kept]
    if compact.get("featuresUsed") is not None:
        parts.append(f"{compact['featuresUsed']} features")
    if compact.get("cvScore") is not None:
        parts.append(f"CV score {_score(compact.get('cvScore'))} against "
                     f"{_score(compact.get('fullCvScore'), compact.get('fullCvScoreStandardError'))}"
                     " with every relevant feature")
    if compact.get("speedupOverFullExtraction") is not None:
        parts.append(f"{compact['speedupOverFullExtraction']}x faster extraction than a full one")
    return ", ".join(parts)


def _outcome(r: dict) -> str | None:
    if r.get("stoppedAtBudget"):
        return "the job stopped at its time budget; the best model ready by then"
    if r.get("keptBaseline"):
        return f"the baseline was kept: {_text(r['keptBaseline'])}"
    if isinstance(r.get("baseline"), dict):
        return "the search's best pipeline, which beat the baseline by more than its standard error"
    if r.get("searchSkipped"):
        return f"the baseline, without a search: {_text(r['searchSkipped'])}"
    if "search" in r and r.get("search") is None:
        return "a fixed model, as the parameter file asked"
    return None


def _final_standard_error(r: dict):
    """The standard error of the served model's CV score: that of the candidate it is, when the
    report lists it (a search's pipeline that replaced the baseline is not among them)."""
    if isinstance(r.get("baseline"), dict):
        return None
    for candidate in r.get("candidates") or []:
        if (candidate.get("engine") == r.get("engine")
                and candidate.get("modelType") == r.get("modelFamily")
                and candidate.get("cvScore") == r.get("mean_cv_score")):
            return candidate.get("cvScoreStandardError")
    return None


def _cv_series(cv: dict | None, held_out: dict | None = None) -> str | None:
    if held_out:
        return (f"none yet: a first model fitted on {held_out['fittedOn']} series, its scores "
                f"on {held_out['scoredOn']} others held out")
    if not cv:
        return None
    if not cv.get("sampled"):
        return f"all {cv['of']}"
    return f"a stratified sample of {cv['series']} of {cv['of']} (the model is fitted on all)"
