"""Where shared state lives: a local directory (the embedded default) or Redis.

Both offer the same few operations on byte values under slash-separated keys, enough for the
model store and the job queue to be written once:

    get(key)              bytes or None
    exists(key)           whether a value is stored under key
    put(key, value)       atomic replace: readers see the old value or the new, never a mix
    put_new(key, value)   create only; False if the key exists (ids are never handed out twice)
    put_stream(key, file) atomic replace from a readable file, copied a chunk at a time
    open_stream(key)      a readable binary file of the value (the caller closes it), or None
    delete(*keys)
    keys(prefix)          the keys directly under a prefix
    increment(counter)    the next whole number of a counter shared by every process
    lock(name)            a lock held across processes (and, with Redis, machines)

An unreachable Redis raises ``StoreUnavailable`` (503) from any of them; a store that is full
raises ``StoreFull`` (507) and one that cannot be written ``StoreReadOnly`` (503) from the
writes. A failed write leaves nothing behind: the value before it stays whole.
"""
from __future__ import annotations

import errno
import fcntl
import io
import os
import secrets
import shutil
import tempfile
import threading
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

from .errors import StoreFull, StoreReadOnly, StoreUnavailable

_FULL = (errno.ENOSPC, errno.EDQUOT)
# What a streamed value is copied by: a large upload is never held whole, and Redis (whose
# strings stop at 512 MB) keeps it as a list of parts of this size.
STREAM_CHUNK_BYTES = 1024 * 1024
# A copy into Redis that dies half-way leaves its staging list behind for this long.
STAGING_TTL_S = 3600
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def _directory_errors(method):
    """A full or unwritable disk as the service's errors, saying what the operator can do."""
    @wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as err:
            if err.errno in _FULL:
                raise StoreFull(f"The model store ({self.root}) is full; nothing was changed. "
                                "Free disk space or delete old pipelines, then retry.") from err
            if err.errno in _READ_ONLY:
                raise StoreReadOnly(f"The model store ({self.root}) cannot be written "
                                    f"({os.strerror(err.errno)}); nothing was changed. The "
                                    "operator must make it writable; stored pipelines are "
                                    "still served.") from err
            raise
    return wrapper


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
            return self._path(key, create=False).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def exists(self, key: str) -> bool:
        return self._path(key, create=False).is_file()

    @_directory_errors
    def put(self, key: str, value: bytes) -> None:
        tmp = self._temporary(key, value)
        try:
            os.replace(tmp, self._path(key))
        except BaseException:
            _unlink(tmp)
            raise

    put_stream = put  # the temporary file is written from the source a chunk at a time

    def open_stream(self, key: str):
        try:
            return self._path(key, create=False).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    @_directory_errors
    def put_new(self, key: str, value: bytes) -> bool:
        tmp = self._temporary(key, value)
        try:
            os.link(tmp, self._path(key))  # fails if the key exists: no overwrite
            return True
        except FileExistsError:
            return False
        finally:
            _unlink(tmp)

    @_directory_errors
    def delete(self, *keys: str) -> None:
        for key in keys:
            self._path(key, create=False).unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix, create=False)
        if not folder.is_dir():
            return []
        return [f"{prefix}/{p.name}" for p in folder.iterdir()
                if p.is_file() and not p.name.startswith(".")]

    @_directory_errors
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
        with thread_lock, self._lock_file(name) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ping(self) -> None:
        self.root.stat()

    @_directory_errors
    def _lock_file(self, name: str):
        return open(self._path(f"locks/{name}"), "a")

    def _path(self, key: str, create: bool = True) -> Path:
        path = self.root / key
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _temporary(self, key: str, value) -> str:
        """A new temporary file beside the key's, holding ``value`` (bytes, or a readable
        file copied from where it stands)."""
        fd, tmp = tempfile.mkstemp(dir=self._path(key).parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                if hasattr(value, "read"):
                    shutil.copyfileobj(value, handle, STREAM_CHUNK_BYTES)
                else:
                    handle.write(value)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:  # e.g. the disk filled up: leave no partial file behind
            _unlink(tmp)
            raise
        return tmp


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


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
        except redis.ReadOnlyError as err:
            raise StoreReadOnly(f"The Redis store at {self.describe()} is read-only (a "
                                "replica?); nothing was changed. Point REDIS_URL at the "
                                "primary.") from err
        except redis.ResponseError as err:
            if str(err).startswith("OOM"):
                raise StoreFull(f"The Redis store at {self.describe()} is full (maxmemory); "
                                "nothing was changed. Delete old pipelines or give Redis more "
                                "memory, then retry.") from err
            raise
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
    def exists(self, key: str) -> bool:
        return bool(self.client.exists(self._key(key)))

    @_unavailable_on_connection_errors
    def put(self, key: str, value: bytes) -> None:
        self.client.set(self._key(key), value)

    @_unavailable_on_connection_errors
    def put_stream(self, key: str, source) -> None:
        # The parts go to a staging list renamed into place at the end, so readers see the
        # old value or the whole new one; a writer that dies leaves a list that expires.
        staging = self._key(f"staging/{secrets.token_hex(8)}")
        try:
            part = source.read(STREAM_CHUNK_BYTES)  # an empty value is one empty part
            while True:
                with self.client.pipeline() as pipe:
                    pipe.rpush(staging, part).expire(staging, STAGING_TTL_S).execute()
                part = source.read(STREAM_CHUNK_BYTES)
                if not part:
                    break
            with self.client.pipeline() as pipe:
                pipe.rename(staging, self._key(key)).persist(self._key(key)).execute()
        except BaseException:
            self.client.delete(staging)
            raise

    @_unavailable_on_connection_errors
    def open_stream(self, key: str):
        """The value copied to a local temporary file a part at a time (memory only while
        it is small)."""
        name = self._key(key)
        kind = self.client.type(name)
        if kind == b"none":
            return None
        if kind == b"string":  # written by put(): one value
            return io.BytesIO(self.client.get(name) or b"")
        copy = tempfile.SpooledTemporaryFile(max_size=STREAM_CHUNK_BYTES)
        try:
            for index in range(self.client.llen(name)):
                copy.write(self.client.lindex(name, index) or b"")
            copy.seek(0)
        except BaseException:
            copy.close()
            raise
        return copy

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

