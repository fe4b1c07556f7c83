"""The error answers of the API, documented once: each route gets the statuses that the
dependencies it uses can raise (who may call it, what it loads, whether it takes a body, whether
it is throttled), 503 for an outage, and whatever its decorator adds with `errors(...)`.

FastAPI documents 422 (`HTTPValidationError`) on every route that has parameters; every other
error body is `{"detail": str}`, and a 503 also names the `dependency` that is down."""

import copy
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase
from pydantic import BaseModel

from bishop_backend.api import deps


class ErrorBody(BaseModel):
    detail: str


class OutageBody(ErrorBody):
    dependency: str


DESCRIPTIONS = {
    400: "The request is malformed: a body that cannot be parsed, or a refused sign-in",
    401: "No valid access token",
    403: "The user is inactive or lacks the privileges",
    404: "Not found, or not this user's",
    409: "The request conflicts with the current state",
    413: "The request body is too large",
    415: "The media type is not supported",
    429: "Too many attempts; try again after `Retry-After` seconds",
    503: "A dependency is unavailable (`dependency` names it); try again after `Retry-After`",
}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
}
CONTENT_RANGE = {
    "Content-Range": {"description": "`bytes START-END/SIZE`", "schema": {"type": "string"}},
}

# What each dependency raises. The bearer scheme (any `SecurityBase`) answers 401 by itself.
RAISED_BY: dict[Callable[..., Any], tuple[int, ...]] = {
    deps.get_current_user: (401, 403),
    deps.get_current_superuser: (403,),
    deps.get_owned_avatar: (404,),
    deps.get_owned_chat: (404,),
    deps.get_owned_message: (404,),
    deps.get_owned_material: (404,),
    deps.get_idempotency: (409,),
    # The client's address is asked for to throttle by it (sign-in and sign-up).
    deps.get_client_address: (429,),
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for these error statuses, with the body each one really has."""
    return {status: _response(status) for status in sorted(statuses)}


def not_json(
    media_type: str, description: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`openapi_extra` for a route whose success is a file or a stream, not a JSON model
    (for `text/event-stream`, `schema` describes one event)."""
    schema = schema or {"format": "binary"}
    return {
        "responses": {
            "200": {"description": description, "content": {media_type: {"schema": schema}}}
        }
    }


def _response(status: int) -> dict[str, Any]:
    model = OutageBody if status == 503 else ErrorBody
    response: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": _ref(model)}}},
    }
    if status in (429, 503):
        response["headers"] = RETRY_AFTER
    return response


def _ref(model: type[BaseModel]) -> str:
    return f"#/components/schemas/{model.__name__}"


def _raised(dependant: Dependant) -> set[int]:
    found: set[int] = set()
    for sub in dependant.dependencies:
        if isinstance(sub.call, SecurityBase):
            found.add(401)
        found.update(RAISED_BY.get(sub.call, ()))  # type: ignore[arg-type]
        found |= _raised(sub)
    return found


def document(app: FastAPI, routers: Iterable[APIRouter], prefix: str) -> None:
    """Make `app`'s OpenAPI document list every error status of the routes of `routers`
    (included under `prefix`), with the body each status has."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        paths = document.get("paths", {})
        for router in routers:
            for route in router.routes:
                if isinstance(route, APIRoute) and route.include_in_schema:
                    statuses = _statuses(route)
                    for method in route.methods:
                        operation = paths[prefix + route.path][method.lower()]
                        for status, response in errors(*statuses).items():
                            operation["responses"].setdefault(str(status), response)
                        if "range" in _headers(route.dependant):
                            _document_ranges(operation["responses"])
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorBody, OutageBody):
            schemas.setdefault(
                model.__name__, model.model_json_schema(ref_template="#/components/schemas/{model}")
            )
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _headers(dependant: Dependant) -> set[str]:
    found = {(field.alias or field.name).lower() for field in dependant.header_params}
    for sub in dependant.dependencies:
        found |= _headers(sub)
    return found


def _document_ranges(responses: dict[str, Any]) -> None:
    """A route that reads `Range` answers a part of its file, or 416 for a range outside it."""
    whole = responses.get("200", {})
    part: dict[str, Any] = {
        "description": "The part of the file the `Range` header asks for",
        "headers": CONTENT_RANGE,
    }
    if "content" in whole:
        part["content"] = copy.deepcopy(whole["content"])
    responses.setdefault("206", part)
    responses.setdefault(
        "416", {"description": "The range lies outside the file", "headers": CONTENT_RANGE}
    )


def _statuses(route: APIRoute) -> set[int]:
    statuses = _raised(route.dependant) | {503}
    if route.body_field is not None:
        statuses |= {400, 413}  # a body that cannot be parsed; one over the size limit
    return statuses
