"""The problems a caller sees when an upstream call fails, each naming its backend."""

from __future__ import annotations

import math
from collections.abc import Mapping

from gateway.problems import ProblemError

__all__ = [
    "CircuitOpen",
    "UpstreamCredentialsRejected",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamServerError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class UpstreamError(ProblemError):
    """Base of the problems raised for an upstream call; `backend` names the backend."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        backend: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, slug, title, detail, headers=headers)
        self.backend = backend


class UpstreamTimeout(UpstreamError):
    def __init__(self, backend: str, seconds: float) -> None:
        super().__init__(
            504,
            "upstream-timeout",
            "Upstream timeout",
            f"backend {backend} did not answer within {seconds:.1f} s",
            backend=backend,
        )


class UpstreamUnavailable(UpstreamError):
    def __init__(self, backend: str, reason: str = "connection failed") -> None:
        super().__init__(
            502,
            "upstream-unavailable",
            "Upstream unavailable",
            f"backend {backend} could not be reached: {reason}",
            backend=backend,
        )


class UpstreamServerError(UpstreamError):
    def __init__(self, backend: str, upstream_status: int | None, reason: str = "") -> None:
        what = f"status {upstream_status}" if upstream_status is not None else "an invalid response"
        super().__init__(
            502,
            "upstream-error",
            "Upstream error",
            f"backend {backend} answered with {what}" + (f": {reason}" if reason else ""),
            backend=backend,
        )
        self.upstream_status = upstream_status


class UpstreamRejected(UpstreamError):
    """An upstream 4xx, passed on with the upstream's status and reason."""

    def __init__(
        self, backend: str, upstream_status: int, reason: str, retry_after: float | None = None
    ) -> None:
        headers = {"Retry-After": _retry_after_header(retry_after)} if retry_after else None
        super().__init__(
            upstream_status,
            "upstream-rejected",
            "Rejected by upstream",
            f"backend {backend} rejected the request ({upstream_status}): {reason}",
            backend=backend,
            headers=headers,
        )
        self.upstream_status = upstream_status
        self.reason = reason


class UpstreamCredentialsRejected(UpstreamError):
    """The upstream refused the *gateway's* credentials for the tenant; not the caller's fault."""

    def __init__(self, backend: str, upstream_status: int, reason: str = "") -> None:
        # `reason`: how the upstream said so, when more than its status tells (an error code).
        super().__init__(
            502,
            "upstream-credentials-rejected",
            "Upstream rejected the gateway's credentials",
            f"backend {backend} rejected the gateway's credentials for this tenant "
            f"({upstream_status}" + (f", {reason})" if reason else ")"),
            backend=backend,
        )
        self.upstream_status = upstream_status


class CircuitOpen(UpstreamError):
    """Refused without calling the backend, because it has been failing."""

    def __init__(self, retry_after: float, backend: str = "") -> None:
        super().__init__(
            503,
            "circuit-open",
            "Backend temporarily unavailable",
            f"backend {backend or '(unnamed)'} is failing; calls to it are suspended",
            backend=backend,
            headers={"Retry-After": _retry_after_header(retry_after)},
        )
        self.retry_after = retry_after


def _retry_after_header(seconds: float | None) -> str:
    return str(max(1, math.ceil(seconds or 0)))
