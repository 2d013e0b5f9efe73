"""Each API route declared once — path, handler, summary, query model, response model — and served from that.

:func:`mount` adds the declared routes to an aiohttp app; :mod:`.openapi` builds the OpenAPI
document from the same declarations. A handler receives the validated query model and returns
a response model; the wrapper here answers 400/404 for :class:`~.errors.ApiError`, 503 when the
database does not answer, and serialises the model.
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

from .errors import ApiError, echo, error_response
from .params import Query, parse_query
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
    """One GET route of the API."""

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

    @property
    def url(self) -> str:
        return PREFIX + self.path

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")


def mount(app: web.Application, endpoints: list[Endpoint]) -> None:
    for endpoint in endpoints:
        app.router.add_get(endpoint.url, _serve(endpoint), name=endpoint.operation_id, allow_head=False)


def _serve(endpoint: Endpoint):
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            query = parse_query(endpoint.query, request.query) if endpoint.query else _no_query(request)
            result = await endpoint.handler(request, query)
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
        body = dump(result) if isinstance(result, BaseModel) else json.dumps(result).encode()
        return web.Response(body=body, content_type="application/json")

    handle.__name__ = endpoint.operation_id
    return handle


def _no_query(request: web.Request) -> None:
    for name in request.query:
        raise ApiError(400, f"unknown query parameter {echo(name)}; this route takes no parameters",
                       parameter=name, allowed="no parameters")
    return None
