"""A job's time: its budget, the reserve kept inside it, and the hard stop past it.

Every job has a budget, ``max_time_mins``: a search's own, or for a fixed model the
instance's default (``AUTOML_FIXED_MODEL_BUDGET_MINS``). Training aims to finish by the
deadline (start + budget). A search is given the budget minus a *reserve* for TPOT's own
overrun (it lets running evaluations finish, refits its best, stops its cluster: 6-14 s
measured) and re-scoring its winner. A job still running at the deadline plus a *margin* is
stopped by its training process (``worker``), keeping the provisional model if there is one.
The request side, the queue, the training process and the training itself all ask this
module, so they agree to the second.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

RESERVE_FRACTION, RESERVE_MIN_S = 0.1, 15.0
MARGIN_FRACTION, MARGIN_MIN_S = 0.1, 15.0
# Below this much time left for it, the search is skipped: the baseline stays.
MIN_SEARCH_S = 10.0
# The shortest time one pipeline's evaluation is allowed, however short the search.
EVAL_MIN_S = 8.0


@dataclass(frozen=True)
class Budget:
    seconds: float

    @classmethod
    def of(cls, params) -> Budget:
        """The budget of a job with these (checked) training parameters."""
        return cls(params.model.max_time_mins * 60.0)

    @property
    def reserve_s(self) -> float:
        return max(RESERVE_MIN_S, RESERVE_FRACTION * self.seconds)

    @property
    def margin_s(self) -> float:
        return max(MARGIN_MIN_S, MARGIN_FRACTION * self.seconds)

    def deadline(self, started: float) -> float:
        """When training should be done (``started`` and the result are ``time.time()``)."""
        return started + self.seconds

    def hard_deadline(self, deadline: float) -> float:
        """When a job still running past ``deadline`` is stopped."""
        return deadline + self.margin_s

    def search_seconds(self, deadline: float, now: float | None = None) -> float:
        """What a search started ``now`` could be given."""
        return deadline - (time.time() if now is None else now) - self.reserve_s

    def in_reserve(self, deadline: float, now: float | None = None) -> bool:
        """Whether only the reserve is left: no new candidate should start."""
        return self.search_seconds(deadline, now) <= 0

    @staticmethod
    def eval_seconds(search_s: float, max_eval_mins: float) -> float:
        """TPOT lets running evaluations finish after its time is up: keep each one short
        relative to the search, so that its overrun stays within the reserve."""
        return min(max_eval_mins * 60.0, max(EVAL_MIN_S, search_s / 10.0))
