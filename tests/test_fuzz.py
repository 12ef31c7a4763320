"""Hostile input (issue 9, item 3): property-based fuzzing of the whole HTTP API from its
own OpenAPI document (schemathesis), on every backend. Every operation the app documents
(so routes added later too) is called with generated valid and invalid requests, signed
in and anonymous; no answer may be a 5xx, and every answer must match the document:
a documented status code, content type, headers and body schema, and invalid input
must be refused with a 4xx.

PHOTOSTREAM_FUZZ_EXAMPLES sets the examples per operation and mode (default 10; CI may
raise it)."""
from __future__ import annotations

import os
from typing import Any, Iterator

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.settings import Settings
from tests.support import Api

EXAMPLES = int(os.environ.get("PHOTOSTREAM_FUZZ_EXAMPLES", "10"))
REQUEST_FIELDS = ("method", "url", "headers", "params", "json", "data", "files", "cookies")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzzed(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    # Rate limits would turn most generated requests into 429s (documented, but they
    # would hide what is behind them); test_security.py tests the limits.
    unlimited = settings.model_copy(update={"rate_limit_scale": 1e6, "consistency_wait_seconds": 0.5})
    with TestClient(create_app(unlimited), raise_server_exceptions=False) as http:
        api = Api(http)
        user = api.sign_up("fuzz_owner")
        api.post(user, "a post #fuzz for the generated ids to sometimes hit")
        # A token that stays valid even when the fuzzer signs out everywhere (DELETE
        # /v1/sessions): its session generation is above any the account will reach.
        backend = http.app.state.backend
        token = backend.signer.issue(user.id, generation=10**9)
        yield http, {"Authorization": f"Bearer {token}"}


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_dict(app.openapi())
    # An endless answer (server-sent events) never completes a request/answer exchange;
    # tests/test_mastodon.py drives those streams with a real client.
    return [op for op in (result.ok() for result in schema.get_all_operations()) if not op.definition.raw.get("x-endless-stream")]


def _fuzz(http: TestClient, operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    checks = CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: CI failures reproduce locally
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
        kwargs.pop("timeout", None)
        kwargs.pop("allow_redirects", None)
        # schemathesis speaks `requests`: let it encode the body (JSON, multipart with
        # whatever values it generated), then send those exact bytes to the app.
        sent = requests.Request(**{k: v for k, v in kwargs.items() if k in REQUEST_FIELDS}).prepare()
        response = http.request(sent.method or "GET", sent.url or "", content=sent.body, headers=dict(sent.headers))
        case.validate_response(response, checks=checks, headers=kwargs.get("headers"))

    run()


def test_every_operation_answers_as_documented(fuzzed: tuple[TestClient, dict[str, str]]) -> None:
    http, auth = fuzzed
    operations = _operations(http.app)
    assert len(operations) >= 20  # the whole API, not a part of it
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for headers in (auth, {}):
                try:
                    _fuzz(http, operation, mode, headers)
                except Unsatisfiable:  # nothing in this operation can be made invalid
                    assert mode == GenerationMode.NEGATIVE
                except Exception as exc:  # collect all, then fail with the list
                    label = f"{operation.method.upper()} {operation.path} {mode.value} {'signed in' if headers else 'anonymous'}"
                    failures.append(f"{label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
