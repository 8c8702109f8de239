"""A running job's checkpoint: what its training has done so far, kept in the store, so that
a start after a lost process (``jobs.JobStore.requeue_abandoned``) resumes there instead of
starting over.

Parts, each under its own key (``jobs.Keys.checkpoint``) and each written whole (the
training decides which; ``training._Run.save_checkpoint``):

    engine-<name>     an engine as fitted, without its feature matrix: the next start
                      recomputes the features with it, so they match the models fitted on them
    candidate-<name>  a cross-validated candidate: its fitted model, scores and out-of-fold
                      probabilities (written once: a candidate does not change)
    run               which of those there are, what was skipped or narrowed and why, the
                      time each stage took (rewritten after each candidate, last)
    search            TPOT's population file (its ``periodic_checkpoint_folder``) each time
                      TPOT rewrites it, with the features and search space it belongs to

A part is pickled and signed with the store's secret, as pipelines are: only this service's
training processes can write one that another start will load. A part that is missing,
unsigned or unreadable is ignored (logged): that work is done again.
"""
from __future__ import annotations

import hmac
import logging
import pickle

from .errors import StoreFull, StoreUnavailable
from .jobs import Keys

log = logging.getLogger(__name__)

_CONTEXT = b"automl-checkpoint-v1"
_SIGNATURE_CHARS = 64  # hex SHA-256


class JobCheckpoint:
    """The checkpoint of job ``job_id``, in ``backend``, signed by ``models`` (a
    ``ModelStore``: the holder of the secret)."""

    def __init__(self, backend, models, job_id: str):
        self.backend, self.models, self.job_id = backend, models, job_id
        self.saved: list[str] = []  # the parts this process has stored, first save first
        self.restored: list[str] = []  # the parts it took up from an earlier start

    def save(self, part: str, value) -> bool:
        """Whether ``value`` is now stored as ``part``. A store that is away or full costs
        only what a resumed job would have kept, so it is logged, not raised."""
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        signature = self.models.signature(_CONTEXT, self.job_id, part, payload=payload)
        try:
            self.backend.put(Keys.checkpoint(self.job_id, part), signature.encode() + payload)
        except (StoreUnavailable, StoreFull) as err:
            log.warning("job %s: its %s checkpoint could not be saved (%s)", self.job_id, part,
                        err.message)
            return False
        if part not in self.saved:
            self.saved.append(part)
        return True

    def load(self, part: str):
        """What the last ``save(part, ...)`` stored; None if nothing usable is stored."""
        stored = self.backend.get(Keys.checkpoint(self.job_id, part))
        if stored is None:
            return None
        signature, payload = stored[:_SIGNATURE_CHARS].decode("ascii", "replace"), \
            stored[_SIGNATURE_CHARS:]
        expected = self.models.signature(_CONTEXT, self.job_id, part, payload=payload)
        if not hmac.compare_digest(signature, expected):
            log.error("job %s: its %s checkpoint is not signed by this service; ignored",
                      self.job_id, part)
            return None
        try:
            value = pickle.loads(payload)  # signed by this service: not user bytes
        except Exception:  # written by another version of the code: redo that work
            log.exception("job %s: its %s checkpoint cannot be read; ignored", self.job_id, part)
            return None
        if part not in self.restored:
            self.restored.append(part)
        return value
