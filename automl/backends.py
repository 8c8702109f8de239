"""Where shared state lives: a local directory (the embedded default) or Redis.

Both offer the same few operations on byte values under slash-separated keys, enough for the
model store and the job queue to be written once:

    get(key)              bytes or None
    put(key, value)       atomic replace: readers see the old value or the new, never a mix
    put_new(key, value)   create only; False if the key exists (ids are never handed out twice)
    delete(*keys)
    keys(prefix)          the keys directly under a prefix
    increment(counter)    the next whole number of a counter shared by every process
    lock(name)            a lock held across processes (and, with Redis, machines)

An unreachable Redis raises ``StoreUnavailable`` (503) from any of them.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

from .errors import StoreUnavailable


class DirectoryBackend:
    """Keys are file paths under ``root``; writes go to a temporary file renamed into place."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread_locks: dict[str, threading.Lock] = {}

    def describe(self) -> str:
        return f"directory {self.root}"

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, value: bytes) -> None:
        os.replace(self._temporary(key, value), self._path(key))

    def put_new(self, key: str, value: bytes) -> bool:
        tmp = self._temporary(key, value)
        try:
            os.link(tmp, self._path(key))  # fails if the key exists: no overwrite
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def delete(self, *keys: str) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return [f"{prefix}/{p.name}" for p in folder.iterdir()
                if p.is_file() and not p.name.startswith(".")]

    def increment(self, counter: str) -> int:
        with self.lock(f"counter-{counter}"):
            value = int(self.get(f"counters/{counter}") or 0) + 1
            self.put(f"counters/{counter}", str(value).encode())
            return value

    @contextmanager
    def lock(self, name: str):
        # flock serialises processes; the thread lock serialises threads of this process,
        # which share one open-file description and would not exclude each other.
        thread_lock = self._thread_locks.setdefault(name, threading.Lock())
        with thread_lock, open(self._path(f"locks/{name}"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ping(self) -> None:
        self.root.stat()

    def _path(self, key: str) -> Path:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _temporary(self, key: str, value: bytes) -> str:
        fd, tmp = tempfile.mkstemp(dir=self._path(key).parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        return tmp


def _unavailable_on_connection_errors(method):
    @wraps(method)
    def wrapper(self, *args, **kwargs):
        import redis

        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise StoreUnavailable(
                f"The Redis store at {self.describe()} is unreachable ({err}). Nothing was "
                "changed; retry when it is back (the service reconnects on its own).") from err
    return wrapper


class RedisBackend:
    """Keys live under ``prefix:`` in one Redis database; values are plain strings of bytes."""

    LOCK_TIMEOUT_S = 30  # a holder that dies frees the lock after this long

    def __init__(self, url: str, prefix: str = "automl"):
        import redis

        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2,
                                           health_check_interval=10)

    def describe(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379}"  # never the password

    @_unavailable_on_connection_errors
    def get(self, key: str) -> bytes | None:
        return self.client.get(self._key(key))

    @_unavailable_on_connection_errors
    def put(self, key: str, value: bytes) -> None:
        self.client.set(self._key(key), value)

    @_unavailable_on_connection_errors
    def put_new(self, key: str, value: bytes) -> bool:
        return bool(self.client.set(self._key(key), value, nx=True))

    @_unavailable_on_connection_errors
    def delete(self, *keys: str) -> None:
        if keys:
            self.client.delete(*map(self._key, keys))

    @_unavailable_on_connection_errors
    def keys(self, prefix: str) -> list[str]:
        start = len(self.prefix) + 1
        found = []
        for raw in self.client.scan_iter(match=f"{self._key(prefix)}/*", count=500):
            key = raw.decode()[start:]
            if "/" not in key[len(prefix) + 1:]:  # directly under the prefix, as for a directory
                found.append(key)
        return found

    @_unavailable_on_connection_errors
    def increment(self, counter: str) -> int:
        return int(self.client.incr(self._key(f"counters/{counter}")))

    @contextmanager
    def lock(self, name: str):
        lock = self._lock(name)
        try:
            acquired = lock.acquire(blocking_timeout=self.LOCK_TIMEOUT_S)
        except Exception as err:
            self._raise_if_connection_error(err)
            raise
        if not acquired:
            raise StoreUnavailable(f"Timed out waiting for the '{name}' lock in Redis; retry.")
        try:
            yield
        finally:
            try:
                lock.release()
            except Exception:  # expired meanwhile: someone else may hold it now, leave it
                pass

    @_unavailable_on_connection_errors
    def ping(self) -> None:
        self.client.ping()

    def _lock(self, name: str):
        return self.client.lock(self._key(f"locks/{name}"), timeout=self.LOCK_TIMEOUT_S,
                                sleep=0.05)

    def _raise_if_connection_error(self, err: Exception):
        import redis

        if isinstance(err, (redis.ConnectionError, redis.TimeoutError)):
            raise StoreUnavailable(f"The Redis store at {self.describe()} is unreachable ({err}). "
                                   "Retry when it is back.") from err

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

