"""Each API route declared once — method, path, handler, summary, query or body model, response model.

:func:`mount` adds the declared routes to an aiohttp app; :mod:`.openapi` builds the OpenAPI
document from the same declarations. A handler receives the validated query model (GET) or the
validated JSON body model (POST/DELETE with a body) and returns a response model; the wrapper
here answers 400/404/409 for :class:`~.errors.ApiError`, 503 when the database does not answer,
and serialises the model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from ..auth import role_at_least
from ..auth.web import audit, current_user
from .errors import ApiError, echo, error_response
from .params import Body, Query, parse_body, parse_query
from .schemas import dump

log = logging.getLogger("zonewatch.api")
PREFIX = "/api/v1"
Handler = Callable[[web.Request, Any], Awaitable[BaseModel | dict]]


@dataclass(frozen=True)
class PathParam:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string", "minLength": 1})


@dataclass(frozen=True)
class Endpoint:
    """One route of the API."""

    path: str  # below PREFIX, e.g. "/zones/{code}"
    handler: Handler
    summary: str
    response: type[BaseModel] | None  # None: a free-form JSON object
    query: type[Query] | None = None
    path_params: tuple[PathParam, ...] = ()
    #: When set, the route answers 404 for an unknown path parameter, described by this text.
    not_found: str | None = None
    description: str = ""
    tag: str = "fleet"
    method: str = "GET"
    #: A JSON request body, validated by this model (POST/DELETE); a route takes a query or a body, not both.
    body: type[Body] | None = None
    #: When set, the route answers 409 in this situation (described here).
    conflict: str | None = None
    #: HTTP status of a successful answer.
    status: int = 200
    #: The least role that may call the route; default: viewer for GET, oncall for anything that changes state.
    #: "" for a route open to anyone (no sign-in).
    role: str | None = None

    def __post_init__(self) -> None:
        if self.body is not None and self.query is not None:
            raise ValueError(f"{self.path}: a route takes a query model or a body model, not both")
        if self.method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise ValueError(f"{self.path}: method {self.method!r}")

    @property
    def needs(self) -> str:
        """The least role that may call this route ("" for none)."""
        if self.role is not None:
            return self.role
        return "viewer" if self.method == "GET" else "oncall"

    @property
    def url(self) -> str:
        return PREFIX + self.path

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")


def mount(app: web.Application, endpoints: list[Endpoint]) -> None:
    resources: dict[str, web.Resource] = {}  # one resource per path, with a route per method
    for endpoint in endpoints:
        resource = resources.get(endpoint.url)
        if resource is None:
            resource = resources[endpoint.url] = app.router.add_resource(endpoint.url, name=endpoint.operation_id)
        resource.add_route(endpoint.method, _serve(endpoint))


def _serve(endpoint: Endpoint):
    async def handle(request: web.Request) -> web.StreamResponse:
        user = current_user(request)
        if endpoint.needs and (user is None or not role_at_least(user.role, endpoint.needs)):
            if user is None:
                return error_response(401, "sign in first: send Authorization: Bearer <token>",
                                      headers={"WWW-Authenticate": 'Bearer realm="zonewatch"'})
            return error_response(403, f"{endpoint.method} {endpoint.url} needs the {endpoint.needs} role or "
                                       f"above; {user.username} is {user.role}")
        try:
            if endpoint.query is not None:
                given = parse_query(endpoint.query, request.query)
            else:
                given = _no_query(request)
                if endpoint.body is not None:
                    given = parse_body(endpoint.body, request.content_type, await _read(request))
            result = await endpoint.handler(request, given)
        except ApiError as exc:
            return exc.response()
        except SQLAlchemyError as exc:
            log.warning("%s: the database did not answer: %s", request.path, str(exc).splitlines()[0][:300])
            return error_response(503, "the database did not answer this request "
                                       f"({type(exc).__name__}); try again shortly, and see /healthz",
                                  headers={"Retry-After": "5"})
        except Exception:
            log.exception("API request %s failed", request.path_qs[:500])
            return error_response(500, f"internal error answering {request.path}; the server log has the details")
        if endpoint.method != "GET":
            detail = given.model_dump_json(exclude_none=True) if isinstance(given, BaseModel) else ""
            await audit(request, endpoint.operation_id, request.path, detail)
        # bytes: the response model already serialised (a shared, cached answer)
        body = result if isinstance(result, bytes) else dump(result) if isinstance(result, BaseModel) \
            else json.dumps(result).encode()
        return web.Response(status=endpoint.status, body=body, content_type="application/json")

    handle.__name__ = endpoint.operation_id
    return handle


async def _read(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"the request body is larger than {request.client_max_size} bytes; send a small "
                            "JSON object", parameter="body", allowed="a JSON object") from None


def _no_query(request: web.Request) -> None:
    for name in request.query:
        raise ApiError(400, f"unknown query parameter {echo(name)}; this route takes no parameters",
                       parameter=name, allowed="no parameters")
    return None
