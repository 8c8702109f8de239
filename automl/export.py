"""Exported pipelines: a signed archive of a trained pipeline that loads locally.

``GET /models/<id>/export`` answers a zip (``automl-<id>-v<version>.zip``) holding

    manifest.json   what the archive holds: the pipeline id and version, who trained it and
                    when, each file's SHA-256 and size, the libraries of the exporting service
    manifest.sig    the service's Ed25519 signature of manifest.json
    model.pkl       the pickled TimeSeriesClassifier, byte for byte the artifact the service
                    stores (and checked against its HMAC signature before it is exported)
    report.json     the training report
    card.md         the model card (``model_card``)
    pipeline.py     the model's scikit-learn code, where it can be written (``codegen``)

and ``load(path, trust=...)`` gives back the ``TimeSeriesClassifier``, whose ``predict_proba``
takes the same long-format DataFrame the service reads (``parsing.read_raw_data`` turns files
into one).

**Trust.** Unpickling runs code, so ``load`` unpickles nothing before it has checked, in this
order: the signature of manifest.json by one of the keys the caller trusts (``trust=``, which
is required: the service's public key from ``GET /export-key``, ``Client.export_key()`` or
what ``automl export`` prints), then every file's SHA-256 against the manifest. The signing
key is derived from the service's secret (``AUTOML_SECRET_KEY``, or the one generated beside
the models), so every instance sharing the secret signs alike, and the secret never leaves the
service: what users hold is a public key, which can verify but not sign. This protects an
archive from being altered or forged by anyone without the service's secret, wherever it is
kept or copied to, and (with ``pipeline_id=``/``version=``) from being swapped for another
pipeline's genuine archive. It does not protect against the service itself (or anyone holding
its secret) having been compromised, against a key trusted without checking where it came from
(fetch it once, from the service you mean, and pin it), or against an old archive of the same
pipeline being handed over in place of a newer one (check ``manifest['exportedAt']``); nor does
it make unpickling with mismatched library versions behave (``load`` warns when they differ).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.metadata
import io
import json
import math
import pickle
import platform
import warnings
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

FORMAT, FORMAT_VERSION = "automl-export", 1
ALGORITHM = "Ed25519"
KEY_PREFIX = "ed25519:"
KEY_PURPOSE = "export-signing-ed25519-v1"
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
MODEL, REPORT, CARD, CODE = "model.pkl", "report.json", "card.md", "pipeline.py"
_CONTEXT = b"automl-export-v1\0"  # signed before the manifest: no other message verifies
_MAX_MANIFEST_BYTES = 1 << 20
# The exporting service's libraries recorded in the manifest; those that shape the pickle are
# compared with the loader's.
LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "tsfresh", "aeon", "TPOT", "xgboost",
             "lightgbm", "numba", "pyarrow", "automl-service")
PICKLE_LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "tsfresh", "aeon", "TPOT",
                    "xgboost", "lightgbm", "automl-service")


class ExportError(ValueError):
    """The archive is damaged, incomplete, of another format, or not what was expected."""


class UntrustedExport(ExportError):
    """The archive is not signed by any trusted key, or a file differs from its manifest:
    nothing was unpickled."""


class ExportVersionWarning(UserWarning):
    """The archive was exported by a service with other library versions than these: the
    pickled model may fail to load or behave differently."""


# -- the service's side ----------------------------------------------------------------------

class Signer:
    """The Ed25519 key exports are signed with, from a 32-byte seed (``ModelStore.derive_key``)."""

    def __init__(self, seed: bytes):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = _raw_public(self._key.public_key())
        self.public_key = KEY_PREFIX + base64.b64encode(raw).decode()
        self.key_id = key_id(raw)

    @classmethod
    def for_store(cls, store) -> Signer:
        return cls(store.derive_key(KEY_PURPOSE))

    def sign(self, manifest: bytes) -> bytes:
        return self._key.sign(_CONTEXT + manifest)

    def describe(self) -> dict:
        """What ``GET /export-key`` answers."""
        return {"algorithm": ALGORITHM, "publicKey": self.public_key, "keyId": self.key_id}


def key_id(raw_public_key: bytes) -> str:
    """A short name for a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def build(*, pipeline_id: str, report: dict, payload: bytes, classifier, signer: Signer,
          exported_by: str | None = None) -> tuple[bytes, dict]:
    """The archive's bytes, and its manifest."""
    from . import codegen, model_card

    libraries = service_libraries()
    trained_with = {"scikit-learn": pickled_sklearn_version(payload)}
    exported_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    card = model_card.render(report, libraries=libraries, trained_with=trained_with,
                             exported_at=exported_at)
    code = pipeline_code(classifier, report)
    files = {MODEL: payload,
             REPORT: json.dumps(_plain(report), indent=2, default=str, allow_nan=False).encode(),
             CARD: card.encode(), CODE: code.source.encode()}
    manifest = {
        "format": FORMAT, "formatVersion": FORMAT_VERSION,
        "pipelineId": pipeline_id, "version": report.get("version"),
        "provisional": bool(report.get("provisional")),
        "classes": report.get("classes"), "positiveClass": report.get("positiveClass"),
        "engine": report.get("engine"), "modelType": report.get("modelType"),
        "createdAt": report.get("createdAt"), "createdBy": report.get("createdBy"),
        "jobId": report.get("jobId"), "exportedAt": exported_at, "exportedBy": exported_by,
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for name, data in files.items()},
        "libraries": libraries, "trainedWith": trained_with,
        "codeReproduces": code.reproduces, "codeUnwritten": code.unwritten,
        "signature": {"algorithm": ALGORITHM, "keyId": signer.key_id,
                      "publicKey": signer.public_key, "signs": MANIFEST},
    }
    manifest_bytes = json.dumps(manifest, indent=2, default=str).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr(MANIFEST, manifest_bytes)
        archive.writestr(SIGNATURE, signer.sign(manifest_bytes))
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue(), manifest


