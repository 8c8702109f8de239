"""The ``automl`` command: train, predict, and follow jobs of the service from a shell.

A thin layer over ``automl.client.Client``; it needs ``click`` and ``tqdm`` besides the
client's ``requests``. Errors the service answers are printed as its message on stderr, and the
exit status says what kind of failure it was (see ``EXIT_CODES``).
"""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import click

from .client import (DEFAULT_TIMEOUT_S, DEFAULT_URL, KEY_VARIABLE, URL_VARIABLE, Client,
                     JobFailed, ServiceError)

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_FAILED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130

HELP = f"""Train and use time-series classification pipelines of the AutoML service.

\b
  automl train data/data_train.json data/label_train.json --params pipeline_parameters.yml --wait
  automl predict data/data_test.json --pipeline-id 1
  automl models
  automl export 1 -o model.zip

--url defaults to ${URL_VARIABLE}, else {DEFAULT_URL}; --key to ${KEY_VARIABLE}.

\b
Exit status:
  {EXIT_OK:<3}  success
  {EXIT_JOB_FAILED:<3}  the training job failed or was cancelled
  {EXIT_USAGE:<3}  usage error (a wrong option or argument, a missing file)
  {EXIT_REFUSED:<3}  the service refused the request (HTTP 4xx: bad upload, unknown id, ...)
  {EXIT_FAILED:<3}  the service failed or cannot be reached (HTTP 5xx, connection, timeout)
  {EXIT_INTERRUPTED:<3}  interrupted while waiting (the job goes on)
"""

STAGES = {"features": "features", "baseline": "baseline", "compact": "compact set",
          "search": "search", "finishing": "finishing"}


class Settings:
    def __init__(self, url: str, key: str | None, timeout: float, output: str):
        self.url, self.key, self.timeout, self.output = url, key, timeout, output

    def client(self) -> Client:
        return Client(self.url, key=self.key, timeout=self.timeout or None)


