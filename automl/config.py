"""Settings, with their defaults, overridable from the environment (12-factor, as on Cloud Foundry)."""
from __future__ import annotations

import os


def from_environment() -> dict:
    env = os.environ
    return {
        # Where trained pipelines are written through to. On Cloud Foundry the local disk is
        # per instance and lost on restage: point this at a mounted volume for durability.
        "MODEL_DIR": env.get("AUTOML_MODEL_DIR", os.path.join(os.getcwd(), "var", "models")),
        # Signs stored pipelines; without it a key is generated beside the models.
        "SECRET_KEY": env.get("AUTOML_SECRET_KEY") or None,
        # Flask answers 413 above this many bytes per request.
        "MAX_CONTENT_LENGTH": int(float(env.get("MAX_UPLOAD_MB", "100")) * 1024 * 1024),
    }
