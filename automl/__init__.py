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

    from . import api, config
    from .errors import register_error_handlers
    from .runner import JobRunner
    from .state import open_state

    app = Flask(__name__)
    app.config.from_mapping(config.from_environment())
    app.config.from_mapping(overrides or {})
    app.json.sort_keys = False  # keep reports in the order they were built
    state = open_state(app.config)
    app.extensions["state"] = state
    if app.config["RUN_JOBS"]:
        app.extensions["job_runner"] = JobRunner(state.jobs, state.models, app.config).start()
    register_error_handlers(app)
    app.register_blueprint(api.bp)
    logging.basicConfig(level=logging.INFO)
    return app
