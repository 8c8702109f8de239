"""A Python client for the service's REST API (what ``automl`` the command runs on).

    from automl.client import Client

    service = Client("http://localhost:8080")
    job = service.train("data/data_train.json", "data/label_train.json",
                        "pipeline_parameters.yml", wait=True)
    job["result"]                                  # the training report
    service.predict("data/data_test.json", pipeline_id=job["result"]["modelId"])
    service.download(job["result"]["modelId"], "model.zip")   # automl.export.load(...) reads it

It needs only ``requests`` (and ``pyyaml`` for parameters given as a dict, ``pandas`` for
DataFrames): it imports nothing of the service itself, so it works where Flask, tsfresh, aeon
and TPOT are not installed. Every error the service answers (``{"error": code, "message": text}``)
is raised as a ``ServiceError`` subclass chosen by the HTTP status.
"""
from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

import requests

__all__ = ["Client", "ServiceError", "BadRequest", "Unauthorized", "Forbidden", "NotFound",
           "Conflict", "PayloadTooLarge", "TooManyRequests", "ServerError", "ServiceUnavailable",
           "ConnectionFailed", "JobFailed", "DEFAULT_URL", "URL_VARIABLE", "KEY_VARIABLE"]

DEFAULT_URL = "http://localhost:8080"
URL_VARIABLE = "AUTOML_URL"       # read by the command line (and by Client when url is None)
KEY_VARIABLE = "AUTOML_API_KEY"   # read when no key is given
DEFAULT_TIMEOUT_S = 120.0         # per request; a prediction on many series extracts first
FINISHED = ("succeeded", "failed", "cancelled")


# -- errors ----------------------------------------------------------------------------------

class ServiceError(Exception):
    """What the service answered instead of a result, or why there was no answer.

    ``status`` is the HTTP status (None when there was none), ``code`` the service's error code
    (``invalid_parameters``, ``pipeline_not_found``...), ``message`` its explanation, and
    ``retry_after`` the seconds its ``Retry-After`` header asked to wait, if it sent one.
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = " ".join(str(part) for part in (self.status, self.code) if part is not None)
        return f"{self.message} [{where}]" if where else self.message


class BadRequest(ServiceError):
    """400: an upload or parameter file the service cannot use (the message says why)."""


class Unauthorized(ServiceError):
    """401: no API key, or one the service does not know."""


class Forbidden(ServiceError):
    """403: the key may not do this."""


class NotFound(ServiceError):
    """404: no such pipeline, job or route."""


class Conflict(ServiceError):
    """409: e.g. cancelling a job that already ended."""


class PayloadTooLarge(ServiceError):
    """413: the upload is above the service's MAX_UPLOAD_MB."""


class TooManyRequests(ServiceError):
    """429: slow down (see ``retry_after``)."""


class ServerError(ServiceError):
    """5xx: the service failed; nothing was stored."""


class ServiceUnavailable(ServerError):
    """503: e.g. the service's store is unreachable for now (see ``retry_after``)."""


class ConnectionFailed(ServiceError):
    """No answer at all: nothing listening at the URL, a network failure, or a timeout."""


class JobFailed(ServiceError):
    """A waited-for training job ended ``failed`` or ``cancelled``; ``job`` is its record.

    ``code`` and ``message`` are the job's error; ``status`` is the HTTP status the service
    would have answered the same training with synchronously (e.g. 400 for unusable data).
    """

    def __init__(self, job: dict):
        error = job.get("error") or {}
        self.job = job
        self.state = job.get("state")
        super().__init__(error.get("message") or f"The job ended {self.state}.",
                         status=error.get("status"), code=error.get("error") or self.state)


_BY_STATUS = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
              413: PayloadTooLarge, 429: TooManyRequests, 503: ServiceUnavailable}


