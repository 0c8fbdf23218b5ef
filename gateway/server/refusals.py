"""The problem documents the server answers itself, where no handler of the app does: a connection
over the cap, a request aiohttp cannot parse, a head that came too slowly, an error that escaped
every middleware. None quotes the request, which may hold a caller key."""

from __future__ import annotations

import email.utils
import re
import uuid
from http import HTTPStatus

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong

from gateway.middleware import REQUEST_ID_HEADER
from gateway.problems import HTTP_STATUS_SLUGS, PROBLEM_CONTENT_TYPE, ProblemError
from gateway.settings import ServerSettings

RETRY_AFTER_FULL = 1  # seconds; connections free up as fast as requests end
TOO_MANY_HEADERS = "Too many headers received"  # aiohttp's message; no class of its own
# A parser error's reason (llhttp's words, before the quoted input) when it is plain prose: no
# digits, quotes or underscores, so it cannot carry the request's data.
_PLAIN_REASON = re.compile(r"^[A-Za-z][A-Za-z ,.-]{2,79}$")


def problem(status: int, detail: str) -> ProblemError:
    slug, title = HTTP_STATUS_SLUGS[status]
    return ProblemError(status, slug, title, detail)


def too_many_connections(limit: int) -> ProblemError:
    detail = f"the gateway holds its limit of {limit} connections; retry shortly"
    return ProblemError(
        503,
        "too-many-connections",
        "Service unavailable",
        detail,
        headers={"Retry-After": str(RETRY_AFTER_FULL)},
    )


def unhandled() -> ProblemError:
    """A bug: the app's middlewares answer every error of a handler."""
    return ProblemError(
        500,
        "internal-error",
        "Internal server error",
        "the gateway failed to answer; quote the request id to its operators",
    )


def parser_refusal(
    exc: HttpProcessingError, settings: ServerSettings, first_line: bytes
) -> ProblemError:
    """Why aiohttp's parser refused a request; `first_line` is the start of its request line, to
    tell a long one (414) from a long header (431): aiohttp's LineTooLong does not say which."""
    if isinstance(exc, LineTooLong):
        if _request_line_too_long(first_line, settings.max_line_size):
            detail = f"the request line is longer than {settings.max_line_size} bytes"
            return problem(414, detail)
        detail = f"a header field is longer than {settings.max_field_size} bytes"
        return problem(431, detail)
    if isinstance(exc, BadHttpMessage) and exc.message == TOO_MANY_HEADERS:
        return problem(431, f"the request has more than {settings.max_headers} header fields")
    reason = exc.message.partition(":")[0].strip()
    detail = "the request is not valid HTTP/1.1"
    if _PLAIN_REASON.match(reason):
        detail += f" ({reason})"
    return problem(400, detail)


def _request_line_too_long(first_line: bytes, limit: int) -> bool:
    target = first_line.split(b" ")[1:2]  # method SP target SP version
    return len(target[0] if target else first_line) > limit


def response(refusal: ProblemError, request_id: str) -> web.Response:
    """The answer to a request aiohttp handles itself (its `handle_error`)."""
    return web.Response(
        body=orjson.dumps(refusal.to_body(instance=None, request_id=request_id)),
        status=refusal.status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers={REQUEST_ID_HEADER: request_id},
    )


def raw_response(refusal: ProblemError) -> bytes:
    """A whole HTTP/1.1 answer, for a connection no request handler owns."""
    request_id = str(uuid.uuid4())
    body = orjson.dumps(refusal.to_body(instance=None, request_id=request_id))
    headers = {
        "Content-Type": PROBLEM_CONTENT_TYPE,
        "Content-Length": str(len(body)),
        "Date": email.utils.formatdate(usegmt=True),
        REQUEST_ID_HEADER: request_id,
        "Connection": "close",
        **refusal.headers,
    }
    head = f"HTTP/1.1 {refusal.status} {HTTPStatus(refusal.status).phrase}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (head + "\r\n").encode("latin-1") + body
