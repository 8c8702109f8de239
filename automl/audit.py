"""The audit trail: who trained, replaced, rolled back, deleted or cancelled what, and when.

Each event is one record in the shared backend under ``audit/<n>``, numbered by a counter
every instance shares, so ``GET /audit`` reads the same trail from any of them, newest first.
The trail is bounded: events beyond ``max_events`` or older than ``max_age_s`` are pruned.
Actors are key names (``anonymous`` without keys), never secrets.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

PREFIX = "audit"
ACTIONS = ("trained", "replaced", "rolled_back", "deleted", "deleted_version", "cancelled")


class AuditLog:
    def __init__(self, backend, max_events: int = 10_000, max_age_s: float = 90 * 86_400):
        self.backend = backend
        self.max_events = max_events
        self.max_age_s = max_age_s

    def record(self, actor: str | None, action: str, target: str, **details) -> None:
        """Add an event; ``target`` is e.g. ``pipeline 7`` or ``job 19ac3...``."""
        assert action in ACTIONS, action
        number = self.backend.increment(PREFIX)
        event = {"event": number, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "epoch": time.time(), "actor": actor, "action": action, "target": target,
                 **details}
        self.backend.put(_key(number), json.dumps(event, default=str).encode())

    def list(self, limit: int = 100, before: int | None = None) -> tuple[list[dict], int | None]:
        """Events newest first, at most ``limit`` numbered below ``before``; and the number to
        pass as ``before`` for the next page (None on the last)."""
        numbers = sorted((int(k.rsplit("/", 1)[1]) for k in self.backend.keys(PREFIX)
                          if k.rsplit("/", 1)[1].isdigit()), reverse=True)
        if before is not None:
            numbers = [n for n in numbers if n < before]
        events = []
        for number in numbers:
            raw = self.backend.get(_key(number))
            try:
                event = json.loads(raw) if raw else None
            except ValueError:
                event = {"event": number, "unreadable": True}
            if event is None:
                continue
            if len(events) == limit:
                return events, events[-1]["event"]
            events.append({k: v for k, v in event.items() if k != "epoch"})
        return events, None

    def prune(self) -> int:
        numbers = sorted((int(k.rsplit("/", 1)[1]) for k in self.backend.keys(PREFIX)
                          if k.rsplit("/", 1)[1].isdigit()), reverse=True)
        cutoff, pruned = time.time() - self.max_age_s, 0
        for rank, number in enumerate(numbers):
            old = rank >= self.max_events
            if not old:
                raw = self.backend.get(_key(number))
                try:
                    old = raw is not None and json.loads(raw).get("epoch", 0) < cutoff
                except ValueError:
                    old = True
            if old:
                self.backend.delete(_key(number))
                pruned += 1
        return pruned


def _key(number: int) -> str:
    return f"{PREFIX}/{number:012d}"
