"""gunicorn settings; the Procfile adds the bind address from $PORT."""
import os

# gevent: a request waiting (a synchronous training, a slow upload) costs a greenlet, not one
# of a few threads, so waiting requests cannot starve predictions and listings; CPU-bound work
# runs in native threads (automl/serving.py). The class also answers gunicorn's own errors
# (malformed or oversized request lines and headers) in the service's JSON error shape.
worker_class = "automl.gevent_worker.JsonErrorsWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Connections one worker holds at once (idle keep-alives and slow uploads included).
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "500"))
# A worker whose event loop is blocked this long is restarted; requests never block it that
# long (their CPU work runs in threads), so this only catches a worker that has hung outright.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# gunicorn's own limits on what it reads before the app: a request line of at most 4 KB
# (414 beyond), at most 100 header fields of at most 8 KB each (431 beyond).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
# gunicorn 27 opens a control socket at one fixed path per user; several instances on one
# machine (tests, a laptop running two ports) would fight over it, and nothing here uses it.
control_socket_disable = True
