"""Starts queued trainings, each in a process of its own, and reaps the ones it started.

Every app process has one runner thread. Runners share the queue through the backend, so the
limit on trainings running at once holds across workers and instances. A training process
owns its job while it runs (``worker``: heartbeat, cancellation, deadline); a runner starts
it, ends its job if it dies without ending it, puts back in the queue the jobs whose process
went silent anywhere, and forgets old finished jobs. No training runs in a request thread.
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

from .errors import ApiError, OutOfMemory, StoreFull, StoreUnavailable
from .jobs import JobState
from .state import SETTINGS_FOR_WORKERS, SETTINGS_VARIABLE

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 60.0


class JobRunner:
    def __init__(self, state, settings: dict, poll_s: float = 0.5):
        self.state = state
        self.jobs = state.jobs
        self.settings = {key: settings.get(key) for key in SETTINGS_FOR_WORKERS}
        self.retention_s = float(settings.get("JOB_RETENTION_DAYS", 7.0)) * 86_400
        self.max_records = int(settings.get("MAX_JOB_RECORDS", 1_000))
        self.poll_s = poll_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._running: dict[str, tuple[subprocess.Popen, int]] = {}  # job -> (process, attempt)
        self._pruned_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)

    def start(self) -> "JobRunner":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop starting trainings; this runner's running ones go back in the queue for
        another instance (their processes would be orphans of a stopped server)."""
        self._stop.set()
        self._thread.join(10)
        for job_id, (process, _) in list(self._running.items()):
            _kill(process)
            try:
                self.jobs.requeue(job_id, "the server running it shut down")
            except ApiError as err:
                log.warning("job %s: could not put it back in the queue (%s)", job_id, err.message)
        self._running.clear()

    # -- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        store_down = False
        while not self._stop.is_set():
            try:
                self._tick()
                if store_down:
                    log.warning("job runner: the store is reachable again")
                store_down = False
            except (StoreUnavailable, StoreFull) as err:  # say so once, keep trying
                if not store_down:
                    log.warning("job runner: %s", err.message)
                store_down = True
            except Exception:
                log.exception("job runner: this round failed; retrying")
            self._stop.wait(self.poll_s)

    def _tick(self) -> None:
        for job_id, (process, attempt) in list(self._running.items()):
            self._reap(job_id, process, attempt)
        self.jobs.requeue_abandoned()
        if time.time() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = time.time()
            self.jobs.prune(self.retention_s, self.max_records)
            self.state.audit.prune()
        while len(self._running) < self.jobs.max_running and not self._stop.is_set():
            job = self.jobs.claim(self.owner)
            if job is None:
                break
            self._running[job.job_id] = (self._spawn(job.job_id), job.attempt)
            log.info("job %s: started (attempt %d, pid %s)", job.job_id, job.attempt,
                     self._running[job.job_id][0].pid)

    def _spawn(self, job_id: str) -> subprocess.Popen:
        # The worker imports this package by name: make it findable from any working directory.
        package_root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, SETTINGS_VARIABLE: json.dumps(self.settings), "PYTHONPATH": path}
        return subprocess.Popen([sys.executable, "-m", "automl.worker", job_id], env=env,
                                start_new_session=True)

    def _reap(self, job_id: str, process: subprocess.Popen, attempt: int) -> None:
        """Beat for a training process that runs; end the job of one that died without
        ending it."""
        exit_code = process.poll()
        if exit_code is None:
            # Alive: its own heartbeat may not have started yet (it is still importing).
            self.jobs.beat(job_id)
            return
        del self._running[job_id]
        _kill(process)  # what it left behind in its group (a Dask cluster, if killed)
        try:
            job = self.jobs.get(job_id)
        except ApiError:  # the store lost it (e.g. Redis restarted empty): nothing to end
            log.warning("job %s: its record is gone from the store", job_id)
            return
        if job.state != JobState.RUNNING or job.attempt != attempt:
            return  # it ended itself (or was put back in the queue and started elsewhere)
        if exit_code == -signal.SIGKILL:
            error = OutOfMemory("The training process was killed (signal 9), most likely for "
                                "lack of memory. Pipelines already stored are untouched; send "
                                "fewer or shorter series, or a smaller feature set.")
        else:
            error = ApiError(f"The training process ended abnormally (exit status {exit_code}); "
                             "the operator's log has the details. Pipelines already stored "
                             "are untouched.")
        if self.jobs.fail(job_id, error):
            log.warning("job %s: its process died (exit status %s)", job_id, exit_code)


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
