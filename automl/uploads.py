"""Getting the named files out of a multipart request, or saying clearly why not."""
from __future__ import annotations

from flask import Request
from werkzeug.exceptions import UnsupportedMediaType

from .errors import BadRequest
from .params import TrainingParams, parse_training_params
from .parsing import read_labels, read_raw_data

TRAINING_FILES = ("raw_data", "labels", "params")


class Upload:
    def __init__(self, payload: bytes, filename: str | None, content_type: str | None):
        self.payload = payload
        self.filename = filename
        self.content_type = content_type


def require_files(request: Request, names: tuple[str, ...]) -> dict[str, Upload]:
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType()
    missing = [name for name in names if name not in request.files]
    if missing:
        raise BadRequest(
            f"Missing file{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}. "
            f"{request.path} takes multipart files {', '.join(names)}, e.g. "
            + " ".join(f"-F {n}=@{_example(n)}" for n in names) + ".")
    uploads = {}
    for name in names:
        storage = request.files[name]
        uploads[name] = Upload(storage.read(), storage.filename, storage.mimetype)
    return uploads


def _example(name: str) -> str:
    return {"raw_data": "data/data_train.json", "labels": "data/label_train.json",
            "params": "pipeline_parameters.yml"}[name]


def parse_training_uploads(uploads: dict) -> tuple[TrainingParams, object, object]:
    """The parameter file, then the data read with the columns it names (raising 400s)."""
    params = parse_training_params(uploads["params"].payload)
    columns = params.features.columns
    raw = read_raw_data(**file_args(uploads["raw_data"]), columns=columns, field="raw_data")
    labels = read_labels(**file_args(uploads["labels"]), columns=columns, field="labels")
    return params, raw, labels


def file_args(upload) -> dict:
    return {"payload": upload.payload, "filename": upload.filename,
            "content_type": upload.content_type}
