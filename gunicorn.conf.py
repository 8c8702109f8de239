"""gunicorn settings; the Procfile adds the bind address from $PORT."""
import os

# Threads let one worker answer predictions and /models while another request trains.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# gthread workers heartbeat from their main loop, so a long training request is not killed by
# this timeout; it only catches a worker that has hung outright.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
accesslog = "-"
# gunicorn 27 opens a control socket at one fixed path per user; several instances on one
# machine (tests, a laptop running two ports) would fight over it, and nothing here uses it.
control_socket_disable = True
