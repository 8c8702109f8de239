"""Trained pipelines: an in-process dict, read through from a shared backend.

Per pipeline id the backend holds (see ``backends``: a local directory or Redis):

    models/<id>                 JSON record: metadata, the artifact's key and its HMAC signature
    artifacts/<id>-<random>     the pickled TimeSeriesClassifier

The artifact is written first and the record last, each atomically, so a reader (another
gunicorn worker, another instance, or this one after a restart) sees either the old pipeline
or the complete new one, never a mix; two writers of one id end with one of the two whole.
Pickles are loaded only after their signature checks out, so write access to the backend
without the server's secret is not a path to code execution.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pickle
import secrets
import threading

from .errors import ApiError, PipelineNotFound
from .params import PIPELINE_ID

log = logging.getLogger(__name__)


class TamperedArtifact(ApiError):
    status = 500
    code = "pipeline_unreadable"


class ModelStore:
    def __init__(self, backend, secret: bytes | None = None):
        self.backend = backend
        self._secret = secret or self._generated_secret()
        self._cache: dict[str, tuple[str, object]] = {}  # id -> (artifact key, pipeline)
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------

    def metadata(self, pipeline_id: str) -> dict:
        return self._record(pipeline_id)["metadata"]

    def list(self) -> dict[str, dict]:
        found = {}
        for key in self.backend.keys("models"):
            raw = self.backend.get(key)
            if raw is not None:  # None: deleted between listing and reading
                found[key.removeprefix("models/")] = json.loads(raw)["metadata"]
        return dict(sorted(found.items(), key=lambda item: _natural_key(item[0])))

    def get(self, pipeline_id: str):
        """The pipeline, from the dict unless it was replaced elsewhere since."""
        for _ in range(3):  # the artifact can be swapped out between reading record and blob
            record = self._record(pipeline_id)
            cached = self._cache.get(pipeline_id)
            if cached and cached[0] == record["artifact"]:
                return cached[1]
            payload = self.backend.get(record["artifact"])
            if payload is None:
                continue
            if not hmac.compare_digest(self._sign(payload), record["signature"]):
                log.error("pipeline %s: artifact %s fails its signature check; refusing to load",
                          pipeline_id, record["artifact"])
                raise TamperedArtifact(f"Pipeline '{pipeline_id}' is stored but its file does not "
                                       "carry this server's signature, so it was not loaded. "
                                       "Retrain it, or check AUTOML_SECRET_KEY matches the "
                                       "server that trained it.")
            pipeline = pickle.loads(payload)  # signed by this service: not user bytes
            with self._lock:
                self._cache[pipeline_id] = (record["artifact"], pipeline)
            return pipeline
        raise self._not_found(pipeline_id)

    def exists(self, pipeline_id: str) -> bool:
        return self.backend.get(f"models/{pipeline_id}") is not None

    # -- writing ---------------------------------------------------------------------------

    def save(self, pipeline, metadata: dict, pipeline_id: str | None = None,
             replace_if=None) -> str | None:
        """Store a complete pipeline; with no id, take the next free whole number.

        ``replace_if(current_metadata)`` can veto replacing an existing pipeline (a provisional
        model must not replace a finished one); then nothing is written and None returned.
        """
        payload = pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)
        signature = self._sign(payload)
        while True:
            candidate = pipeline_id or self._next_free_id()
            artifact = f"artifacts/{candidate}-{secrets.token_hex(8)}"
            self.backend.put(artifact, payload)
            record = {"artifact": artifact, "signature": signature,
                      "metadata": {**metadata, "modelId": _as_number(candidate)}}
            encoded = json.dumps(record, default=str).encode()
            if pipeline_id is None:
                if self.backend.put_new(f"models/{candidate}", encoded):
                    previous = None
                    break
                self.backend.delete(artifact)  # lost a race for a new id: take the next
                continue
            with self.backend.lock(f"model-{candidate}"):
                current = self._current(candidate)
                if current and replace_if and not replace_if(current["metadata"]):
                    self.backend.delete(artifact)
                    return None
                self.backend.put(f"models/{candidate}", encoded)
            previous = current["artifact"] if current else None
            break
        if previous and previous != artifact:
            self.backend.delete(previous)
        with self._lock:
            self._cache[candidate] = (artifact, pipeline)
        return candidate

    # -- internals -------------------------------------------------------------------------

    def _record(self, pipeline_id: str) -> dict:
        record = self._current(pipeline_id)
        if record is None:
            raise self._not_found(pipeline_id)
        return record

    def _current(self, pipeline_id: str) -> dict | None:
        if not PIPELINE_ID.match(pipeline_id):  # ids become keys and file names
            return None
        raw = self.backend.get(f"models/{pipeline_id}")
        return json.loads(raw) if raw is not None else None

    def _next_free_id(self) -> str:
        numbers = [int(key.removeprefix("models/")) for key in self.backend.keys("models")
                   if key.removeprefix("models/").isdigit()]
        return str(max(numbers, default=0) + 1)

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()

    def _generated_secret(self) -> bytes:
        """Without AUTOML_SECRET_KEY, a key kept in the backend (created once, race-free).

        Fine for the embedded directory store on one machine; a shared store must be given
        its secret from the environment (see ``create_app``).
        """
        self.backend.put_new("secret_key", secrets.token_hex(32).encode())
        return self.backend.get("secret_key")

    @staticmethod
    def _not_found(pipeline_id: str) -> PipelineNotFound:
        return PipelineNotFound(f"No pipeline with id '{pipeline_id}'. Train one with POST "
                                "/train_model, or pick an id from GET /models.")


def _as_number(pipeline_id: str):
    return int(pipeline_id) if pipeline_id.isdigit() else pipeline_id


def _natural_key(pipeline_id: str):
    return (0, int(pipeline_id), "") if pipeline_id.isdigit() else (1, 0, pipeline_id)
