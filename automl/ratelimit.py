"""Requests per minute per API key, counted where every process of the service can see them.

The counting is the ``limits`` library's fixed-window strategy (the default strategy of
Flask-Limiter, by the same author): a counter per key and limit, created with an expiry at the
key's first request and refused once it exceeds the limit, until it expires. Where the counters
live follows the store:

* Redis store (``REDIS_URL``): the same Redis, ``limits``' own storage, keys under
  ``automl:ratelimit:``. Every instance and worker increments the same counter, atomically (a Lua
  script), so the limit holds across instances.
* Embedded directory store: ``SQLiteStorage`` below, a SQLite file in the model directory. The
  gunicorn workers of one machine (the processes the directory store already serves) share it;
  SQLite's file locking makes each increment atomic across them. ``limits`` has no storage for
  this case (its ``memory://`` counts per process, so N workers would allow N times the limit).
* ``AUTOML_RATE_LIMIT_STORAGE`` overrides both with a ``limits`` storage URI (``redis://...``,
  ``memory://``; others need their client library installed) or ``sqlite:///absolute/path``.

A fixed window lets a client that spends its whole allowance at the end of one window spend it
again at the start of the next: at most twice the limit within a short stretch, never more.

If the counters cannot be reached (Redis down), requests are let through and the failure is
logged (at most once a minute per process): the limit protects the service, and refusing every
request because of it would be the outage it is meant to prevent.
"""
from __future__ import annotations

import logging
import math
import os
import random
import sqlite3
import threading
import time
from functools import lru_cache
from pathlib import Path

from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)

OFF = "off"  # AUTOML_RATE_LIMIT=off, or "rate_limit": "off" for one key: no limit
REDIS_KEY_PREFIX = "automl:ratelimit"
STORAGE_ERROR_LOG_INTERVAL_S = 60
SETUP_ATTEMPTS = 200  # ~15 s of retries while other processes create the same file


def parse_rate_limit(text: str) -> tuple[RateLimitItem, ...]:
    """``"600 per minute"``, ``"10/second; 600/hour"``..., or ``"off"`` (no limit: empty).

    Raises ``ValueError`` naming the expected form.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a rate limit is a string such as '600 per minute' (or 'off')")
    return _parse_rate_limit(text)


@lru_cache(maxsize=256)
def _parse_rate_limit(text: str) -> tuple[RateLimitItem, ...]:
    if text.strip().lower() == OFF:
        return ()
    try:
        items = tuple(parse_many(text))
    except ValueError:
        raise ValueError(f"{text!r} is not a rate limit such as '600 per minute', "
                         "'10/second; 600/hour' or 'off'") from None
    if any(item.amount < 1 for item in items):
        raise ValueError(f"{text!r} allows no request at all; use at least 1 per period")
    return items


def default_storage_uri(settings) -> str:
    """Where the counters live unless ``RATE_LIMIT_STORAGE`` says: the Redis store's Redis, or a
    SQLite file beside the embedded store's models."""
    if settings.get("RATE_LIMIT_STORAGE"):
        return settings["RATE_LIMIT_STORAGE"]
    if settings.get("REDIS_URL"):
        return settings["REDIS_URL"]
    model_dir = os.path.abspath(settings["MODEL_DIR"])
    return f"sqlite://{os.path.join(model_dir, 'ratelimit', 'counters.sqlite3')}"