class _Commands(click.Group):
    """Expected failures end in a message on stderr and an exit status, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except JobFailed as err:
            job_id = err.job.get("jobId")
            _fail(f"job {job_id} {err.state}: {err.message}", EXIT_JOB_FAILED)
        except ServiceError as err:
            refused = err.status is not None and 400 <= err.status < 500
            where = " ".join(str(p) for p in (err.status and f"HTTP {err.status}", err.code) if p)
            retry = f"; retry in {err.retry_after:g} s" if err.retry_after is not None else ""
            _fail(f"{err.message} ({where}{retry})" if where else err.message,
                  EXIT_REFUSED if refused else EXIT_FAILED)
        except ValueError as err:  # an unreadable parameter file, found before sending
            _fail(str(err), EXIT_USAGE)


def _fail(message: str, code: int):
    click.echo(f"automl: {message}", err=True)
    raise click.exceptions.Exit(code)


def output_options(command):
    """--json / --csv, accepted before the command (global) and after it."""
    command = click.option("--csv", "as_csv", is_flag=True,
                           help="Print CSV (predictions, listings).")(command)
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the service's JSON as it answered.")(command)


def _output(ctx: click.Context, as_json: bool = False, as_csv: bool = False) -> str:
    if as_json and as_csv:
        raise click.UsageError("Give --json or --csv, not both.")
    return "json" if as_json else "csv" if as_csv else ctx.obj.output


@click.group(cls=_Commands, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar=URL_VARIABLE, default=DEFAULT_URL, show_default=True,
              help=f"The service's address [env {URL_VARIABLE}].")
@click.option("--key", envvar=KEY_VARIABLE, default=None,
              help=f"API key, sent as 'Authorization: Bearer KEY' [env {KEY_VARIABLE}].")
@click.option("--timeout", type=click.FloatRange(min=0), default=DEFAULT_TIMEOUT_S,
              show_default=True, help="Seconds to wait for each answer (0: no limit).")
@output_options
@click.pass_context
def cli(ctx, url, key, timeout, as_json, as_csv):
    ctx.obj = Settings(url, key, timeout, "table")
    ctx.obj.output = _output(ctx, as_json, as_csv)


# -- commands ------------------------------------------------------------------------------

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@cli.command()
@click.argument("data", type=FILE)
@click.argument("labels", type=FILE)
@click.option("--params", "params", type=FILE, default=None,
              help="Parameter file (YAML); without it, the service's defaults.")
@click.option("--pipeline-id", default=None, help="Store the pipeline under this id "
              "(overrides the parameter file's pipeline_id).")
@click.option("--wait", is_flag=True, help="Follow the job to its end, then print the report.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar while waiting.")
@output_options
@click.pass_context
def train(ctx, data, labels, params, pipeline_id, wait, quiet, as_json, as_csv):
    """Submit a training job on DATA (raw series) and LABELS.

    Without --wait, prints the queued job (follow it with `automl wait JOB_ID`).
    """
    output = _output(ctx, as_json, as_csv)
    client = ctx.obj.client()
    job = client.train(data, labels, params, pipeline_id=pipeline_id)
    if not wait:
        _print_record(job, output, _job_lines(job) + [
            "", f"follow it: automl wait {job['jobId']}   cancel it: automl cancel {job['jobId']}"])
        return
    _print_report(_follow(client, job["jobId"], quiet)["result"], output)


@cli.command()
@click.argument("job_id")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@output_options
@click.pass_context
def wait(ctx, job_id, quiet, as_json, as_csv):
    """Follow job JOB_ID to its end, then print its training report."""
    output = _output(ctx, as_json, as_csv)
    _print_report(_follow(ctx.obj.client(), job_id, quiet)["result"], output)


@cli.command()
@click.argument("job_id")
@output_options
@click.pass_context
def cancel(ctx, job_id, as_json, as_csv):
    """Cancel job JOB_ID (queued: at once; running: within a second or so)."""
    output = _output(ctx, as_json, as_csv)
    job = ctx.obj.client().cancel(job_id)
    if job.get("state") == "cancelled":
        summary = f"job {job_id} cancelled"
    else:
        summary = f"job {job_id} {job.get('state')}: cancel requested, it stops shortly"
    _print_record(job, output, [summary])


@cli.command()
@click.argument("data", type=FILE)
@click.option("--pipeline-id", required=True, help="The trained pipeline to predict with.")
@click.option("--version", type=int, default=None,
              help="A version of the pipeline, where the service keeps versions.")
@click.option("--layout", type=click.Choice(["long", "wide"]), default=None,
              help="How DATA is laid out (default: as the pipeline was trained).")
@output_options
@click.pass_context
def predict(ctx, data, pipeline_id, version, layout, as_json, as_csv):
    """Score the series in DATA: P(positive class) per series, or P per class."""
    output = _output(ctx, as_json, as_csv)
    scores = ctx.obj.client().predict(data, pipeline_id, version=version, layout=layout)
    if output == "json":
        return _print_json(scores)
    multi = bool(scores) and all(isinstance(v, dict) for v in scores.values())
    classes = list(next(iter(scores.values()))) if multi else ["probability"]
    rows = [{"series_id": sid, **(p if multi else {"probability": p})} for sid, p in scores.items()]
    _print_rows(rows, ["series_id", *classes], output)


@cli.command()
@click.argument("pipeline_id", required=False)
@output_options
@click.pass_context
def models(ctx, pipeline_id, as_json, as_csv):
    """List the stored pipelines, or show one pipeline's training report."""
    output = _output(ctx, as_json, as_csv)
    client = ctx.obj.client()
    if pipeline_id is not None:
        return _print_report(client.model(pipeline_id), output)
    listing = client.models()
    if output == "json":
        return _print_json(listing)
    rows = [{"pipeline": pid, **meta} for pid, meta in listing.items()]
    if output == "csv":
        keys = list(dict.fromkeys(k for row in rows for k in row)) or ["pipeline"]
        return _print_rows(rows, keys, "csv")
    if not rows:
        return click.echo("no pipelines stored yet")
    table = [{"pipeline": r["pipeline"], "model": _short_model(r.get("modelType")),
              "cv accuracy": _num(r.get("mean_cv_accuracy")),
              "cv roc auc": _num(r.get("mean_cv_roc_auc")),
              "series x features": _shape(r.get("trainShape")),
              "train s": _num(r.get("trainTime"), 1),
              "provisional": "yes" if r.get("provisional") else "",
              "created": _time(r.get("createdAt"))} for r in rows]
    _print_rows(table, list(table[0]), "table")


