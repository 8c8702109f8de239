"""AutoML for time-series classification: tsfresh features, a TPOT search, served over REST."""
from __future__ import annotations

import logging

from flask import Flask

from . import api, auth, config
from .errors import register_error_handlers
from .runner import JobRunner
from .state import open_state


def create_app(overrides: dict | None = None) -> Flask:
    """The application factory: environment settings, then ``overrides`` (tests use these)."""
    logging.basicConfig(level=logging.INFO)  # first: start-up checks log too
    app = Flask(__name__)
    app.config.from_mapping(config.from_environment())
    app.config.from_mapping(overrides or {})
    app.json.sort_keys = False  # keep reports in the order they were built
    auth.init_app(app)  # API keys and rate limits; refuses malformed ones first
    state = open_state(app.config)
    app.extensions["state"] = state
    if app.config["RUN_JOBS"]:
        app.extensions["job_runner"] = JobRunner(state.jobs, state.models, app.config).start()
    register_error_handlers(app)
    app.register_blueprint(api.bp)
    return app
