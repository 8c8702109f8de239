"""How requests are served, whatever the route: plumbing between the server and the routes.

The server is gunicorn with a gevent worker (``gevent_worker``): a waiting request costs a
greenlet, not one of a few threads.

* ``run_blocking``: CPU-bound work of a request (parsing an upload, predicting) runs in a
  native thread, so the event loop keeps answering other requests meanwhile;
  ``prepare_native_threads`` first does, in the main thread, what libraries would otherwise
  do under a lock in the first of those threads.
* ``UploadDeadline``: a request body must arrive within a total time and without long
  pauses, so slow clients cannot hold connections open for ever (408 otherwise).
* ``client_gone``: whether the client of a waiting request has hung up.
* ``FiniteJSONProvider``: JSON answers never contain NaN or Infinity (not JSON), as null.
"""
from __future__ import annotations

import contextlib
import json
import math
import select
import socket
import sys
import time

import numpy as np
from flask.json.provider import DefaultJSONProvider

from .errors import RequestTimeout


# -- the event loop and native threads ------------------------------------------------------


def _under_gevent() -> bool:
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return monkey.is_module_patched("socket")


def run_blocking(function, *args, **kwargs):
    """``function(*args, **kwargs)``, in a native thread when served by gevent (the caller's
    greenlet waits for it); a plain call otherwise. ``function`` must not touch the request
    context: hand it plain values."""
    if not _under_gevent():
        return function(*args, **kwargs)
    import gevent

    # Raised here, in the request's greenlet, not in the pool (which would log every 400).
    succeeded, value = gevent.get_hub().threadpool.apply(_outcome, (function, args, kwargs))
    if not succeeded:
        raise value
    return value


def prepare_native_threads() -> None:
    """Keep libraries' ``threading`` locks out of the ``run_blocking`` threads' way: under
    gevent such a lock is gevent's, which native threads cannot share (a waiter may never be
    woken). Two request threads meeting at pyarrow's hung for ever, on the first text column
    they parsed: it guards a one-off initialisation, done here in the calling (main) thread.
    numba's guards every first call of a compiled function (a first prediction compiles or
    loads its kernels), so under gevent it is swapped for a native lock."""
    import pyarrow

    pyarrow.array(["x"], from_pandas=True)  # pyarrow's pandas shim: imported under its lock
    if _under_gevent():
        from gevent import monkey
        from numba.core.compiler_lock import global_compiler_lock

        global_compiler_lock._lock = monkey.get_original("_thread", "RLock")()


def _outcome(function, args, kwargs):
    try:
        return True, function(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - handed back to the caller as it was
        return False, err


def client_gone(environ) -> bool:
    """Whether the client of this request closed its connection (only knowable under
    gunicorn, which hands the socket over; the body must have been read already)."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


# -- slow uploads --------------------------------------------------------------------------


class UploadDeadline:
    """WSGI middleware: the body must arrive within ``total_s``, with no pause between
    reads longer than ``idle_s``; otherwise the request fails with 408."""

    def __init__(self, app, total_s: float, idle_s: float):
        self.app = app
        self.total_s = total_s
        self.idle_s = idle_s

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(self.idle_s)  # one stalled read waits at most this long
        environ["wsgi.input"] = _TimedInput(environ["wsgi.input"], self.total_s, self.idle_s)
        try:
            return self.app(environ, start_response)
        finally:
            if sock is not None:
                try:
                    sock.settimeout(None)
                except OSError:
                    pass


class _TimedInput:
    def __init__(self, stream, total_s: float, idle_s: float):
        self._stream = stream
        self._deadline = time.monotonic() + total_s
        self._total_s = total_s
        self._idle_s = idle_s

    def _check(self):
        if time.monotonic() > self._deadline:
            raise self._too_long()

    def _too_long(self) -> RequestTimeout:
        return _slow(f"The request body took longer than {self._total_s:g} s to arrive "
                     "(AUTOML_UPLOAD_TIMEOUT_SECONDS). Send it faster, or smaller.")

    def _call(self, method, *args):
        self._check()
        try:
            # One read may wait for many packets (gunicorn reads until it has the size asked
            # for): under gevent the total limit interrupts it; the idle limit is the socket's.
            with _interrupt_after(self._deadline - time.monotonic()):
                data = getattr(self._stream, method)(*args)
        except (socket.timeout, TimeoutError):
            raise _slow(f"The request body stopped arriving for {self._idle_s:g} s "
                        "(AUTOML_UPLOAD_IDLE_SECONDS); the request was dropped.") from None
        except _TotalTimeout:
            raise self._too_long() from None
        return data

    def read(self, *args):
        return self._call("read", *args)

    def readline(self, *args):
        return self._call("readline", *args)

    def readlines(self, *args):
        return self._call("readlines", *args)

    def __iter__(self):
        return iter(self.readline, b"")


class _TotalTimeout(Exception):
    pass


def _interrupt_after(seconds: float):
    """A gevent Timeout raising ``_TotalTimeout`` after ``seconds`` (nothing without gevent)."""
    if not _under_gevent():
        return contextlib.nullcontext()
    import gevent

    return gevent.Timeout(max(0.001, seconds), _TotalTimeout)


def _slow(message: str) -> RequestTimeout:
    err = RequestTimeout(message)
    err.headers["Connection"] = "close"
    return err


# -- JSON ----------------------------------------------------------------------------------


def _finite(value):
    """``value`` with NaN and infinities as None and numpy scalars as Python ones."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


class FiniteJSONProvider(DefaultJSONProvider):
    sort_keys = False  # keep reports in the order they were built

    def dumps(self, obj, **kwargs):
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return json.dumps(_finite(obj), allow_nan=False, **kwargs)
