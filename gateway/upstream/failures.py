"""What an attempt that brought no answer to return means: the error the caller sees, and
whether another attempt may follow."""

from __future__ import annotations

from typing import Any, Final

import attrs
import orjson
from multidict import CIMultiDictProxy

from gateway import wire
from gateway.redaction import SecretRegistry, strip_url_queries
from gateway.upstream.errors import (
    UpstreamCredentialsRejected,
    UpstreamError,
    UpstreamRejected,
    UpstreamServerError,
)
from gateway.values import Credentials

__all__ = ["Failure", "classify", "scrub"]

_REASON_MAX: Final = 300


@attrs.frozen
class Failure:
    """Why an attempt did not produce an answer to return, and whether another may follow."""

    error: UpstreamError
    retryable: bool = False
    retry_after: float | None = None
    refresh: bool = False  # a 401: ask for fresh credentials and send once more
    refused: Credentials | None = None  # the credentials that got the 401


def classify(
    backend: str, status: int, headers: CIMultiDictProxy[str], body: bytes, secrets: SecretRegistry
) -> Failure:
    """What a status that is neither 2xx nor expected means for the caller and for retrying."""
    if status == 401:
        return Failure(UpstreamCredentialsRejected(backend, status), refresh=True)
    if status == 403:
        return Failure(UpstreamCredentialsRejected(backend, status))
    retry_after = wire.retry_after_seconds(headers.get("Retry-After"))
    if status == 429:
        reason = _reason(body, secrets)
        error = UpstreamRejected(backend, status, reason, retry_after)
        return Failure(error, retryable=True, retry_after=retry_after)
    if 400 <= status < 500:
        return Failure(UpstreamRejected(backend, status, _reason(body, secrets)))
    if status >= 500:
        return Failure(
            UpstreamServerError(backend, status), retryable=True, retry_after=retry_after
        )
    # 1xx/3xx that aiohttp did not resolve (a redirect without Location, 304 ...).
    return Failure(UpstreamServerError(backend, status, "unexpected status"))


def _reason(body: bytes, secrets: SecretRegistry) -> str:
    """The upstream's own explanation, shortened and scrubbed: it may echo our key or URL."""
    reason = ""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        reason = body[: _REASON_MAX * 4].decode("utf-8", errors="replace")
    else:
        reason = _reason_from_json(doc) or ""
    reason = " ".join(reason.split())
    if not reason:
        return "no reason given"
    return scrub(secrets, reason, _REASON_MAX)


def scrub(secrets: SecretRegistry, text: str, limit: int) -> str:
    """`text` without known secrets or URL queries, at most `limit` characters long."""
    text = strip_url_queries(secrets.scrub(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason_from_json(doc: Any) -> str | None:
    if isinstance(doc, str):
        return doc
    if not isinstance(doc, dict):
        return None
    for key in ("detail", "message", "error_description", "title", "error"):
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            return value
        if key == "error" and isinstance(value, dict):  # {"error": {"message": ...}}
            return _reason_from_json(value)
    return None
