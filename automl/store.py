"""Trained pipelines: an in-process dict, written through to a directory.

Layout of the directory, one pipeline id at a time:

    <id>.json                 metadata; names the artifact and carries its HMAC signature
    <id>-<random>.pkl         the pickled TimeSeriesClassifier

The artifact is written first and the metadata last, each to a temporary file renamed into
place, so a reader (another gunicorn worker, or this one after a restart) sees either the old
pipeline or the complete new one, never a mix. Pickles are loaded only after their signature
checks out, so the directory is not a path to code execution for someone who can write to it
without the server's secret.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import pickle
import secrets
import tempfile
import threading
from pathlib import Path

from .errors import ApiError, PipelineNotFound
from .params import PIPELINE_ID

log = logging.getLogger(__name__)


class TamperedArtifact(ApiError):
    status = 500
    code = "pipeline_unreadable"


class ModelStore:
    def __init__(self, directory: str | os.PathLike, secret: bytes | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._secret = secret or self._local_secret()
        self._cache: dict[str, tuple[str, object]] = {}  # id -> (artifact name, pipeline)
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------

    def metadata(self, pipeline_id: str) -> dict:
        return self._record(pipeline_id)["metadata"]

    def list(self) -> dict[str, dict]:
        found = {}
        for path in self.directory.glob("*.json"):
            try:
                found[path.stem] = json.loads(path.read_text())["metadata"]
            except FileNotFoundError:  # replaced or deleted between glob and read
                continue
        return dict(sorted(found.items(), key=lambda item: _natural_key(item[0])))

    def get(self, pipeline_id: str):
        """The pipeline, from the dict unless another process has replaced it since."""
        for _ in range(3):  # the artifact can be swapped out between reading record and file
            record = self._record(pipeline_id)
            cached = self._cache.get(pipeline_id)
            if cached and cached[0] == record["artifact"]:
                return cached[1]
            try:
                payload = (self.directory / record["artifact"]).read_bytes()
            except FileNotFoundError:
                continue
            if not hmac.compare_digest(self._sign(payload), record["signature"]):
                log.error("pipeline %s: artifact %s fails its signature check; refusing to load",
                          pipeline_id, record["artifact"])
                raise TamperedArtifact(f"Pipeline '{pipeline_id}' is stored but its file does not "
                                       "carry this server's signature, so it was not loaded. "
                                       "Retrain it, or check AUTOML_SECRET_KEY matches the "
                                       "server that trained it.")
            pipeline = pickle.loads(payload)  # signed by this server: not user bytes
            with self._lock:
                self._cache[pipeline_id] = (record["artifact"], pipeline)
            return pipeline
        raise self._not_found(pipeline_id)

    # -- writing ---------------------------------------------------------------------------

    def save(self, pipeline, metadata: dict, pipeline_id: str | None = None) -> str:
        """Store a complete pipeline; with no id, take the next free whole number."""
        payload = pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)
        while True:
            candidate = pipeline_id or self._next_free_id()
            artifact = f"{candidate}-{secrets.token_hex(8)}.pkl"
            self._write_atomically(self.directory / artifact, payload)
            metadata = {**metadata, "modelId": _as_number(candidate)}
            record = {"artifact": artifact, "signature": self._sign(payload), "metadata": metadata}
            previous = self._artifact_of(candidate)
            if self._publish(candidate, record, replace=pipeline_id is not None):
                break
            (self.directory / artifact).unlink(missing_ok=True)  # lost a race for a new id
        if previous and previous != artifact:
            (self.directory / previous).unlink(missing_ok=True)
        with self._lock:
            self._cache[candidate] = (artifact, pipeline)
        return candidate

    # -- internals -------------------------------------------------------------------------

    def _record(self, pipeline_id: str) -> dict:
        if not PIPELINE_ID.match(pipeline_id):  # ids become file names
            raise self._not_found(pipeline_id)
        try:
            return json.loads((self.directory / f"{pipeline_id}.json").read_text())
        except FileNotFoundError:
            raise self._not_found(pipeline_id) from None

    def _artifact_of(self, pipeline_id: str) -> str | None:
        try:
            return self._record(pipeline_id)["artifact"]
        except PipelineNotFound:
            return None

    def _publish(self, pipeline_id: str, record: dict, replace: bool) -> bool:
        target = self.directory / f"{pipeline_id}.json"
        tmp = self._write_atomically(None, json.dumps(record, default=str).encode())
        try:
            if replace:
                os.replace(tmp, target)
                return True
            try:
                os.link(tmp, target)  # fails if the id was taken meanwhile: no overwrite
                return True
            except FileExistsError:
                return False
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _write_atomically(self, target: Path | None, data: bytes) -> str:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if target is not None:
            os.replace(tmp, target)
            return str(target)
        return tmp

    def _next_free_id(self) -> str:
        numbers = [int(p.stem) for p in self.directory.glob("*.json") if p.stem.isdigit()]
        return str(max(numbers, default=0) + 1)

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()

    def _local_secret(self) -> bytes:
        """Without AUTOML_SECRET_KEY, a key kept beside the models (created once, race-free)."""
        path = self.directory / ".secret_key"
        if not path.exists():
            tmp = self._write_atomically(None, secrets.token_hex(32).encode())
            try:
                os.link(tmp, path)  # the first process to get here decides the key
            except FileExistsError:
                pass
            finally:
                Path(tmp).unlink(missing_ok=True)
        return path.read_bytes()

    @staticmethod
    def _not_found(pipeline_id: str) -> PipelineNotFound:
        return PipelineNotFound(f"No pipeline with id '{pipeline_id}'. Train one with POST "
                                "/train_model, or pick an id from GET /models.")


def _as_number(pipeline_id: str):
    return int(pipeline_id) if pipeline_id.isdigit() else pipeline_id


def _natural_key(pipeline_id: str):
    return (0, int(pipeline_id), "") if pipeline_id.isdigit() else (1, 0, pipeline_id)
