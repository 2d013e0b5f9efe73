"""The API's one error type: raised anywhere in a handler, answered as ``{"error", "parameter"?, "allowed"?}``."""

from __future__ import annotations

from aiohttp import web

from .schemas import Error


class ApiError(Exception):
    def __init__(self, status: int, error: str, *, parameter: str | None = None, allowed: str | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.parameter, self.allowed = status, error, parameter, allowed

    def response(self) -> web.Response:
        return error_response(self.status, self.error, parameter=self.parameter, allowed=self.allowed)


def error_response(status: int, error: str, *, parameter: str | None = None, allowed: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    body = Error(error=error, parameter=parameter, allowed=allowed).model_dump_json(exclude_none=True)
    return web.Response(status=status, body=body.encode(), content_type="application/json", headers=headers)


def echo(value: object, limit: int = 80) -> str:
    """A value a client sent, quoted for an error message, cut short when long."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def not_found(what: str, key: str, where: str) -> ApiError:
    return ApiError(404, f"no {what} {echo(key)} is known to this server; {where}")