@cli.command()
@click.argument("job_id", required=False)
@output_options
@click.pass_context
def jobs(ctx, job_id, as_json, as_csv):
    """List the training jobs (newest first), or show one job."""
    output = _output(ctx, as_json, as_csv)
    client = ctx.obj.client()
    if job_id is not None:
        job = client.job(job_id)
        return _print_record(job, output, _job_lines(job))
    listing = client.jobs()
    if output == "json":
        return _print_json(listing)
    rows = [{**job, "error": (job.get("error") or {}).get("message")} for job in listing]
    keys = ["jobId", "state", "pipelineId", "createdAt", "startedAt", "finishedAt", "error"]
    if output == "csv":
        return _print_rows(rows, keys, "csv")
    if not rows:
        return click.echo("no jobs yet")
    table = [{"job": r["jobId"], "state": r.get("state"), "pipeline": r.get("pipelineId"),
              "created": _time(r.get("createdAt")), "finished": _time(r.get("finishedAt")),
              "error": _clip(r.get("error"), 60)} for r in rows]
    _print_rows(table, list(table[0]), "table")


@cli.command("export")
@click.argument("pipeline_id")
@click.option("--version", type=click.IntRange(min=1), default=None,
              help="The version to export (default: the current one).")
@click.option("-o", "--output", "output_path", type=click.Path(path_type=Path), default=Path("."),
              show_default=True, help="The file to write, or a directory for the service's "
              "name for it (automl-<id>-v<version>.zip).")
@output_options
@click.pass_context
def export_command(ctx, pipeline_id, version, output_path, as_json, as_csv):
    """Download pipeline PIPELINE_ID as a signed archive that loads locally.

    \b
    Load it in Python (with this package and its training libraries installed):
      from automl.export import load
      classifier = load("FILE", trust="ed25519:...")   # the key this command prints
      classifier.predict_proba(long_format_frame)
    """
    output = _output(ctx, as_json, as_csv)
    client = ctx.obj.client()
    key = client.export_key()
    try:
        written = client.download(pipeline_id, output_path, version=version)
    except OSError as err:  # the output path: a missing directory, no permission
        _fail(f"cannot write {output_path}: {err.strerror or err}", EXIT_USAGE)
    claims = _claimed_manifest(written)  # unverified: shown, not trusted
    signed_by = (claims.get("signature") or {}).get("keyId")
    if signed_by != key.get("keyId"):
        click.echo(f"automl: warning: the archive names the signing key {signed_by}, but the "
                   f"service's export key is now {key.get('keyId')} (its secret changed?); "
                   "loading it with this key will fail", err=True)
    record = {"path": str(written), "pipelineId": claims.get("pipelineId", pipeline_id),
              "version": claims.get("version", version), "keyId": key.get("keyId"),
              "publicKey": key.get("publicKey")}
    _print_record(record, output, [
        f"wrote {written} (pipeline {record['pipelineId']}, version {record['version']})",
        f"signed by the service's export key {key.get('keyId')}: {key.get('publicKey')}",
        f"load it with: automl.export.load({str(written)!r}, trust={key.get('publicKey')!r})"])


