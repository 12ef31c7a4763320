"""The OpenAPI document, with the answers every route can give written down.

Some answers come from handlers shared by all routes (api.app's error handlers, the body
limit middleware, the bearer-token check), not from the route itself, so FastAPI does not
know to document them. They are added here to every operation that can give them, so the
document is complete for routes added later too (tests/test_fuzz.py holds every answer
to it).
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM = {"$ref": "#/components/schemas/Problem"}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "string"}}}
BODY_METHODS = {"post", "put", "patch"}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": PROBLEM}}}
    if headers:
        answer["headers"] = headers
    return answer


def common_responses(path: str, method: str) -> dict[str, dict[str, Any]]:
    answers = {
        "400": _problem("malformed request: JSON, cursor or X-Consistency-Token"),
        "401": _problem("a bearer token is missing (routes that need one) or not valid"),
        "422": _problem("a field is not valid"),
        "503": _problem("a backing service is not answering", RETRY_AFTER),
    }
    if "{" in path:
        answers["404"] = _problem("no such resource")
    if method != "get":
        answers["409"] = _problem("a conflicting change (taken name, concurrent edit)", RETRY_AFTER)
    if method in BODY_METHODS:
        answers["413"] = _problem("the request body is larger than this route accepts")
    return answers


MASTODON_ERROR = {"$ref": "#/components/schemas/MastodonError"}


def mastodon_responses(doc: dict[str, Any], path: str, operation: dict[str, Any]) -> None:
    """The Mastodon API's paths answer errors as {"error": "..."} (api.app), any of
    them 403 (not visible to you), 404 (Record not found) or 429."""
    from api.mastodon.common import is_mastodon_path

    if not is_mastodon_path(path):
        return
    responses = operation["responses"]
    for code in ("403", "404", "429"):
        responses.setdefault(code, {"description": "refused"})
    for code, answer in responses.items():
        if code[0] in "45":
            answer["content"] = {"application/json": {"schema": MASTODON_ERROR}}
    doc["components"]["schemas"]["MastodonError"] = {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
        "title": "MastodonError",
    }


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            for path, operations in doc["paths"].items():
                for method, operation in operations.items():
                    responses = operation.setdefault("responses", {})
                    for code, answer in common_responses(path, method).items():
                        if code == "422" or code not in responses:  # ours, not FastAPI's shape
                            responses[code] = answer
            doc.setdefault("components", {}).setdefault("schemas", {})
            if "Problem" not in doc["components"]["schemas"]:
                from api.schemas import Problem

                doc["components"]["schemas"]["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            for path, operations in doc["paths"].items():
                for operation in operations.values():
                    mastodon_responses(doc, path, operation)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
