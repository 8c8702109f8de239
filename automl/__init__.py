"""AutoML for time-series classification: tsfresh features, a TPOT search, served over REST."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def create_app(overrides: dict | None = None) -> Flask:
    """The application factory: environment settings, then ``overrides`` (tests use these)."""
    # Imported on first use, not with the package: `automl.client` and `automl.cli` must load
    # without Flask, tsfresh or aeon.
    from flask import Flask

    from . import api, auth, config, dashboard
    from .errors import register_error_handlers
    from .params import Limits
    from .runner import JobRunner
    from .serving import FiniteJSONProvider, UploadDeadline, prepare_native_threads
    from .state import open_state

    logging.basicConfig(level=logging.INFO)
    prepare_native_threads()
    app = Flask(__name__)
    app.json = FiniteJSONProvider(app)
    app.config.from_mapping(config.from_environment())
    app.config.from_mapping(overrides or {})
    auth.init_app(app)  # API keys and rate limits; refuses malformed ones before anything runs
    state = open_state(app.config)
    app.extensions["state"] = state
    app.extensions["limits"] = Limits.from_settings(app.config)
    if app.config["RUN_JOBS"]:
        app.extensions["job_runner"] = JobRunner(state, app.config).start()
    register_error_handlers(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(dashboard.bp)  # the dashboard (/, /ui/...) and the API docs (/docs)
    app.wsgi_app = UploadDeadline(app.wsgi_app, app.config["UPLOAD_TIMEOUT_SECONDS"],
                                  app.config["UPLOAD_IDLE_SECONDS"])
    return app
