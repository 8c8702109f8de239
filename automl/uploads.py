"""Getting the named files out of a multipart request, or saying clearly why not."""
from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from flask import Request
from werkzeug.exceptions import UnsupportedMediaType

from .errors import BadRequest
from .params import Limits, TrainingParams, parse_training_params
from .parsing import read_labels, read_raw_data

TRAINING_FILES = ("raw_data", "labels", "params")
# The data files, read and stored from the request's spooled file rather than as bytes.
STREAMED_FILES = ("raw_data", "labels")
PREDICTION_FILES = ("raw_data", "params")
EXAMPLES = {"raw_data": "data/data_train.json", "labels": "data/label_train.json",
            "params": "pipeline_parameters.yml"}


@dataclass(frozen=True)
class Upload:
    # The part's bytes; or, for a part asked for ``streamed``, the request's own (spooled)
    # file, valid while the request is being handled.
    payload: bytes | BinaryIO
    filename: str | None
    content_type: str | None

    def as_args(self) -> dict:
        """How the parsers take it (``parsing.read_raw_data``, ``read_labels``)."""
        return {"payload": self.payload, "filename": self.filename,
                "content_type": self.content_type}


def require_files(request: Request, names: tuple[str, ...],
                  streamed: tuple[str, ...] = ()) -> dict[str, Upload]:
    """Each named part once, as a file (or, from a plain form, as a text field).

    A file part named in ``streamed`` is handed over unread, as the file werkzeug spooled it to
    (memory for a small part, a temporary file beyond 500 KB): the parsers read it in place,
    so a large upload is not also held as bytes."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType()
    missing = [n for n in names if n not in request.files and n not in request.form]
    if missing:
        raise BadRequest(
            f"Missing file{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}. "
            f"{request.path} takes multipart files {', '.join(names)}, e.g. "
            + " ".join(f"-F {n}=@{EXAMPLES[n]}" for n in names) + ".")
    repeated = [n for n in names if len(request.files.getlist(n)) + len(request.form.getlist(n)) > 1]
    if repeated:
        raise BadRequest(f"The part {repeated[0]!r} was sent more than once; send each of "
                         f"{', '.join(names)} once.")
    uploads = {}
    for name in names:
        if name in request.files:
            storage = request.files[name]
            uploads[name] = Upload(storage.stream if name in streamed else storage.read(),
                                   storage.filename, storage.mimetype)
        else:
            uploads[name] = Upload(request.form[name].encode("utf-8", "surrogatepass"), None, None)
    return uploads


def parse_training_uploads(uploads: dict[str, Upload], limits: Limits = Limits()
                           ) -> tuple[TrainingParams, object, object]:
    """The parameter file, then the data read with the columns it names (raising 400s)."""
    params = parse_training_params(uploads["params"].payload, limits)
    columns = params.features.columns
    raw = read_raw_data(**uploads["raw_data"].as_args(), columns=columns, field="raw_data",
                        layout=params.features.layout)
    labels = read_labels(**uploads["labels"].as_args(), columns=columns, field="labels")
    return params, raw, labels
