"""The OpenAPI contract, fuzzed: schemathesis generates requests for every route from
``/openapi.json`` and sends them to gunicorn started from the Procfile, with a trained pipeline
in its store. No answer may be a 5xx, and every answer must conform to the contract (status
code, content type, headers, body schema). The contract itself must describe every route the
app has, and be valid OpenAPI 3.1.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                                response_headers_conformance,
                                                response_schema_conformance,
                                                status_code_conformance)

from automl import create_app
from servers import GunicornServer

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data"
FAST = (b"pipeline_id: 1\nextract_features: {default_fc_parameters: minimal}\n"
        b"model_training: {model: random_forest, model_args: {n_estimators: 20}, cv: 3}\n")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
EXAMPLES_PER_ROUTE = 140  # per route and mode (a route without inputs has one request to send)
MIN_REQUESTS = 1_000
sent: dict[str, int] = {}  # requests per route


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    server = GunicornServer(root / "gunicorn.log", env={
        "AUTOML_MODEL_DIR": str(root / "models"), "AUTOML_SECRET_KEY": "contract-secret",
        "AUTOML_MAX_QUEUED_JOBS": "3", "AUTOML_RATE_LIMIT": "off"})
    with server:
        files = {"raw_data": (DATA / "data_train.json").read_bytes(),
                 "labels": (DATA / "label_train.json").read_bytes(), "params": FAST}
        trained = requests.post(f"{server.url}/train_model", files=files, timeout=120)
        assert trained.status_code == 200, trained.text
        yield server
        assert "Traceback" not in server.log_tail(200_000), server.log_tail()


@pytest.fixture(scope="module")
def contract(service):
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_keeps_the_contract(service, contract, mode):
    """Requests the contract allows (positive) and ones it does not (negative), per route."""
    for result in contract.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call(base_url=service.url, timeout=60)
            sent[operation.label] = sent.get(operation.label, 0) + 1
            case.validate_response(response, checks=CHECKS)

        try:
            fuzz()
        except Unsatisfiable:  # the contract forbids nothing of this route's inputs (any text)
            assert mode == GenerationMode.NEGATIVE, operation.label


def test_at_least_a_thousand_requests_were_fuzzed_on_every_route():
    assert sum(sent.values()) >= MIN_REQUESTS, sent
    with_inputs = {"POST /train_model", "POST /serve_prediction", "GET /models/{pipeline_id}",
                   "GET /jobs", "GET /jobs/{job_id}", "DELETE /jobs/{job_id}"}
    assert {"GET /models", "GET /health"} | with_inputs <= set(sent), sent
    assert min(sent[route] for route in with_inputs) >= 100, sent


def test_the_contract_describes_every_route_and_method(tmp_path):
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "RUN_JOBS": False})
    spec = app.test_client().get("/openapi.json").json
    documented = {(path, method.upper()) for path, item in spec["paths"].items()
                  for method in item}
    served = {(_openapi_path(rule.rule), method) for rule in app.url_map.iter_rules()
              if rule.endpoint != "static" and not rule.endpoint.startswith("ui.")  # HTML pages
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served
    assert spec["openapi"] == "3.1.0"
    from openapi_spec_validator import validate

    validate(spec)


def _openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)
