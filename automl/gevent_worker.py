"""The gunicorn worker class: gevent's, with gunicorn's own error pages as JSON.

A gevent worker serves each request in a greenlet: a synchronous training waiting for its
job, or a client sending its upload slowly, costs a greenlet rather than one of a few
threads, so no number of them can starve predictions and listings (CPU-bound work runs in
native threads, ``serving.run_blocking``). Requests gunicorn cannot parse (a request line or
headers too long or malformed: 400, 414, 431) it answers itself, before the app sees them;
here those answers take the service's one JSON error shape instead of an HTML page.
"""
from __future__ import annotations

import json

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

_HINTS = {
    414: "The request line (path and query) is too long; send data in the body instead.",
    431: "The request's headers are too many or too large; send fewer or shorter ones.",
}


def json_error_page(sock, status_int: int, reason: str, mesg: str) -> None:
    message = _HINTS.get(status_int) or f"The request could not be parsed ({mesg[:200]})."
    body = json.dumps({"error": reason.lower().replace(" ", "_"), "message": message}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class JsonErrorsWorker(GeventWorker):
    def init_process(self):
        util.write_error = json_error_page  # gunicorn uses it for those answers only
        super().init_process()