@dataclass(frozen=True)
class Code:
    source: str
    reproduces: bool          # the whole model's structure and parameters were written
    unwritten: list[str]


def pipeline_code(classifier, report: dict) -> Code:
    """pipeline.py: the fitted model's estimator structure as scikit-learn code, with what it
    leaves out said at the top."""
    from .codegen import model_source

    model = getattr(classifier, "model_", None)
    source = model_source(model)
    pid, version = report.get("modelId"), report.get("version")
    classes = report.get("classes") or []
    encoded = ", ".join(f"{i} = {c!r}" for i, c in enumerate(classes)) or "not recorded"
    columns = report.get("selectedFeatures") or []
    reads = (f"the {len(columns)} tsfresh features listed in report.json's selectedFeatures, "
             "in that order" if columns else
             f"{(report.get('trainShape') or [None, '?'])[1]} features from the "
             f"{report.get('engine') or 'feature'} engine, in its order")
    gaps = "".join(f"\n  - {item}" for item in source.unwritten)
    gaps = f"\n- parts that have no literal form, left as None:{gaps}" if gaps else ""
    header = f"""The model of pipeline {pid}, version {version}, as scikit-learn code.

Generated by the AutoML service from the fitted model's get_params(): the estimators, their
order and every parameter that differs from its class's default. Fitting `model` on the same
feature matrix and labels rebuilds an equivalent model (up to randomness the parameters do
not fix). It does not reproduce:

- the feature extraction: this service's {report.get('engine') or 'feature'} engine (automl's
  TsfreshFeatures / KernelFeatures), with the features it selected and the imputation it
  learned on the training series. The model reads {reads}. The exported model.pkl holds the
  fitted extraction: `automl.export.load(...).features_.transform(raw)` gives the matrix;
- the fitted state (trees, coefficients): that is in model.pkl, not here;
- the labels: the model predicts class numbers, {encoded};
- how the model was chosen (the search, the cross-validation): see card.md.{gaps}
"""
    footer = ("if __name__ == \"__main__\":\n    print(model)")
    return Code(source.module(header, footer), not source.unwritten, source.unwritten)


