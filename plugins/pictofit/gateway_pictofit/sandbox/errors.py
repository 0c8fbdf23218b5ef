"""How the PICTOFiT sandbox answers errors, and the body checks that produce them.

Errors (the format is not documented)
- Every error is JSON ``{"message": "..."}``; validation errors (400) add
  ``"errors": {field: [message, ...]}``. 401 adds ``WWW-Authenticate: Bearer``.
- A body that references a missing object (the product of a configuration, the configuration of a
  file) is a 400 validation error; a missing object in the path is 404. A customer id in the path
  other than the caller's is 403. Unknown routes are 404, a wrong method 405.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.plugin_api import JSON, SandboxProblem, json_error
from gateway_pictofit.sandbox.types import canonical_uuid

__all__ = ["errors", "optional_str", "required_name", "v4_path_id"]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer unmatched routes, ``SandboxProblem`` and aiohttp's refusals as JSON errors."""
    unmatched = request.match_info.http_exception
    if unmatched is not None:
        headers: dict[str, str] = {}
        if isinstance(unmatched, web.HTTPMethodNotAllowed):
            headers[hdrs.ALLOW] = ",".join(sorted(unmatched.allowed_methods))
        return json_error(unmatched.status, unmatched.reason, headers=headers)
    try:
        return await handler(request)
    except SandboxProblem as problem:
        return problem.response()
    except web.HTTPClientError as exc:
        # aiohttp's own refusals (e.g. a body over client_max_size) also answer JSON.
        return json_error(exc.status, exc.reason)


def optional_str(body: JSON, key: str, errors: dict[str, list[str]]) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        errors.setdefault(key, []).append(f"{key} must be a string or null")
        return None
    return value


def required_name(body: JSON, errors: dict[str, list[str]]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.setdefault("name", []).append("name must be a non-empty string")
        return ""
    return name


def v4_path_id(request: web.Request, kind: str, errors: dict[str, list[str]]) -> str | None:
    """The ``{kind}_id`` path segment as a canonical UUID version 4, else an ``id`` error."""
    value = canonical_uuid(request.match_info[f"{kind}_id"], version=4)
    if value is None:
        errors["id"] = [f"the {kind} id must be a UUID version 4"]
    return value
