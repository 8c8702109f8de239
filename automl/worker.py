"""One training job in a process of its own: ``python -m automl.worker <job_id>``.

The runner starts it with the service's settings in ``AUTOML_WORKER_SETTINGS`` and in a new
process group. From then on the process owns its job: it heartbeats, stops itself when the
job is cancelled or passes its hard deadline (keeping the provisional model, if any), and
ends the job itself. So a job outlives the web worker that started it (a killed gunicorn
worker loses no training), and stopping it stops all of it, TPOT's Dask workers included.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time

from .checkpoints import JobCheckpoint
from .errors import (ApiError, BudgetExceeded, JobCancelled, OutOfMemory, StoreFull,
                     StoreUnavailable)
from .jobs import Job, JobState
from .state import SETTINGS_VARIABLE, open_state

log = logging.getLogger("automl.worker")

WATCH_S = 1.0  # how often the job's record is checked and its heartbeat renewed


class TrainingProcess:
    """The job's life in this process: train, publish, end; a watchdog thread meanwhile."""

    def __init__(self, state, job: Job, settings: dict):
        self.state = state
        self.job = job
        self.settings = settings
        self.pipeline_id = job.pipeline_id
        self.version = job.version     # set by the first save (or by an earlier attempt)
        self.provisional = job.version is not None
        self.checkpoint = JobCheckpoint(state.backend, state.models, job.job_id)
        self._ending = threading.Lock()  # one of: a save, the end of the job
        self._ended = False

    # -- the main thread -------------------------------------------------------------------

    def run(self) -> None:
        watchdog = threading.Thread(target=self._watch, name="job-watchdog", daemon=True)
        watchdog.start()  # heartbeats from now on, before the slow imports below
        try:
            from .params import Limits
            from .training import train
            from .uploads import parse_training_uploads

            limits = Limits.from_settings(self.settings)
            with self.state.jobs.open_uploads(self.job.job_id) as uploads:
                params, raw, labels = parse_training_uploads(uploads, limits)
            classifier, report = train(raw, labels, params, deadline=self.job.deadline,
                                       progress=self.progress,
                                       publish_provisional=self.publish_provisional,
                                       dask_address=self.settings.get("DASK_SCHEDULER_ADDRESS"),
                                       job_memory_mb=limits.job_memory_mb,
                                       checkpoint=self.checkpoint)
            self._succeed(classifier, report)
        except ApiError as err:
            self._end(err)
        except MemoryError:
            self._end(OutOfMemory("Training ran out of memory. Send fewer or shorter series, "
                                  "or choose cheaper settings (default_fc_parameters: minimal, "
                                  "engine: minirocket)."))
        except Exception:
            log.exception("job %s failed", self.job.job_id)
            self._end(ApiError("Training failed unexpectedly; the operator's log has the "
                               "details. Pipelines already stored are untouched."))

    def progress(self, **fields) -> None:
        deadline = self.job.deadline
        self.state.jobs.report_progress(self.job.job_id, {
            **fields, "pipelineId": self.pipeline_id, "version": self.version,
            "provisionalServed": self.provisional, "attempt": self.job.attempt,
            # A start after a lost one takes up its checkpoint, if it left one, within what it
            # left of the budget; a start whose checkpoint is empty starts over.
            "resumed": bool(self.checkpoint.restored), "checkpointed": list(self.checkpoint.saved),
            "elapsedSeconds": round(self.job.elapsed_seconds(time.time()), 1),
            "remainingSeconds": round(max(0.0, deadline - time.time()), 1) if deadline else None})

    def publish_provisional(self, classifier, report) -> None:
        self._save(classifier, report, provisional=True)
        self.progress(stage="baseline")  # again, now saying the baseline is being served

    def _succeed(self, classifier, report) -> None:
        with self._ending:
            if self._ended or not self._still_ours():
                return  # cancelled or stopped meanwhile: store nothing more
            self._save(classifier, report, provisional=False, locked=True)
            self.state.jobs.succeed(self.job.job_id, self.state.models.metadata(
                self.pipeline_id, self.version))
            self._ended = True
            self._audit()

    def _save(self, classifier, report, provisional: bool, locked: bool = False) -> None:
        if not locked:
            with self._ending:
                if not self._ended:
                    self._save(classifier, report, provisional, locked=True)
            return
        first = self.version is None
        self.pipeline_id, self.version = self.state.models.save(
            classifier, {**report, "jobId": self.job.job_id}, self.pipeline_id,
            version=self.version, provisional=provisional, job_id=self.job.job_id,
            created_by=self.job.submitted_by)
        self.provisional = provisional
        if first:  # so that whoever ends this job can remove a provisional version it left
            self.state.jobs.record_version(self.job.job_id, self.pipeline_id, self.version)

    def _end(self, error: ApiError) -> None:
        """End the job with ``error`` once, removing the provisional version it served."""
        with self._ending:
            if self._ended:
                return
            self._ended = True
            if self._still_ours():
                self.state.jobs.fail(self.job.job_id, error)

    # -- the watchdog ----------------------------------------------------------------------

    def _watch(self) -> None:
        last_contact = time.time()
        hard_deadline = self.job.hard_deadline()
        while True:
            time.sleep(WATCH_S)
            try:
                self.state.jobs.beat(self.job.job_id)
                job = self.state.jobs.get(self.job.job_id)
                last_contact = time.time()
            except (StoreUnavailable, StoreFull):  # Redis away, or a full disk: hold on
                if time.time() - last_contact > self.state.jobs.stale_after_s:
                    log.error("job %s: the store has been unreachable for %.0f s; another "
                              "instance will run it again", self.job.job_id,
                              time.time() - last_contact)
                    self._stop_everything()
                continue
            except ApiError:  # its record is gone or damaged: nothing left to train for
                self._stop_everything()
                continue
            if job.state != JobState.RUNNING or job.attempt != self.job.attempt:
                self._stop_everything()  # ended or re-queued elsewhere
            elif job.cancel_requested:
                self._end(JobCancelled("Cancelled while running."))
                self._stop_everything()
            elif time.time() > hard_deadline:
                self._stop_at_budget()
                self._stop_everything()

    def _stop_at_budget(self) -> None:
        """Past the budget and its margin: keep the provisional model, if one is served."""
        with self._ending:
            if self._ended:
                return
            self._ended = True
            if self.provisional:
                self.state.models.finalize(self.pipeline_id, self.version, stoppedAtBudget=True)
                self.state.jobs.succeed(self.job.job_id, self.state.models.metadata(
                    self.pipeline_id, self.version))
                self._audit()
                return
            self.state.jobs.fail(self.job.job_id, BudgetExceeded(
                f"No pipeline was ready within max_time_mins ({self.job.budget_seconds / 60:g} "
                "min) plus the margin. Raise max_time_mins, send fewer or shorter series, or "
                "use default_fc_parameters: minimal or engine: minirocket."))

    def _audit(self) -> None:
        self.state.audit.record(self.job.submitted_by,
                                "trained" if self.version == 1 else "replaced",
                                f"pipeline {self.pipeline_id}", version=self.version,
                                jobId=self.job.job_id)

    def _still_ours(self) -> bool:
        job = self.state.jobs.get(self.job.job_id)
        return job.state == JobState.RUNNING and job.attempt == self.job.attempt

    @staticmethod
    def _stop_everything() -> None:
        """This process and everything it started (a Dask cluster): its whole group."""
        logging.shutdown()
        os.killpg(os.getpgrp(), signal.SIGKILL)


def main(job_id: str) -> int:
    settings = json.loads(os.environ.pop(SETTINGS_VARIABLE))
    state = open_state(settings)
    TrainingProcess(state, state.jobs.get(job_id), settings).run()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)  # a cluster per job: too chatty
    sys.exit(main(sys.argv[1]))
