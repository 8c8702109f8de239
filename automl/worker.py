"""One training job in a process of its own: ``python -m automl.worker <job_id>``.

The runner starts it with the service's settings in ``AUTOML_WORKER_SETTINGS`` and in a new
process group, so that cancelling or timing out the job stops the whole of it (TPOT's Dask
workers included) without touching the web server.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import time

from .errors import ApiError
from .jobs import FAILED, RUNNING, SUCCEEDED
from .runner import SETTINGS_VARIABLE
from .state import open_state
from .training import train
from .uploads import parse_training_uploads

log = logging.getLogger("automl.worker")


def main(job_id: str) -> int:
    _die_with_parent()
    settings = json.loads(os.environ.pop(SETTINGS_VARIABLE))
    state = open_state(settings)
    job = state.jobs.get(job_id)
    published = {"pipelineId": job["pipelineId"]}  # a new id is fixed by the first save

    def progress(**fields):
        state.jobs.report_progress(job_id, {
            **fields, "pipelineId": published["pipelineId"],
            "provisionalServed": published.get("provisional", False),
            "elapsedSeconds": round(time.time() - job["startedEpoch"], 1),
            "remainingSeconds": (round(max(0.0, job["deadline"] - time.time()), 1)
                                 if job.get("deadline") else None)})

    def publish_provisional(classifier, report):
        saved = state.models.save(classifier, {**report, "jobId": job_id},
                                  published["pipelineId"],
                                  replace_if=lambda current: current.get("provisional", False))
        if saved is not None:
            published.update(pipelineId=saved, provisional=True)
        progress(stage="baseline")  # again, now saying whether the baseline is being served

    try:
        params, raw, labels = parse_training_uploads(state.jobs.uploads(job_id))
        classifier, report = train(raw, labels, params, deadline=job.get("deadline"),
                                   progress=progress, publish_provisional=publish_provisional,
                                   dask_address=settings.get("DASK_SCHEDULER_ADDRESS"))
        if state.jobs.get(job_id)["state"] != RUNNING:
            return 0  # cancelled or failed elsewhere meanwhile: store nothing more
        pipeline_id = state.models.save(classifier, {**report, "jobId": job_id},
                                        published["pipelineId"])
        state.jobs.finish(job_id, SUCCEEDED, result=state.models.metadata(pipeline_id))
    except ApiError as err:
        state.jobs.finish(job_id, FAILED, error=err.as_dict())
    except Exception:
        log.exception("job %s failed", job_id)
        state.jobs.finish(job_id, FAILED, error={
            "error": "internal_error", "status": 500,
            "message": "Training failed unexpectedly; the operator's log has the details. "
                       "Pipelines already stored are untouched."})
    return 0


def _die_with_parent() -> None:
    """Linux: be killed when the runner that started us dies, instead of running on orphaned."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)  # a cluster per job: too chatty
    sys.exit(main(sys.argv[1]))
