"""Training jobs: a durable queue in the shared backend.

Per job the backend holds keys written by exactly one party each, so no update is lost:

    jobs/<id>                 the record: state, timestamps, result or error (under the jobs lock)
    jobs-active/<id>          present while the job is queued or running: what runners scan
    job-uploads/<id>-<name>   the uploaded files, until the job ends (written by the request)
    job-progress/<id>         stage, generation, pipelines evaluated... (the training process)
    job-heartbeats/<id>       last sign of life (the runner watching the training process)

A running job whose heartbeat stops (its runner was killed) is failed by any runner that
notices, so no job stays "running" for ever.
"""
from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timezone

from .errors import ApiError, NotFound
from .uploads import TRAINING_FILES, Upload

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)


class JobNotFound(NotFound):
    code = "job_not_found"


class JobFinished(ApiError):
    status = 409
    code = "job_finished"


class JobStore:
    def __init__(self, backend, max_running: int = 1, stale_after_s: float = 30.0):
        self.backend = backend
        self.max_running = max_running
        self.stale_after_s = stale_after_s

    # -- the request side ------------------------------------------------------------------

    def create(self, uploads: dict, pipeline_id: str | None, budget_s: float | None) -> dict:
        # A shared counter orders jobs as submitted, whatever the clocks; the random tail keeps
        # ids unguessable. Zero-padded, so sorting the ids sorts by submission.
        job_id = f"{self.backend.increment('jobs'):010d}{secrets.token_hex(4)}"
        for name, upload in uploads.items():
            envelope = {"filename": upload.filename, "content_type": upload.content_type}
            self.backend.put(f"job-uploads/{job_id}-{name}.meta", json.dumps(envelope).encode())
            self.backend.put(f"job-uploads/{job_id}-{name}", upload.payload)
        record = {"jobId": job_id, "state": QUEUED, "pipelineId": pipeline_id,
                  "budgetSeconds": budget_s, "createdAt": _now(), "startedAt": None,
                  "finishedAt": None, "result": None, "error": None, "cancelRequested": False}
        # The marker first: a crash in between leaves a marker without a job, which is skipped,
        # rather than a queued job no runner would ever see.
        self.backend.put(f"jobs-active/{job_id}", b"")
        self.backend.put(f"jobs/{job_id}", _dump(record))
        return self.get(job_id)

    def get(self, job_id: str) -> dict:
        record = self._record(job_id)
        progress = self.backend.get(f"job-progress/{job_id}")
        record["progress"] = json.loads(progress) if progress else None
        return record

    def list(self) -> list[dict]:
        records = [json.loads(raw) for key in self.backend.keys("jobs")
                   if (raw := self.backend.get(key)) is not None]
        return sorted(records, key=lambda r: r["jobId"], reverse=True)  # newest first

    def cancel(self, job_id: str) -> dict:
        with self.backend.lock("jobs"):
            record = self._record(job_id)
            if record["state"] == QUEUED:
                self._finish_locked(record, CANCELLED, error={
                    "error": "cancelled", "message": "Cancelled before it started."})
            elif record["state"] == RUNNING:
                record["cancelRequested"] = True  # the runner stops the process
                self.backend.put(f"jobs/{job_id}", _dump(record))
            else:
                raise JobFinished(f"Job '{job_id}' already ended as {record['state']}; "
                                  "there is nothing to cancel.")
        return self.get(job_id)

    def wait(self, job_id: str, poll_s: float = 0.5) -> dict:
        while True:
            record = self._record(job_id)
            if record["state"] in FINISHED:
                return record
            time.sleep(poll_s)

    # -- the runner side -------------------------------------------------------------------

    def claim(self, owner: str) -> dict | None:
        """The oldest queued job, now running under ``owner``, if the running limit allows."""
        with self.backend.lock("jobs"):
            records = self._active()
            if sum(r["state"] == RUNNING for r in records) >= self.max_running:
                return None
            queued = [r for r in records if r["state"] == QUEUED]
            if not queued:
                return None
            record = min(queued, key=lambda r: r["jobId"])
            started = time.time()
            budget = record.get("budgetSeconds")
            record.update(state=RUNNING, startedAt=_now(), startedEpoch=started, owner=owner,
                          deadline=started + budget if budget else None)
            self.beat(record["jobId"])
            self.backend.put(f"jobs/{record['jobId']}", _dump(record))
            return record

    def uploads(self, job_id: str) -> dict[str, Upload]:
        found = {}
        for name in TRAINING_FILES:
            payload = self.backend.get(f"job-uploads/{job_id}-{name}")
            if payload is not None:
                meta = json.loads(self.backend.get(f"job-uploads/{job_id}-{name}.meta") or b"{}")
                found[name] = Upload(payload, meta.get("filename"), meta.get("content_type"))
        return found

    def beat(self, job_id: str) -> None:
        self.backend.put(f"job-heartbeats/{job_id}", str(time.time()).encode())

    def report_progress(self, job_id: str, progress: dict) -> None:
        self.backend.put(f"job-progress/{job_id}", _dump(progress))

    def finish(self, job_id: str, state: str, result: dict | None = None,
               error: dict | None = None) -> bool:
        """End a job once; False if it had already ended (e.g. cancelled meanwhile)."""
        with self.backend.lock("jobs"):
            record = self._record(job_id)
            if record["state"] in FINISHED:
                return False
            self._finish_locked(record, state, result, error)
            return True

    def fail_abandoned(self) -> list[str]:
        """Fail running jobs whose runner stopped beating (killed, or its machine gone)."""
        failed = []
        now = time.time()
        for record in self._active():
            if record["state"] != RUNNING:
                continue
            beat = float(self.backend.get(f"job-heartbeats/{record['jobId']}") or 0)
            if now - beat > self.stale_after_s and self.finish(record["jobId"], FAILED, error={
                    "error": "worker_lost",
                    "message": "The process running this training stopped (killed or its machine "
                               "went away) before it finished. Pipelines already stored are "
                               "untouched; submit the training again."}):
                failed.append(record["jobId"])
        return failed

    # -- internals -------------------------------------------------------------------------

    def _record(self, job_id: str) -> dict:
        valid = job_id.isascii() and job_id.isalnum() and len(job_id) <= 64
        raw = self.backend.get(f"jobs/{job_id}") if valid else None
        if raw is None:
            raise JobNotFound(f"No job with id '{job_id}'. GET /jobs lists them.")
        return json.loads(raw)

    def _active(self) -> list[dict]:
        """Queued and running jobs, without reading the whole history."""
        records = []
        for key in self.backend.keys("jobs-active"):
            raw = self.backend.get(f"jobs/{key.removeprefix('jobs-active/')}")
            if raw is not None:
                records.append(json.loads(raw))
        return [r for r in records if r["state"] not in FINISHED]

    def _finish_locked(self, record: dict, state: str, result=None, error=None) -> None:
        job_id = record["jobId"]
        record.update(state=state, finishedAt=_now(), result=result, error=error)
        self.backend.put(f"jobs/{job_id}", _dump(record))
        uploads = [f"job-uploads/{job_id}-{name}{suffix}"
                   for name in TRAINING_FILES for suffix in ("", ".meta")]
        self.backend.delete(f"jobs-active/{job_id}", f"job-heartbeats/{job_id}", *uploads)


def _dump(value: dict) -> bytes:
    return json.dumps(value, default=str).encode()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