def _claimed_manifest(path: Path) -> dict:
    """What the archive's manifest says (for display; ``automl.export.load`` verifies it)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            claims = json.loads(archive.read("manifest.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}
    return claims if isinstance(claims, dict) else {}


@cli.command()
@click.argument("pipeline_id")
@click.option("--version", type=click.IntRange(min=1), default=None,
              help="The version (default: the current one).")
@click.pass_context
def card(ctx, pipeline_id, version):
    """Print the model card of pipeline PIPELINE_ID (Markdown)."""
    click.echo(ctx.obj.client().card(pipeline_id, version=version), nl=False)


@cli.command()
@output_options
@click.pass_context
def health(ctx, as_json, as_csv):
    """Check that the service answers."""
    output = _output(ctx, as_json, as_csv)
    answer = ctx.obj.client().health()
    _print_record(answer, output, [f"{ctx.obj.url}: {answer.get('status')}"])


# -- waiting -------------------------------------------------------------------------------

def _follow(client: Client, job_id: str, quiet: bool) -> dict:
    """Wait for the job with a progress bar on stderr; the final record, or JobFailed."""
    bar = None if quiet else ProgressBar()
    if bar is not None:
        click.echo(f"job {job_id} (Ctrl-C stops waiting, not the job)", err=True)
    try:
        return client.wait(job_id, on_progress=bar)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        _fail(f"stopped waiting; job {job_id} goes on (automl wait {job_id} to follow it, "
              f"automl cancel {job_id} to stop it)", EXIT_INTERRUPTED)
    finally:
        if bar is not None:
            bar.close()


class ProgressBar:
    """A tqdm bar on stderr fed with job records: the stage, TPOT's generation, the best CV
    score so far, and the time left of the job's budget (the bar fills with the budget)."""

    def __init__(self, file=None):
        self.file = file
        self.bar = None
        self._reported = None  # (elapsed, remaining) last reported, and when we first saw them
        self._seen_at = 0.0

    def __call__(self, job: dict) -> None:
        from tqdm import tqdm

        state = job.get("state")
        progress = job.get("progress") or {}
        elapsed, remaining = self._times(progress)
        budget = job.get("budgetSeconds")
        if budget is None and elapsed is not None and remaining is not None:
            budget = elapsed + remaining
        if self.bar is None:
            self.bar = tqdm(total=None, file=self.file or sys.stderr, dynamic_ncols=True,
                            leave=True, mininterval=0, bar_format="{desc}")
        bar = self.bar
        # The details go into the format itself: tqdm's {postfix} starts with a comma.
        details = self._details(job, progress, elapsed, remaining)
        details = details.replace("{", "{{").replace("}", "}}")
        if budget:
            bar.total = round(budget, 1)
            bar.n = bar.total if state == "succeeded" else round(min(budget, elapsed or 0.0), 1)
            bar.bar_format = "{desc} {percentage:3.0f}%|{bar:20}| " + details
        else:
            bar.total, bar.n = None, 0
            bar.bar_format = "{desc} " + details
        bar.set_description_str(self._label(job, progress), refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _times(self, progress: dict):
        """Elapsed and remaining seconds: as last reported, advanced by the time since (the
        training reports at each stage, and every 2 s during the search)."""
        elapsed, remaining = progress.get("elapsedSeconds"), progress.get("remainingSeconds")
        if elapsed is None:
            return None, remaining
        now = time.monotonic()
        if self._reported != (elapsed, remaining):
            self._reported, self._seen_at = (elapsed, remaining), now
        since = now - self._seen_at
        return elapsed + since, None if remaining is None else max(0.0, remaining - since)

    @staticmethod
    def _label(job: dict, progress: dict) -> str:
        state = job.get("state")
        if state == "running":
            label = STAGES.get(progress.get("stage"), progress.get("stage") or "starting")
        else:
            label = state or "?"
        return f"{label:<11}"

    @staticmethod
    def _details(job: dict, progress: dict, elapsed, remaining) -> str:
        state = job.get("state")
        if state == "queued":
            return "waiting for a free training slot"
        parts = []
        if progress.get("engine") and state == "running":
            parts.append(str(progress["engine"]))
        if progress.get("estimating") and state == "running":
            parts.append("timing a sample")
        if progress.get("generation") is not None:
            generations = progress.get("generations")
            parts.append(f"gen {progress['generation']}"
                         + (f"/{generations}" if generations is not None else ""))
        if progress.get("pipelinesEvaluated") is not None:
            parts.append(f"{progress['pipelinesEvaluated']} pipelines")
        if progress.get("bestScore") is not None:
            parts.append(f"best CV {progress['bestScore']:.3f}")
        if progress.get("provisionalServed") and state == "running":
            parts.append(f"serving pipeline {progress.get('pipelineId')}")
        if elapsed is not None:
            parts.append(f"{_clock(elapsed)} elapsed")
        if remaining is not None and state == "running":
            parts.append(f"{_clock(remaining)} left")
        return ", ".join(parts)


# -- printing ------------------------------------------------------------------------------

def _print_json(value) -> None:
    click.echo(json.dumps(value, indent=2))


def _print_record(record: dict, output: str, lines: list[str]) -> None:
    """One record: JSON as answered, CSV as field,value rows, or the given lines."""
    if output == "json":
        return _print_json(record)
    if output == "csv":
        rows = [{"field": k, "value": v} for k, v in record.items()]
        return _print_rows(rows, ["field", "value"], "csv")
    click.echo("\n".join(lines))


def _print_report(report: dict, output: str) -> None:
    _print_record(report, output, _report_lines(report))


def _print_rows(rows: list[dict], keys: list[str], output: str) -> None:
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(keys)
        writer.writerows([_csv_cell(row.get(k)) for k in keys] for row in rows)
        return
    cells = [[_cell(row.get(k)) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) if cells else len(k)
              for i, k in enumerate(keys)]
    click.echo("  ".join(k.ljust(w) for k, w in zip(keys, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def _job_lines(job: dict) -> list[str]:
    lines = [f"job {job.get('jobId')}: {job.get('state')}",
             f"  pipeline   {job.get('pipelineId') or '(next free id)'}",
             f"  created    {_time(job.get('createdAt'))}"]
    if job.get("finishedAt"):
        lines.append(f"  finished   {_time(job['finishedAt'])}")
    progress = job.get("progress") or {}
    if progress and job.get("state") == "running":
        details = ProgressBar._details(job, progress, progress.get("elapsedSeconds"),
                                       progress.get("remainingSeconds"))
        lines.append(f"  progress   {STAGES.get(progress.get('stage'), progress.get('stage'))}"
                     + (f": {details}" if details else ""))
    if job.get("error"):
        lines.append(f"  error      {job['error'].get('message')}")
    if job.get("result"):
        lines += ["", *_report_lines(job["result"])]
    return lines


def _report_lines(report: dict) -> list[str]:
    """The training report's main figures; --json prints all of it."""
    scoring = report.get("scoring")
    search = report.get("search") or {}
    fields = [
        ("pipeline", report.get("modelId")),
        ("model", report.get("modelType")),
        ("engine", report.get("engine")),
        ("cv accuracy", _num(report.get("mean_cv_accuracy"))),
        ("cv roc auc", _num(report.get("mean_cv_roc_auc"))),
        (f"cv {scoring}" if scoring else "cv score",
         _num(report.get("mean_cv_score"))
         if scoring not in ("accuracy", "roc_auc", "roc_auc_ovr") else None),
        ("classes", ", ".join(map(str, report["classes"])) if report.get("classes") else None),
        ("trained on", _shape(report.get("trainShape"), words=True)),
        ("train time", f"{report['trainTime']:.1f} s" if report.get("trainTime") is not None
         else None),
        ("search", _search_line(search) if search else None),
        ("outcome", _outcome(report)),
        ("provisional", "yes (the job has not finished its search)" if report.get("provisional")
         else None),
        ("job", report.get("jobId")),
        ("created", _time(report.get("createdAt"))),
    ]
    shown = [(name, value) for name, value in fields if value not in (None, "")]
    width = max(len(name) for name, _ in shown) if shown else 0
    return [f"{name.ljust(width)}  {value}" for name, value in shown]


def _search_line(search: dict) -> str:
    parts = []
    if search.get("pipelinesEvaluated") is not None:
        parts.append(f"{search['pipelinesEvaluated']} pipelines evaluated")
    if search.get("generations") is not None:
        parts.append(f"{search['generations']} generations")
    if search.get("bestScore") is not None:
        parts.append(f"best CV score {search['bestScore']:.4f}")
    return ", ".join(parts)


def _outcome(report: dict) -> str | None:
    if report.get("stoppedAtBudget"):
        return "stopped at the time budget; the best model ready by then is served"
    for key, text in (("keptBaseline", "kept the baseline"), ("searchSkipped", "no search")):
        if report.get(key):
            return f"{text}: {report[key]}"
    return None


def _num(value, digits: int = 3) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def _shape(shape, words: bool = False) -> str | None:
    if not shape or len(shape) != 2:
        return None
    return f"{shape[0]} series, {shape[1]} features" if words else f"{shape[0]} x {shape[1]}"


def _short_model(model_type) -> str | None:
    """``RandomForestClassifier(n_estimators=50, ...)`` as ``RandomForestClassifier(...)``."""
    if not model_type:
        return None
    text = " ".join(str(model_type).split())
    if len(text) > 40 and "(" in text:
        text = text.split("(", 1)[0] + "(...)"
    return _clip(text, 40)


def _clip(text, width: int) -> str | None:
    if text is None:
        return None
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _time(stamp) -> str:
    """An ISO timestamp shortened to the second, as written (UTC)."""
    if not stamp:
        return ""
    return str(stamp).replace("T", " ")[:19]


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="automl")


if __name__ == "__main__":
    main()
