"""How the Artifi sandbox answers: the envelope, its quirks, and the ProblemDetails 400s.

1. Every answer is the envelope ``{"Response", "Message", "Data", "ErrorCode"}`` with HTTP 200,
   errors included (errors live inside the envelope). Exceptions: the ProblemDetails 400s, the
   503 fault (plain text body), 404/405 from routing and the dropped connection.
10. Error messages other than the 500 one are this sandbox's wording; clients must key on
    ``ErrorCode``.
12. Quirks (applied when an envelope is built, the 500 fault included): ``lowercase_keys``
    lowercases every key of the envelope and, recursively, of ``Data``; ``data_as_string``
    serialises a non-null ``Data`` to a JSON string (after lowercasing); ``problem_details_400``
    answers the next validation failure (codes 261, 262, 265; not the credential codes) as a
    bare HTTP 400 ``application/problem+json`` body ``{"type", "title", "status", "errors"}``
    (``errors`` keyed by the offending parameter) and then switches itself off;
    ``multi_error_codes`` makes ``221`` read ``"221,234"``.
"""

from __future__ import annotations

import json
from typing import Final

from aiohttp import web

from gateway_artifi.sandbox.state import ArtifiSandboxState

__all__ = [
    "PROBLEM_TYPE",
    "SERVER_ERROR_MESSAGE",
    "VALIDATION_TITLE",
    "envelope",
    "error",
    "problem",
    "validation_error",
]

SERVER_ERROR_MESSAGE: Final = "Internal server error occurred , while processing image"
VALIDATION_TITLE: Final = "One or more validation errors occurred."
PROBLEM_TYPE: Final = "https://tools.ietf.org/html/rfc7231#section-6.5.1"


def _lower_keys(value: object) -> object:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def envelope(
    state: ArtifiSandboxState,
    *,
    ok: bool,
    message: str | None = None,
    data: object = None,
    error_code: str | None = None,
) -> web.Response:
    faults = state.faults
    if faults.lowercase_keys:
        data = _lower_keys(data)
    if faults.data_as_string and data is not None:
        data = json.dumps(data)
    body: dict[str, object] = {
        "Response": "Success" if ok else "Error",
        "Message": message,
        "Data": data,
        "ErrorCode": error_code,
    }
    if faults.lowercase_keys:
        body = {k.lower(): v for k, v in body.items()}
    return web.json_response(body)


def error(state: ArtifiSandboxState, code: str, message: str) -> web.Response:
    return envelope(state, ok=False, message=message, error_code=code)


def problem(errors: dict[str, list[str]]) -> web.Response:
    body = {"type": PROBLEM_TYPE, "title": VALIDATION_TITLE, "status": 400, "errors": errors}
    return web.json_response(body, status=400, content_type="application/problem+json")


def validation_error(
    state: ArtifiSandboxState, code: str, field: str, message: str
) -> web.Response:
    """A 261/262/265 answer: the envelope, or once a bare ProblemDetails when the quirk is on."""
    if state.faults.problem_details_400:
        state.faults.problem_details_400 = False
        return problem({field: [message]})
    return error(state, code, message)
