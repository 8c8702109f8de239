"""Runs queued trainings, each in a process of its own, and watches over them.

Every app process has one runner thread. Runners share the queue through the backend, so the
limit on trainings running at once holds across workers and instances. A runner keeps the
heartbeat of each job it started, stops a job that is cancelled or past its hard deadline, and
fails jobs whose runner disappeared. No training runs in a request thread.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .errors import StoreUnavailable
from .jobs import CANCELLED, FAILED, SUCCEEDED, JobNotFound, JobStore
from .store import ModelStore

log = logging.getLogger(__name__)

# How far past its budget a job may run before it is stopped: the stated margin.
HARD_MARGIN_FRACTION, HARD_MARGIN_MIN_S = 0.1, 15.0
SETTINGS_VARIABLE = "AUTOML_WORKER_SETTINGS"  # how a worker receives the service's settings
SETTINGS_FOR_WORKERS = ("MODEL_DIR", "REDIS_URL", "SECRET_KEY", "MAX_CONCURRENT_TRAININGS",
                        "DASK_SCHEDULER_ADDRESS")


def hard_deadline(job: dict) -> float | None:
    if not job.get("deadline"):
        return None
    budget = job["budgetSeconds"]
    return job["deadline"] + max(HARD_MARGIN_MIN_S, HARD_MARGIN_FRACTION * budget)


class JobRunner:
    def __init__(self, jobs: JobStore, models: ModelStore, settings: dict, poll_s: float = 0.5):
        self.jobs = jobs
        self.models = models
        self.settings = {key: settings.get(key) for key in SETTINGS_FOR_WORKERS}
        self.poll_s = poll_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._running: dict[str, subprocess.Popen] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)

    def start(self) -> "JobRunner":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching and end this runner's trainings (they would be orphans otherwise)."""
        self._stop.set()
        self._thread.join(10)
        for job_id, process in list(self._running.items()):
            self._kill(process)
            self._end(job_id, process, FAILED, {
                "error": "worker_lost", "status": 500,
                "message": "The server shut down while this training ran; submit it again."})

    # -- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        store_down = False
        while not self._stop.is_set():
            try:
                self._tick()
                if store_down:
                    log.warning("job runner: the store is reachable again")
                store_down = False
            except StoreUnavailable as err:  # Redis away for a while: say so once, keep trying
                if not store_down:
                    log.warning("job runner: %s", err.message)
                store_down = True
            except Exception:
                log.exception("job runner: this round failed; retrying")
            self._stop.wait(self.poll_s)

    def _tick(self) -> None:
        for job_id, process in list(self._running.items()):
            self._watch(job_id, process)
        self.jobs.fail_abandoned()
        while len(self._running) < self.jobs.max_running and not self._stop.is_set():
            job = self.jobs.claim(self.owner)
            if job is None:
                break
            self._running[job["jobId"]] = self._spawn(job["jobId"])
            log.info("job %s: started (pid %s)", job["jobId"], self._running[job["jobId"]].pid)

    def _spawn(self, job_id: str) -> subprocess.Popen:
        # The worker imports this package by name: make it findable from any working directory.
        package_root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, SETTINGS_VARIABLE: json.dumps(self.settings), "PYTHONPATH": path}
        return subprocess.Popen([sys.executable, "-m", "automl.worker", job_id], env=env,
                                start_new_session=True)

    def _watch(self, job_id: str, process: subprocess.Popen) -> None:
        try:
            job = self.jobs.get(job_id)
        except JobNotFound:  # the store lost it (e.g. Redis restarted empty): nothing to keep
            log.warning("job %s: its record is gone from the store; stopping it", job_id)
            self._kill(process)
            self._running.pop(job_id, None)
            return
        exit_code = process.poll()
        if exit_code is not None:
            self._kill(process)  # what it left behind in its group (a Dask cluster, if killed)
            self._end(job_id, process, FAILED, {
                "error": "worker_lost", "status": 500,
                "message": f"The training process ended abnormally (exit status {exit_code}, "
                           "e.g. killed or out of memory). Pipelines already stored are untouched; "
                           "submit the training again, perhaps with fewer series or a smaller "
                           "feature set."})
            return
        self.jobs.beat(job_id)
        if job["state"] != "running" or job.get("cancelRequested"):
            self._kill(process)
            self._end(job_id, process, CANCELLED, {"error": "cancelled", "status": 409,
                                                   "message": "Cancelled while running."})
            return
        limit = hard_deadline(job)
        if limit and time.time() > limit:
            self._kill(process)
            self._stop_at_budget(job_id, job, process)

    def _stop_at_budget(self, job_id: str, job: dict, process) -> None:
        """Past budget and margin: keep the best pipeline already served, if any."""
        progress = job.get("progress") or {}
        if progress.get("provisionalServed"):
            result = {**self.models.metadata(str(progress["pipelineId"])), "stoppedAtBudget": True}
            self._end(job_id, process, SUCCEEDED, result=result)
        else:
            self._end(job_id, process, FAILED, {
                "error": "budget_exceeded", "status": 400,
                "message": f"No pipeline was ready within max_time_mins "
                           f"({job['budgetSeconds'] / 60:g} min) plus the margin; feature "
                           "extraction alone took longer. Raise max_time_mins, send fewer or "
                           "shorter series, or use default_fc_parameters: minimal."})

    def _end(self, job_id, process, state, error=None, result=None) -> None:
        self._running.pop(job_id, None)
        try:
            if self.jobs.finish(job_id, state, result=result, error=error):
                log.info("job %s: %s", job_id, state)
        except JobNotFound:
            log.warning("job %s: its record is gone from the store", job_id)

    @staticmethod
    def _kill(process: subprocess.Popen) -> None:
        """The whole process group: the worker and the Dask cluster it started."""
        for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            try:
                process.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue
