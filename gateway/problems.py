"""RFC 9457 problem details: the one shape every error of the gateway takes.

Anything that goes wrong raises a `ProblemError` (or a subclass); the error middleware is the one
place that turns it into an `application/problem+json` answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import attrs

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:gateway:problem:"


@attrs.frozen
class FieldError:
    """One thing wrong with the input; `location` is a JSON pointer into the body or a parameter."""

    location: str
    message: str


class ProblemError(Exception):
    """An error the caller gets as a problem document; `slug` becomes the stable `type` URI."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = tuple(errors)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def to_body(self, *, instance: str | None, request_id: str) -> dict[str, Any]:
        """The document; `instance` is None when the request's path is not known (unparseable)."""
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance is not None:
            body["instance"] = instance
        body["requestId"] = request_id
        if self.errors:
            body["errors"] = [{"location": e.location, "message": e.message} for e in self.errors]
        body.update(self.extra)
        return body


def bad_request(detail: str, errors: Sequence[FieldError] = ()) -> ProblemError:
    return ProblemError(400, "bad-request", "Bad request", detail, errors=errors)


def invalid_input(
    detail: str, errors: Sequence[FieldError] = (), *, extra: Mapping[str, Any] | None = None
) -> ProblemError:
    return ProblemError(
        422, "validation-failed", "Unprocessable content", detail, errors=errors, extra=extra
    )


def not_found(detail: str) -> ProblemError:
    return ProblemError(404, "not-found", "Not found", detail)


def unsupported_media_type(
    detail: str, errors: Sequence[FieldError] = (), *, extra: Mapping[str, Any] | None = None
) -> ProblemError:
    return ProblemError(
        415, "unsupported-media-type", "Unsupported media type", detail, errors=errors, extra=extra
    )


def payload_too_large(
    limit_bytes: int, detail: str | None = None, errors: Sequence[FieldError] = ()
) -> ProblemError:
    """413 with the limit (`limitBytes`); `detail` says whose limit, when it is not the body's."""
    return ProblemError(
        413,
        "payload-too-large",
        "Payload too large",
        detail or f"the request body exceeds the limit of {limit_bytes} bytes",
        errors=errors,
        extra={"limitBytes": limit_bytes},
    )


def not_implemented(detail: str) -> ProblemError:
    return ProblemError(501, "not-implemented", "Not implemented", detail)


def unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401,
        "unauthorized",
        "Unauthorized",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="gateway"'},
    )


E = TypeVar("E", bound=BaseException)


def cause_of(exc: BaseException | None, kind: type[E]) -> E | None:
    """The `kind` error behind `exc`: itself, or one along its causes and contexts, so that it is
    found even when a plugin wrapped it in an error of its own."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


# aiohttp raises these itself (unknown route, wrong method, body too large): same shape.
HTTP_STATUS_SLUGS: Mapping[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    # Refused by the server before routing (gateway.server).
    408: ("request-timeout", "Request timeout"),
    414: ("uri-too-long", "URI too long"),
    431: ("header-fields-too-large", "Request header fields too large"),
}
