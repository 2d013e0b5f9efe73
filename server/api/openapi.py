"""The OpenAPI 3.1 document, generated from the route declarations and their pydantic models.

Response and body models go to ``components/schemas`` (one pydantic pass over all of them, so
shared models are defined once); each query model's fields become query parameters, each body
model a JSON request body.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .params import describe, param_schema
from .registry import Endpoint
from .schemas import Error

REF = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "An API token: `zonewatch user token NAME` prints one. Scripts use this."},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "zw_session",
                      "description": "The browser session from /login. A state-changing call made with it "
                                     "must also send the session's CSRF token (GET /api/v1/me) in X-CSRF-Token."},
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document(endpoints: list[Endpoint], *, version: str) -> dict[str, Any]:
    models = [(m, "serialization") for m in dict.fromkeys(
        [*(e.response for e in endpoints if e.response is not None), Error])]
    bodies = [(m, "validation") for m in dict.fromkeys(e.body for e in endpoints if e.body is not None)]
    _, top = models_json_schema([*models, *bodies], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(e.url, {})[e.method.lower()] = operation(e)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "zonewatch API",
            "version": version,
            "description": "Read side of the zonewatch fleet server: which zones of the government information "
                           "disclosure fleet meet the rule (network up, a working query device, a working "
                           "printer), which device is at fault and why, and the history of every change; "
                           "incidents, their acknowledgement, silences and the alerting configuration. "
                           "Times are ISO 8601 in UTC. Errors are JSON: {\"error\", \"parameter\", \"allowed\"}. "
                           "Every route except this document needs a signed-in user (Authorization: Bearer "
                           "<token>, or a session cookie); reads need the viewer role, acknowledging and "
                           "silencing the oncall role, the audit log the admin role.",
        },
        "paths": paths,
        "components": {"schemas": top.get("$defs", {}), "securitySchemes": SECURITY_SCHEMES},
        "security": [{"bearerAuth": []}, {"sessionCookie": []}],
    }


def operation(e: Endpoint) -> dict[str, Any]:
    parameters = [{"name": p.name, "in": "path", "required": True, "description": p.description,
                   "schema": p.schema} for p in e.path_params]
    if e.query is not None:
        for name, info in e.query.model_fields.items():
            schema = param_schema(e.query, name)
            description = schema.pop("description", None) or info.description or ""
            parameters.append({"name": name, "in": "query", "required": info.is_required(),
                               "description": f"{description} Allowed: {describe(schema)}.".strip(),
                               "schema": schema})
    responses: dict[str, Any] = {
        str(e.status): _json(e.summary, _ref(e.response) if e.response is not None else {"type": "object"}),
    }
    if e.body is not None:
        responses["400"] = _json("The body is not a JSON object, or a field is missing, unknown or not allowed; "
                                 "the answer names it.", _ref(Error))
    else:
        responses["400"] = _json("A query parameter is unknown, repeated or not allowed; the answer names it.",
                                 _ref(Error))
    if e.not_found:
        responses["404"] = _json(e.not_found, _ref(Error))
    if e.conflict:
        responses["409"] = _json(e.conflict, _ref(Error))
    if e.body is not None:
        responses["413"] = _json("The body is too large.", _ref(Error))
        responses["415"] = _json("The body is not sent as application/json.", _ref(Error))
    if e.needs:
        responses["401"] = _json("No credentials, or they are not valid (a revoked token, an ended session).",
                                 _ref(Error))
        if e.needs != "viewer" or e.method != "GET":
            responses["403"] = _json(f"Needs the {e.needs} role or above; or, with a session cookie, the CSRF "
                                     "token is missing or wrong.", _ref(Error))
    responses["503"] = _json("The database did not answer; try again.", _ref(Error))
    op = {"operationId": e.operation_id, "summary": e.summary, "tags": [e.tag], "responses": responses}
    if not e.needs:
        op["security"] = []  # open to anyone
    if e.description:
        op["description"] = e.description
    if parameters:
        op["parameters"] = parameters
    if e.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(e.body)}}}
    return op