def describe_storage(uri: str) -> str:
    """The storage for a log line: its kind and place, never a password."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme == "sqlite":
        return f"SQLite file {uri.removeprefix('sqlite://')} (shared by this machine's workers)"
    if parts.scheme == "memory":
        return "this process's memory (each worker process counts alone)"
    return f"{parts.scheme} at {parts.hostname}:{parts.port or 'default port'}"


class RateLimiter:
    """``hit(identity, limit)``: count one request; the seconds to wait when over the limit."""

    def __init__(self, storage_uri: str):
        options = {}
        if storage_uri.split(":", 1)[0] in ("redis", "rediss", "redis+unix"):
            # Short timeouts: a Redis that stops answering must not hold every request up.
            options = {"key_prefix": REDIS_KEY_PREFIX, "socket_timeout": 2,
                       "socket_connect_timeout": 2, "health_check_interval": 10}
        self.storage: Storage = storage_from_string(storage_uri, wrap_exceptions=True, **options)
        self.strategy = FixedWindowRateLimiter(self.storage)
        self.description = describe_storage(storage_uri)
        self._last_error_logged = -math.inf

    def hit(self, identity: str, limit: str) -> tuple[RateLimitItem, int] | None:
        """Count a request of ``identity`` against ``limit`` (a string ``parse_rate_limit``
        reads). None when it is allowed; otherwise the limit it broke and the whole seconds
        until its window resets (at least 1), for ``Retry-After``."""
        try:
            for item in parse_rate_limit(limit):
                if not self.strategy.hit(item, identity):
                    reset_at = self.strategy.get_window_stats(item, identity).reset_time
                    return item, max(1, math.ceil(reset_at - time.time()))
        except StorageError as err:
            now = time.monotonic()
            if now - self._last_error_logged >= STORAGE_ERROR_LOG_INTERVAL_S:
                self._last_error_logged = now
                log.warning("rate limits not enforced: their storage (%s) failed: %s",
                            self.description, type(err.storage_error).__name__)
        return None


class SQLiteStorage(Storage):
    """Fixed-window counters in one SQLite file, shared by every process on the machine.

    ``sqlite:///absolute/path/counters.sqlite3``. Each increment is one ``INSERT ... ON CONFLICT
    DO UPDATE ... RETURNING`` statement: atomic across processes (SQLite locks the file), in
    WAL mode without a sync per write (losing counters in a power cut only resets them). The
    directory must be on a local disk; SQLite's locks are unreliable over network filesystems.
    """

    STORAGE_SCHEME = ["sqlite"]
    CLEANUP_EVERY = 1000  # increments between deletions of expired counters (per process)

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = Path(uri.removeprefix("sqlite://"))
        if not self.path.is_absolute():
            raise ValueError(f"the SQLite rate-limit storage needs an absolute path "
                             f"(sqlite:///dir/file), not {uri!r}")
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._increments = 0
        self._db()  # create it now, so an unwritable directory shows at start

    @property
    def base_exceptions(self):
        return sqlite3.Error

    def _db(self) -> sqlite3.Connection:
        # One connection per process (a connection must not cross a fork), used under a lock
        # by the process's threads.
        if self._connection is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                         check_same_thread=False)
            connection.execute("PRAGMA busy_timeout = 10000")
            self._set_up(connection)
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    @staticmethod
    def _set_up(connection: sqlite3.Connection) -> None:
        # Switching a new file to WAL answers "database is locked" at once, without waiting
        # on busy_timeout, when another process does the same: gunicorn's workers all start
        # together (one exited on it, and took the server down). So retry for a while.
        for attempt in range(SETUP_ATTEMPTS):
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = NORMAL")
                connection.execute("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, "
                                   "value INTEGER NOT NULL, expires_at REAL NOT NULL)")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt == SETUP_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 + 0.05 * random.random())

    def _query(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db().execute(sql, parameters).fetchall()  # to the end: commits

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        (value,), = self._query(
            "INSERT INTO counters (key, value, expires_at) VALUES (?1, ?2, ?3) "
            "ON CONFLICT (key) DO UPDATE SET "
            "value = CASE WHEN expires_at <= ?4 THEN ?2 ELSE value + ?2 END, "
            "expires_at = CASE WHEN expires_at <= ?4 THEN ?3 ELSE expires_at END "
            "RETURNING value", (key, amount, now + expiry, now))
        self._increments += 1
        if self._increments % self.CLEANUP_EVERY == 0:
            self._query("DELETE FROM counters WHERE expires_at <= ?", (now,))
        return int(value)

    def get(self, key: str) -> int:
        rows = self._query("SELECT value FROM counters WHERE key = ? AND expires_at > ?",
                           (key, time.time()))
        return int(rows[0][0]) if rows else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        rows = self._query("SELECT expires_at FROM counters WHERE key = ? AND expires_at > ?",
                           (key, now))
        return float(rows[0][0]) if rows else now

    def check(self) -> bool:
        try:
            self._query("SELECT 1")
            return True
        except sqlite3.Error:
            return False

    def reset(self) -> int | None:
        with self._lock:
            return self._db().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self._query("DELETE FROM counters WHERE key = ?", (key,))