def service_libraries() -> dict:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def pickled_sklearn_version(payload: bytes) -> str | None:
    """The scikit-learn version recorded inside a pickle of its estimators (their
    ``_sklearn_version``), read from the opcodes without unpickling anything."""
    import pickletools

    expect = False
    try:
        for opcode, arg, _ in pickletools.genops(payload):
            if isinstance(arg, str) and "UNICODE" in opcode.name:
                if expect:
                    return arg[:40]
                expect = arg == "_sklearn_version"
            elif expect and opcode.name not in ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
                expect = False
    except Exception:  # noqa: BLE001 - a truncated or odd pickle: the version is unknown
        return None
    return None


def _plain(value):
    """JSON-ready: NaN and infinities as None (as the API answers them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- the user's side -------------------------------------------------------------------------

@dataclass(frozen=True)
class Export:
    """A verified archive: the model, and the files beside it."""

    classifier: object
    manifest: dict
    report: dict
    card: str
    code: str


def load(path, *, trust, pipeline_id: str | int | None = None, version: int | None = None):
    """The ``TimeSeriesClassifier`` of an exported archive, once its signature and contents
    are verified (see the module's docstring; ``UntrustedExport`` if they are not).

    ``trust``: the public key(s) to accept, as ``GET /export-key`` and ``automl export`` give
    them (``"ed25519:..."``, that answer as a dict, raw 32 bytes, a cryptography
    ``Ed25519PublicKey``, or a list of any of these). ``pipeline_id``/``version``: refuse an
    archive of another pipeline or version (a genuine one, swapped)."""
    return open_export(path, trust=trust, pipeline_id=pipeline_id, version=version).classifier


def open_export(path, *, trust, pipeline_id: str | int | None = None,
                version: int | None = None) -> Export:
    """The verified archive: its classifier, manifest, report, card and code."""
    keys = trusted_keys(trust)
    with _open_zip(path) as archive:
        manifest_bytes = _member(archive, MANIFEST, _MAX_MANIFEST_BYTES)
        signature = _member(archive, SIGNATURE, 64)
        if not any(_verifies(key, signature, manifest_bytes) for key in keys):
            claimed = _claimed_key(manifest_bytes)
            raise UntrustedExport(
                f"{_name(path)} is not signed by a trusted key (it names the key {claimed}; "
                f"trusted: {', '.join(key_id(_raw_public(k)) for k in keys)}). Nothing was "
                "loaded. Trust the key of the service that exported it (GET /export-key).")
        manifest = json.loads(manifest_bytes)
        if manifest.get("format") != FORMAT or manifest.get("formatVersion") != FORMAT_VERSION:
            raise ExportError(f"{_name(path)} is a {manifest.get('format')!r} archive of format "
                              f"version {manifest.get('formatVersion')!r}; this automl reads "
                              f"{FORMAT!r} version {FORMAT_VERSION}.")
        _expect(manifest, pipeline_id, version, path)
        files = manifest.get("files") or {}
        if MODEL not in files:
            raise ExportError(f"{_name(path)}'s manifest lists no {MODEL}.")
        contents = {name: _checked_member(archive, name, entry, path)
                    for name, entry in files.items()}
    _warn_on_versions(manifest.get("libraries") or {})
    classifier = pickle.loads(contents[MODEL])  # signed by this service (checked above)
    from .classifier import TimeSeriesClassifier

    if not isinstance(classifier, TimeSeriesClassifier):
        raise ExportError(f"{_name(path)}'s {MODEL} holds a {type(classifier).__name__}, not a "
                          "TimeSeriesClassifier.")
    text = {name: contents.get(name, b"").decode("utf-8", "replace") for name in (CARD, CODE)}
    report = json.loads(contents[REPORT]) if REPORT in contents else {}
    return Export(classifier, manifest, report, text[CARD], text[CODE])


def read_manifest(path) -> dict:
    """The archive's manifest, NOT verified: to see what an archive claims before trusting it."""
    with _open_zip(path) as archive:
        return json.loads(_member(archive, MANIFEST, _MAX_MANIFEST_BYTES))


def trusted_keys(trust) -> list:
    """The ``trust=`` argument as cryptography public keys (refusing none at all)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if trust is None or trust is True or trust is False or trust == "" or trust == []:
        raise TypeError("trust= must name the export key(s) to accept: the service's public key "
                        "(GET /export-key, Client.export_key(), or what `automl export` "
                        "prints). Loading unpickles code, so there is no default.")
    if isinstance(trust, (list, tuple, set, frozenset)):
        return [key for item in trust for key in trusted_keys(item)]
    if isinstance(trust, Ed25519PublicKey):
        return [trust]
    if isinstance(trust, dict) and "publicKey" in trust:
        return trusted_keys(trust["publicKey"])
    raw = None
    if isinstance(trust, (bytes, bytearray)) and len(trust) == 32:
        raw = bytes(trust)
    elif isinstance(trust, str) and trust.strip().lower().startswith(KEY_PREFIX):
        try:
            raw = base64.b64decode(trust.strip()[len(KEY_PREFIX):], validate=True)
        except ValueError:
            raw = None
    if raw is None or len(raw) != 32:
        raise ValueError(f"trust={_short(trust)} is not an Ed25519 public key; give it as "
                         f"'{KEY_PREFIX}<base64>' (as GET /export-key answers).")
    return [Ed25519PublicKey.from_public_bytes(raw)]


def _verifies(key, signature: bytes, manifest: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, _CONTEXT + manifest)
        return True
    except InvalidSignature:
        return False


def _raw_public(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _claimed_key(manifest: bytes) -> str:
    try:
        return str(json.loads(manifest)["signature"]["keyId"])[:32]
    except Exception:  # noqa: BLE001 - a damaged manifest names no key
        return "none"


def _expect(manifest: dict, pipeline_id, version, path) -> None:
    if pipeline_id is not None and str(manifest.get("pipelineId")) != str(pipeline_id):
        raise ExportError(f"{_name(path)} is pipeline {manifest.get('pipelineId')!r}, not "
                          f"{str(pipeline_id)!r}.")
    if version is not None and manifest.get("version") != version:
        raise ExportError(f"{_name(path)} is version {manifest.get('version')!r} of its "
                          f"pipeline, not {version}.")


def _open_zip(path):
    try:
        return zipfile.ZipFile(path if not isinstance(path, (bytes, bytearray))
                               else io.BytesIO(path))
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ExportError(f"{_name(path)} is not a readable export archive ({err}).") from None


def _member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ExportError(f"The archive has no {name}; it is not an automl export, or it is "
                          "incomplete.") from None
    if info.file_size > limit:
        raise UntrustedExport(f"The archive's {name} is {info.file_size} bytes; at most "
                              f"{limit} expected.")
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as err:
        raise ExportError(f"The archive's {name} cannot be read ({err}).") from None
    if len(data) > limit:
        raise UntrustedExport(f"The archive's {name} is larger than {limit} bytes.")
    return data


def _checked_member(archive: zipfile.ZipFile, name: str, entry: dict, path) -> bytes:
    if not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int) \
            or not isinstance(entry.get("sha256"), str):
        raise ExportError(f"{_name(path)}'s manifest entry for {name!r} is damaged.")
    data = _member(archive, name, entry["bytes"])
    if len(data) != entry["bytes"] or not hmac.compare_digest(
            hashlib.sha256(data).hexdigest(), entry["sha256"]):
        raise UntrustedExport(f"{_name(path)}'s {name} differs from the one its signed manifest "
                              "describes: it was altered. Nothing was loaded.")
    return data


def _warn_on_versions(exported: dict) -> None:
    here = service_libraries()
    differ = [f"{name} {exported[name]} (here {here.get(name) or 'not installed'})"
              for name in PICKLE_LIBRARIES
              if exported.get(name) and exported.get(name) != here.get(name)]
    if differ:
        warnings.warn("The archive was exported with other library versions: "
                      + ", ".join(differ) + ". Install the same versions (its manifest lists "
                      "them) if loading fails or predictions differ.", ExportVersionWarning,
                      stacklevel=3)


def _name(path) -> str:
    if isinstance(path, (str, Path)):
        return str(path)
    return getattr(path, "name", None) or "the archive"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
