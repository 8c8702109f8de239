"""Trained pipelines: a registry of versions in a shared backend, read through an in-process cache.

Per pipeline id the backend holds (see ``backends``: a local directory or Redis):

    models/<id>                  the pipeline: its ``current`` version, owner, versions made
    model-versions/<id>/<v>      one version: metadata (the training report), who made it,
                                 its artifact's key and the HMAC signature binding the three
    artifacts/<id>-v<v>-<rand>   the pickled TimeSeriesClassifier

Versions are numbered 1, 2, ... per id and never reused. A training adds a version; while it
runs, the version may be replaced by better provisional models, and it is removed if the job
fails. The ``current`` alias is what a bare id serves: a finished version moves it, a
provisional one only when nothing finished is current. Writes go artifact first, records
last, each atomic, so a reader (another worker, another instance, or this one after a
restart) sees a whole version or the one before, never a mix.

A signature covers the pipeline id, the version and the artifact's bytes, so write access to
the backend without the server's secret is no path to code execution, nor to serving one
pipeline under another's id. One unreadable record affects only its own pipeline.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pickle
import secrets
import threading
from datetime import datetime, timezone

from .config import ConfigurationError
from .errors import PipelineNotFound, PipelineUnreadable
from .params import PIPELINE_ID

log = logging.getLogger(__name__)

SECRET_KEY = "secret_key"
_SIGNATURE_CONTEXT = b"automl-pipeline-v2"


class VersionNotFound(PipelineNotFound):
    code = "version_not_found"


class Keys:
    """Every backend key of a pipeline, in one place."""

    PIPELINES, VERSIONS, ARTIFACTS = "models", "model-versions", "artifacts"

    @staticmethod
    def pipeline(pipeline_id: str) -> str:
        return f"{Keys.PIPELINES}/{pipeline_id}"

    @staticmethod
    def versions(pipeline_id: str) -> str:
        return f"{Keys.VERSIONS}/{pipeline_id}"

    @staticmethod
    def version(pipeline_id: str, version: int) -> str:
        return f"{Keys.VERSIONS}/{pipeline_id}/{version}"

    @staticmethod
    def artifact(pipeline_id: str, version: int) -> str:
        return f"{Keys.ARTIFACTS}/{pipeline_id}-v{version}-{secrets.token_hex(8)}"

    @staticmethod
    def lock(pipeline_id: str) -> str:
        return f"model-{pipeline_id}"


class ModelStore:
    def __init__(self, backend, secret: bytes | None = None, keep_versions: int = 10):
        self.backend = backend
        self.keep_versions = keep_versions
        self._secret = secret or self._generated_secret()
        self._cache: dict[tuple[str, int], tuple[str, object]] = {}  # -> (artifact, pipeline)
        self._lock = threading.Lock()
        self._reported: set[tuple[str, str]] = set()
        self._migrate_legacy_records()

    # -- reading ---------------------------------------------------------------------------

    def metadata(self, pipeline_id: str, version: int | None = None) -> dict:
        """The training report of a version (by default the current one), with its id,
        version and who made it."""
        return self._describe(pipeline_id, *self._version(pipeline_id, version))

    def list(self) -> dict[str, dict]:
        """Every pipeline's current version, by id; an unreadable one as ``unreadable``."""
        found = {}
        for key in self.backend.keys(Keys.PIPELINES):
            pipeline_id = key.removeprefix(f"{Keys.PIPELINES}/")
            try:
                pipeline, entry = self._version(pipeline_id, None)
                if not self.backend.exists(entry["artifact"]):
                    raise self._unreadable(pipeline_id, "its stored file is missing")
                found[pipeline_id] = self._describe(pipeline_id, pipeline, entry)
            except PipelineNotFound:
                continue  # deleted between listing and reading
            except PipelineUnreadable as err:
                found[pipeline_id] = {"modelId": _as_number(pipeline_id), "unreadable": True,
                                      "message": err.message}
        return dict(sorted(found.items(), key=lambda item: _natural_key(item[0])))

    def versions(self, pipeline_id: str) -> list[dict]:
        """Every version of a pipeline, oldest first, each with its report."""
        pipeline = self._pipeline(pipeline_id)
        listed = []
        for key in self.backend.keys(Keys.versions(pipeline_id)):
            number = key.rsplit("/", 1)[1]
            if number.isdigit():
                try:
                    listed.append(self._describe(pipeline_id, pipeline, self._version_record(
                        pipeline_id, int(number))))
                except PipelineNotFound:
                    continue
        return sorted(listed, key=lambda v: v["version"])

    def get(self, pipeline_id: str, version: int | None = None):
        """The pipeline, from the cache unless it was replaced elsewhere since."""
        for _ in range(3):  # the artifact can be swapped out between reading record and blob
            _, record = self._version(pipeline_id, version)
            cache_key = (pipeline_id, record["version"])
            cached = self._cache.get(cache_key)
            if cached and cached[0] == record["artifact"]:
                return cached[1]
            payload = self._verified_payload(pipeline_id, record)
            if payload is None:
                continue  # replaced meanwhile: read the new record
            try:
                pipeline = pickle.loads(payload)  # signed by this service: not user bytes
            except Exception as err:  # noqa: BLE001 - e.g. written by an incompatible version
                raise self._unreadable(pipeline_id, f"its file cannot be loaded ({type(err).__name__})")
            with self._lock:
                self._cache[cache_key] = (record["artifact"], pipeline)
            return pipeline
        raise _not_found(pipeline_id)

    def artifact(self, pipeline_id: str, version: int | None = None) -> tuple[dict, bytes]:
        """A version's report (as ``metadata`` describes it) and its artifact's bytes exactly
        as stored, their signature checked (for export: nothing is unpickled here)."""
        for _ in range(3):
            pipeline, record = self._version(pipeline_id, version)
            payload = self._verified_payload(pipeline_id, record)
            if payload is not None:
                return self._describe(pipeline_id, pipeline, record), payload
        raise _not_found(pipeline_id)

    def derive_key(self, purpose: str) -> bytes:
        """32 bytes derived from the store's secret for one ``purpose`` (HKDF-SHA256), e.g. the
        seed of the key that signs exports: the secret itself never leaves the store."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SIGNATURE_CONTEXT,
                    info=purpose.encode()).derive(self._secret)

    def _verified_payload(self, pipeline_id: str, record: dict) -> bytes | None:
        """The artifact's bytes if they carry this server's signature for the id and version;
        None if the version was replaced meanwhile; unreadable otherwise."""
        payload = self.backend.get(record["artifact"])
        if payload is None:
            if self.backend.get(Keys.version(pipeline_id, record["version"])) is None:
                return None
            raise self._unreadable(pipeline_id, "its stored file is missing")
        signature = self._sign(pipeline_id, record["version"], payload)
        if not hmac.compare_digest(signature, str(record.get("signature", ""))):
            raise self._unreadable(pipeline_id, "its file does not carry this server's "
                                   "signature for this id and version, so it was not loaded",
                                   "check AUTOML_SECRET_KEY matches the server that "
                                   "trained it")
        return payload

    def exists(self, pipeline_id: str) -> bool:
        return PIPELINE_ID.match(pipeline_id) is not None and \
            self.backend.exists(Keys.pipeline(pipeline_id))

    def owner(self, pipeline_id: str) -> str | None:
        """The name of the key that created the pipeline (None: made without keys)."""
        return self._pipeline(pipeline_id).get("owner")

    # -- writing ---------------------------------------------------------------------------

    def save(self, pipeline, metadata: dict, pipeline_id: str | None = None, *,
             version: int | None = None, provisional: bool = False, job_id: str | None = None,
             created_by: str | None = None) -> tuple[str, int]:
        """Store a complete pipeline as a version; return its (pipeline id, version).

        Without ``version``, a new version is added (with no id, under the next free whole
        number); with it, that version (one this job added) is replaced.
        """
        payload = pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)
        if pipeline_id is None:
            pipeline_id = self._new_pipeline(created_by)
        with self.backend.lock(Keys.lock(pipeline_id)):
            record = self._pipeline(pipeline_id, missing_ok=True) or {
                "pipelineId": pipeline_id, "current": None, "nextVersion": 1,
                "owner": created_by, "createdAt": _now()}
            if version is None:
                version = int(record["nextVersion"])
                record["nextVersion"] = version + 1
                replaced = None
            else:
                replaced = self._version_record(pipeline_id, version, missing_ok=True)
            artifact = Keys.artifact(pipeline_id, version)
            self.backend.put(artifact, payload)
            entry = {"version": version, "artifact": artifact,
                     "signature": self._sign(pipeline_id, version, payload),
                     "metadata": metadata, "provisional": provisional, "jobId": job_id,
                     "createdBy": created_by, "createdAt": _now()}
            try:
                self.backend.put(Keys.version(pipeline_id, version), _dump(entry))
                if not provisional or not self._finished_current(pipeline_id, record):
                    record["current"] = version
                record["updatedAt"] = _now()
                self.backend.put(Keys.pipeline(pipeline_id), _dump(record))
            except BaseException:
                self.backend.delete(artifact)
                raise
            if replaced and replaced["artifact"] != artifact:
                self.backend.delete(replaced["artifact"])
            if not provisional:
                self._prune(pipeline_id, record)
        with self._lock:
            self._cache[(pipeline_id, version)] = (artifact, pipeline)
        return pipeline_id, version

    def finalize(self, pipeline_id: str, version: int, **report) -> None:
        """Make a provisional version final as it is (its job stopped at the budget), adding
        ``report`` to its metadata; it becomes current."""
        with self.backend.lock(Keys.lock(pipeline_id)):
            record = self._pipeline(pipeline_id)
            entry = self._version_record(pipeline_id, version)
            entry.update(provisional=False, metadata={**entry["metadata"], **report})
            self.backend.put(Keys.version(pipeline_id, version), _dump(entry))
            record["current"], record["updatedAt"] = version, _now()
            self.backend.put(Keys.pipeline(pipeline_id), _dump(record))
            self._prune(pipeline_id, record)

    def discard(self, pipeline_id: str, version: int) -> None:
        """Remove a version a failed or cancelled job left; the alias falls back to the
        newest finished version, and a pipeline left with none is removed."""
        with self.backend.lock(Keys.lock(pipeline_id)):
            self._remove_version(pipeline_id, version)

    def rollback(self, pipeline_id: str, to: int | None = None) -> dict:
        """Point ``current`` at version ``to``, or at the finished version before it."""
        with self.backend.lock(Keys.lock(pipeline_id)):
            record = self._pipeline(pipeline_id)
            finished = [v["version"] for v in self._version_records(pipeline_id)
                        if not v.get("provisional")]
            if to is None:
                earlier = [v for v in finished if record["current"] is None or v < record["current"]]
                if not earlier:
                    raise VersionNotFound(f"Pipeline '{pipeline_id}' has no version before "
                                          f"{record['current']} to roll back to; GET "
                                          f"/models/{pipeline_id}/versions lists them.")
                to = max(earlier)
            elif to not in finished:
                raise VersionNotFound(f"Pipeline '{pipeline_id}' has no finished version {to}; "
                                      f"GET /models/{pipeline_id}/versions lists them.")
            record["current"], record["updatedAt"] = to, _now()
            self.backend.put(Keys.pipeline(pipeline_id), _dump(record))
        return self.metadata(pipeline_id)

    def delete_version(self, pipeline_id: str, version: int) -> None:
        with self.backend.lock(Keys.lock(pipeline_id)):
            self._pipeline(pipeline_id)
            self._version_record(pipeline_id, version)
            self._remove_version(pipeline_id, version)

    def delete(self, pipeline_id: str) -> None:
        """Every version and artifact of the pipeline, and the pipeline."""
        with self.backend.lock(Keys.lock(pipeline_id)):
            self._pipeline(pipeline_id)
            for entry in self._version_records(pipeline_id):
                self.backend.delete(entry["artifact"], Keys.version(pipeline_id, entry["version"]))
            self.backend.delete(Keys.pipeline(pipeline_id))
        self._forget(pipeline_id)

    # -- internals -------------------------------------------------------------------------

    def _new_pipeline(self, created_by: str | None) -> str:
        """The next free whole-number id, claimed race-free."""
        while True:
            numbers = [int(key.removeprefix(f"{Keys.PIPELINES}/"))
                       for key in self.backend.keys(Keys.PIPELINES)
                       if key.removeprefix(f"{Keys.PIPELINES}/").isdigit()]
            candidate = str(max(numbers, default=0) + 1)
            record = {"pipelineId": candidate, "current": None, "nextVersion": 1,
                      "owner": created_by, "createdAt": _now()}
            if self.backend.put_new(Keys.pipeline(candidate), _dump(record)):
                return candidate

    def _finished_current(self, pipeline_id: str, record: dict) -> bool:
        if record.get("current") is None:
            return False
        current = self._version_record(pipeline_id, record["current"], missing_ok=True)
        return bool(current) and not current.get("provisional")

    def _remove_version(self, pipeline_id: str, version: int) -> None:
        record = self._pipeline(pipeline_id, missing_ok=True)
        entry = self._version_record(pipeline_id, version, missing_ok=True)
        if entry:
            self.backend.delete(entry["artifact"], Keys.version(pipeline_id, version))
        if record is None:
            return
        remaining = self._version_records(pipeline_id)
        if not remaining:
            self.backend.delete(Keys.pipeline(pipeline_id))
        elif record.get("current") == version:
            finished = [v["version"] for v in remaining if not v.get("provisional")]
            record["current"] = max(finished) if finished else max(v["version"] for v in remaining)
            self.backend.put(Keys.pipeline(pipeline_id), _dump(record))
        self._forget(pipeline_id, version)

    def _prune(self, pipeline_id: str, record: dict) -> None:
        """Keep the newest ``keep_versions`` finished versions, and always the current one."""
        finished = sorted(v["version"] for v in self._version_records(pipeline_id)
                          if not v.get("provisional"))
        for old in finished[:-self.keep_versions] if self.keep_versions else []:
            if old != record.get("current"):
                entry = self._version_record(pipeline_id, old, missing_ok=True)
                if entry:
                    self.backend.delete(entry["artifact"], Keys.version(pipeline_id, old))
                self._forget(pipeline_id, old)

    def _forget(self, pipeline_id: str, version: int | None = None) -> None:
        with self._lock:
            for key in [k for k in self._cache if k[0] == pipeline_id
                        and (version is None or k[1] == version)]:
                del self._cache[key]

    def _version(self, pipeline_id: str, version: int | None) -> tuple[dict, dict]:
        """The pipeline record and the version record asked for (None: the current one)."""
        pipeline = self._pipeline(pipeline_id)
        if version is None:
            version = pipeline.get("current")
            if version is None:
                raise _not_found(pipeline_id)
        return pipeline, self._version_record(pipeline_id, version)

    def _pipeline(self, pipeline_id: str, missing_ok: bool = False) -> dict | None:
        if not PIPELINE_ID.match(pipeline_id):  # ids become keys and file names
            if missing_ok:
                return None
            raise _not_found(pipeline_id)
        raw = self.backend.get(Keys.pipeline(pipeline_id))
        if raw is None:
            if missing_ok:
                return None
            raise _not_found(pipeline_id)
        record = self._decode(pipeline_id, raw)
        if "artifact" in record:  # written by an earlier version of the service since start
            raise self._unreadable(pipeline_id, "its record is in an older format",
                                   "restart the service, which migrates such records")
        if not isinstance(record.get("nextVersion"), int):
            raise self._unreadable(pipeline_id, "its record is damaged")
        return record

    def _version_record(self, pipeline_id: str, version, missing_ok: bool = False) -> dict | None:
        raw = self.backend.get(Keys.version(pipeline_id, int(version)))
        if raw is None:
            if missing_ok:
                return None
            raise VersionNotFound(f"Pipeline '{pipeline_id}' has no version {version}. GET "
                                  f"/models/{pipeline_id}/versions lists them.")
        entry = self._decode(pipeline_id, raw)
        if not isinstance(entry.get("artifact"), str) or entry.get("version") != int(version) \
                or not isinstance(entry.get("metadata"), dict):
            raise self._unreadable(pipeline_id, f"the record of version {version} is damaged")
        return entry

    def _version_records(self, pipeline_id: str) -> list[dict]:
        found = []
        for key in self.backend.keys(Keys.versions(pipeline_id)):
            number = key.rsplit("/", 1)[1]
            if number.isdigit():
                try:
                    entry = self._version_record(pipeline_id, int(number), missing_ok=True)
                except PipelineUnreadable:
                    continue
                if entry:
                    found.append(entry)
        return found

    def _decode(self, pipeline_id: str, raw: bytes) -> dict:
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise self._unreadable(pipeline_id, "its record is not valid JSON")
        return record

    def _migrate_legacy_records(self) -> None:
        """Pipelines stored before versions (one record with its artifact) become version 1.

        Their signature covered only the artifact's bytes; it is checked, then the artifact
        is re-signed for its id and version, as every version is from now on. Runs at start,
        before anything is served; a record that fails the check is left as it is (and
        answers as unreadable).
        """
        for key in self.backend.keys(Keys.PIPELINES):
            pipeline_id = key.removeprefix(f"{Keys.PIPELINES}/")
            if PIPELINE_ID.match(pipeline_id):
                with self.backend.lock(Keys.lock(pipeline_id)):
                    raw = self.backend.get(key)
                    try:
                        legacy = json.loads(raw) if raw else None
                    except ValueError:
                        continue
                    if isinstance(legacy, dict) and "artifact" in legacy:
                        self._migrate(pipeline_id, legacy)

    def _migrate(self, pipeline_id: str, current: dict) -> None:
        payload = self.backend.get(str(current["artifact"]))
        legacy_signature = hmac.new(self._secret, payload or b"", hashlib.sha256).hexdigest()
        if payload is None or not hmac.compare_digest(legacy_signature,
                                                      str(current.get("signature"))):
            log.error("pipeline %s: its file (stored by an earlier version) is missing or not "
                      "signed by this server; not migrated", pipeline_id)
            return
        metadata = dict(current.get("metadata") or {})
        entry = {"version": 1, "artifact": current["artifact"],
                 "signature": self._sign(pipeline_id, 1, payload), "metadata": metadata,
                 "provisional": bool(metadata.get("provisional")),
                 "jobId": metadata.get("jobId"), "createdBy": None,
                 "createdAt": metadata.get("createdAt") or _now()}
        record = {"pipelineId": pipeline_id, "current": 1, "nextVersion": 2, "owner": None,
                  "createdAt": entry["createdAt"], "updatedAt": _now()}
        self.backend.put(Keys.version(pipeline_id, 1), _dump(entry))
        self.backend.put(Keys.pipeline(pipeline_id), _dump(record))
        log.info("pipeline %s: migrated to a versioned record (version 1)", pipeline_id)

    @staticmethod
    def _describe(pipeline_id: str, pipeline: dict, entry: dict) -> dict:
        return {**entry["metadata"], "modelId": _as_number(pipeline_id),
                "version": entry["version"], "current": pipeline.get("current") == entry["version"],
                "provisional": bool(entry.get("provisional")), "jobId": entry.get("jobId"),
                "createdBy": entry.get("createdBy"), "owner": pipeline.get("owner")}

    def signature(self, context: bytes, *names: str, payload: bytes) -> str:
        """This server's signature of ``payload`` for what ``context`` and ``names`` say it
        is: pipelines are signed so, and so is anything else this service will unpickle
        (a job's checkpoint), so that write access to the store is not enough to run code."""
        message = b"\0".join((context, *(name.encode() for name in names),
                              hashlib.sha256(payload).digest()))
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _sign(self, pipeline_id: str, version: int, payload: bytes) -> str:
        return self.signature(_SIGNATURE_CONTEXT, pipeline_id, str(version), payload=payload)

    def _unreadable(self, pipeline_id: str, why: str, fix: str = "retrain it") -> PipelineUnreadable:
        if (pipeline_id, why) not in self._reported:  # once per process and problem
            self._reported.add((pipeline_id, why))
            log.error("pipeline %s: %s", pipeline_id, why)
        return PipelineUnreadable(f"Pipeline '{pipeline_id}' is stored but {why}. Other "
                                  f"pipelines are unaffected; {fix}.")

    def _generated_secret(self) -> bytes:
        """Without AUTOML_SECRET_KEY, a key kept in the backend (created once, race-free).

        Fine for the embedded directory store on one machine; a shared store must be given
        its secret from the environment (see ``state``). A key gone missing while pipelines
        remain is refused: a new one would make every stored pipeline unreadable.
        """
        existing = self.backend.get(SECRET_KEY)
        if existing is None:
            if self.backend.keys(Keys.PIPELINES):
                raise ConfigurationError(
                    f"The store ({self.backend.describe()}) holds pipelines but its secret key "
                    f"('{SECRET_KEY}') is gone, so none of them could be verified. Restore the "
                    "key file, set AUTOML_SECRET_KEY to the key that signed them, or move the "
                    "pipelines away to start afresh.")
            self.backend.put_new(SECRET_KEY, secrets.token_hex(32).encode())
            existing = self.backend.get(SECRET_KEY)
        return existing


def _not_found(pipeline_id: str) -> PipelineNotFound:
    return PipelineNotFound(f"No pipeline with id '{pipeline_id[:64]}'. Train one with POST "
                            "/train_model, or pick an id from GET /models.")


def _dump(value: dict) -> bytes:
    return json.dumps(value, default=str).encode()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _as_number(pipeline_id: str):
    """A whole-number id as a number, as the post's client reads ``modelId`` (but ``010``
    stays text: it is not the id ``10``)."""
    return int(pipeline_id) if pipeline_id.isdigit() and str(int(pipeline_id)) == pipeline_id \
        else pipeline_id


def _natural_key(pipeline_id: str):
    return (0, int(pipeline_id), pipeline_id) if pipeline_id.isdigit() else (1, 0, pipeline_id)