def error_from_response(response: requests.Response) -> ServiceError:
    """The typed error for an HTTP error answer (the service's JSON, or whatever came back)."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code, message = body.get("error"), body["message"]
    else:  # not the service's shape: a proxy's page, or not this service at all
        text = " ".join(response.text.split())[:200]
        code = f"http_{status}"
        message = f"HTTP {status} {response.reason or ''}".strip() + (f": {text}" if text else "")
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ServiceError)
    return cls(message, status=status, code=code,
               retry_after=_retry_after(response.headers.get("Retry-After")))


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# -- the client ------------------------------------------------------------------------------

class Client:
    """The service at ``url`` (default: ``$AUTOML_URL``, else http://localhost:8080).

    ``key`` (default: ``$AUTOML_API_KEY``) is sent as ``Authorization: Bearer <key>``;
    ``timeout`` bounds each request in seconds (None: no bound). Files to upload may be given as
    a path (str or Path), an open binary file, bytes, or a pandas DataFrame (sent as CSV); the
    parameters also as a dict (sent as YAML).
    """

    def __init__(self, url: str | None = None, key: str | None = None,
                 timeout: float | None = DEFAULT_TIMEOUT_S,
                 session: requests.Session | None = None):
        url = (url or os.environ.get(URL_VARIABLE) or DEFAULT_URL).strip().rstrip("/")
        self.url = url if "://" in url else f"http://{url}"
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.setdefault("Accept", "application/json")
        key = key if key is not None else os.environ.get(KEY_VARIABLE)
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # -- the routes ------------------------------------------------------------------------

    def health(self) -> dict:
        """GET /health: ``{"status": "ok"}``."""
        return self._request("GET", "/health")

    def models(self) -> dict:
        """GET /models: ``{pipeline_id: summary}`` of every stored pipeline."""
        return self._request("GET", "/models")

    def model(self, pipeline_id: str | int) -> dict:
        """GET /models/<id>: one pipeline's full training report."""
        return self._request("GET", f"/models/{_segment(pipeline_id)}")

    def jobs(self) -> list[dict]:
        """GET /jobs: every training job, newest first."""
        return self._request("GET", "/jobs")

    def job(self, job_id: str) -> dict:
        """GET /jobs/<id>: the job's ``state``, ``progress``, and ``result`` or ``error``."""
        return self._request("GET", f"/jobs/{_segment(job_id)}")

    def cancel(self, job_id: str) -> dict:
        """DELETE /jobs/<id>: a queued job ends ``cancelled`` at once, a running one within
        about a second (its record says ``cancelRequested`` meanwhile). ``Conflict`` if it
        already ended."""
        return self._request("DELETE", f"/jobs/{_segment(job_id)}")

    def train(self, raw_data, labels, params=None, wait: bool = False,
              on_progress: Callable[[dict], Any] | None = None, *,
              pipeline_id: str | int | None = None, poll_s: float = 1.0,
              timeout: float | None = None) -> dict:
        """Submit a training job (POST /train_model with ``Prefer: respond-async``).

        Returns the job record at once (``jobId``, ``state``...), or with ``wait=True`` the
        final record once the job has succeeded (the report is its ``result``); see ``wait``
        for ``on_progress``, ``poll_s`` and ``timeout``. ``params`` defaults to none (the
        service's defaults); ``pipeline_id`` overrides the parameter file's.
        """
        files = {"raw_data": _upload(raw_data, "raw_data"),
                 "labels": _upload(labels, "labels"),
                 "params": _params_upload(params, pipeline_id)}
        job = self._request("POST", "/train_model", files=files,
                            headers={"Prefer": "respond-async"})
        if not wait:
            return job
        return self.wait(job["jobId"], on_progress=on_progress, poll_s=poll_s, timeout=timeout)

    def wait(self, job_id: str, on_progress: Callable[[dict], Any] | None = None,
             poll_s: float = 1.0, timeout: float | None = None) -> dict:
        """Poll GET /jobs/<id> every ``poll_s`` seconds until the job ends.

        ``on_progress(job)`` is called with every record polled, the final one included (its
        ``progress`` holds the stage, TPOT's generation, the best CV score so far...). Returns
        the final record if the job succeeded; raises ``JobFailed`` if it failed or was
        cancelled, ``TimeoutError`` if it is still going after ``timeout`` seconds (the job
        itself goes on).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.get("state") in FINISHED:
                break
            if deadline is not None and time.monotonic() + poll_s > deadline:
                raise TimeoutError(f"Job {job_id} is still {job.get('state')} after "
                                   f"{timeout:g} s; it goes on (cancel it with cancel()).")
            time.sleep(poll_s)
        if job["state"] != "succeeded":
            raise JobFailed(job)
        return job

    def predict(self, raw_data, pipeline_id: str | int, version: int | None = None, *,
                as_frame: bool = False, layout: str | None = None):
        """POST /serve_prediction with the pipeline ``pipeline_id``.

        Returns ``{series_id: P(positive class)}`` (binary) or ``{series_id: {class: P}}``; with
        ``as_frame=True`` a pandas DataFrame indexed by ``series_id`` (one column
        ``probability``, or one per class). ``version`` is sent as ``version: N`` in the
        parameter file, for services that keep versions of a pipeline; ``layout`` (``long`` or
        ``wide``) as ``layout:`` (by default the service reads the layout the pipeline was
        trained on).
        """
        params = {"pipeline_id": pipeline_id}
        if version is not None:
            params["version"] = version
        if layout is not None:
            params["layout"] = layout
        files = {"raw_data": _upload(raw_data, "raw_data"),
                 "params": ("params.yml", _yaml_dump(params), "application/yaml")}
        scores = self._request("POST", "/serve_prediction", files=files)
        return scores_frame(scores) if as_frame else scores

    def export_key(self) -> dict:
        """GET /export-key: ``{"algorithm": "Ed25519", "publicKey": "ed25519:...", "keyId"}``,
        what ``automl.export.load(path, trust=...)`` takes (pin it: fetch it once from the
        service you mean and keep it)."""
        return self._request("GET", "/export-key")

    def card(self, pipeline_id: str | int, version: int | None = None) -> str:
        """GET /models/<id>/card: the model card, Markdown."""
        response = self._send("GET", f"/models/{_segment(pipeline_id)}/card",
                              params=_version_query(version), headers={"Accept": "text/markdown"})
        return response.text

    def download(self, pipeline_id: str | int, path, version: int | None = None) -> Path:
        """GET /models/<id>/export: the signed archive of a pipeline version, written to
        ``path`` (a file; or a directory, to hold it under the service's name for it,
        ``automl-<id>-v<version>.zip``). Returns the file's path.

        The file appears whole or not at all (written beside it first). Load it with
        ``automl.export.load(path, trust=client.export_key())``, which needs the service's
        packages; this client does not read it.
        """
        response = self._send("GET", f"/models/{_segment(pipeline_id)}/export", stream=True,
                              params=_version_query(version),
                              headers={"Accept": "application/zip"})
        with response:
            kind = response.headers.get("Content-Type", "").split(";")[0].strip()
            if kind != "application/zip":
                raise ServiceError(f"GET /models/{pipeline_id}/export answered {kind or 'nothing'}"
                                   ", not a zip archive; is the service this version's?",
                                   status=response.status_code, code="invalid_response")
            target = Path(path)
            if target.is_dir():
                target = target / _attachment_name(response, pipeline_id)
            partial = target.with_name(f".{target.name}.{os.getpid()}.part")
            try:
                with partial.open("wb") as out:
                    for chunk in response.iter_content(1 << 16):
                        out.write(chunk)
                with partial.open("rb") as written:
                    if written.read(4) != b"PK\x03\x04":
                        raise ServiceError("The export answer is not a zip archive.",
                                           status=response.status_code, code="invalid_response")
                os.replace(partial, target)
            except requests.RequestException as err:
                raise ConnectionFailed(f"The export of pipeline {pipeline_id} was cut off "
                                       f"({_reason(err)}).", code="connection_failed") from err
            finally:
                partial.unlink(missing_ok=True)
        return target

    # -- internals -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs):
        response = self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ServiceError(f"The answer to {method} {path} is not JSON (HTTP "
                               f"{response.status_code}); is {self.url} the AutoML service?",
                               status=response.status_code, code="invalid_response") from None

    def _send(self, method: str, path: str, **kwargs) -> requests.Response:
        """The answer, or the typed error for an error answer or none."""
        url = self.url + path
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as err:
            raise ConnectionFailed(f"The service at {self.url} did not answer {method} {path} "
                                   f"within {self.timeout:g} s.", code="timeout") from err
        except requests.ConnectionError as err:
            raise ConnectionFailed(f"Cannot reach the service at {self.url} ({_reason(err)}). "
                                   "Is it running, and is the URL right?",
                                   code="connection_failed") from err
        except requests.RequestException as err:  # an unusable URL, say
            raise ConnectionFailed(f"Cannot send {method} {url}: {err}",
                                   code="connection_failed") from err
        if response.status_code >= 400:
            raise error_from_response(response)
        return response


def _version_query(version: int | None) -> dict:
    return {} if version is None else {"version": int(version)}


def _attachment_name(response: requests.Response, pipeline_id) -> str:
    """The file name of Content-Disposition, if it is a plain one; else the service's pattern."""
    found = re.search(r'filename="([A-Za-z0-9_-][A-Za-z0-9_.-]{0,119})"',
                      response.headers.get("Content-Disposition", ""))
    return found.group(1) if found else f"automl-{pipeline_id}.zip"


def scores_frame(scores: dict):
    """Predictions as a DataFrame indexed by ``series_id``."""
    import pandas as pd

    if scores and all(isinstance(v, Mapping) for v in scores.values()):
        frame = pd.DataFrame.from_dict(scores, orient="index")
    else:
        frame = pd.DataFrame({"probability": pd.Series(scores, dtype=float)})
    frame.index = frame.index.astype(str)
    frame.index.name = "series_id"
    return frame


def _segment(value) -> str:
    return quote(str(value), safe="")


def _reason(err: Exception) -> str:
    """The useful end of requests' long connection messages: 'Connection refused'..."""
    text = str(err)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    for hint in ("Name or service not known", "Connection refused", "timed out"):
        if hint in text:
            return hint
    return type(err).__name__


_CONTENT_TYPES = {".json": "application/json", ".csv": "text/csv", ".yml": "application/yaml",
                  ".yaml": "application/yaml", ".parquet": "application/vnd.apache.parquet"}


def _upload(value, field: str) -> tuple[str, bytes, str]:
    """One multipart file: (filename, content, content type). The service tells JSON from CSV
    by the type, then the extension, then the content."""
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        return path.name, path.read_bytes(), _content_type(path.name)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return field, bytes(value), "application/octet-stream"
    if hasattr(value, "read"):
        content = value.read()
        content = content.encode() if isinstance(content, str) else bytes(content)
        name = getattr(value, "name", None)
        name = PurePath(name).name if isinstance(name, str) and name else field
        return name, content, _content_type(name)
    if _is_pandas(value):
        return f"{field}.csv", _csv(value), "text/csv"
    raise TypeError(f"{field}: expected a path, an open binary file, bytes or a pandas DataFrame, "
                    f"not {type(value).__name__}")


def _params_upload(params, pipeline_id) -> tuple[str, bytes, str]:
    if params is None:
        params = {}
    if pipeline_id is None and not isinstance(params, Mapping):
        return _upload(params, "params")
    if isinstance(params, Mapping):
        document = dict(params)
    else:  # a file whose pipeline_id is overridden: read it, set the id, send it again
        import yaml

        filename, content, _ = _upload(params, "params")
        try:
            document = yaml.safe_load(content.decode("utf-8-sig")) or {}
        except (UnicodeDecodeError, yaml.YAMLError) as err:
            raise ValueError(f"params ({filename}) is not valid YAML: {err}") from None
        if not isinstance(document, dict):
            raise ValueError(f"params ({filename}) must be a YAML mapping of keys to values.")
    if pipeline_id is not None:
        document["pipeline_id"] = pipeline_id
    return "params.yml", _yaml_dump(document), "application/yaml"


def _yaml_dump(document: Mapping) -> bytes:
    import yaml

    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True).encode()


def _content_type(filename: str) -> str:
    return _CONTENT_TYPES.get(PurePath(filename).suffix.lower(), "application/octet-stream")


def _is_pandas(value) -> bool:
    pd = sys.modules.get("pandas")  # a DataFrame means pandas is imported already
    return pd is not None and isinstance(value, (pd.DataFrame, pd.Series))


def _csv(table) -> bytes:
    """A DataFrame (or Series) as CSV; its index is written only if it is named (e.g. the
    series id set as the index), not a plain row number."""
    if not hasattr(table, "columns"):
        table = table.to_frame()
    named_index = any(name is not None for name in table.index.names)
    return table.to_csv(index=named_index).encode()
