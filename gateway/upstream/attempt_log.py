"""`AttemptLog`: what one backend's attempts leave behind, an `upstream.call` log line each (its
URL redacted, never a body or a header value) and the upstream metrics."""

from __future__ import annotations

import asyncio
import math
from typing import Any, Final

from yarl import URL

from gateway.logs import get_logger
from gateway.metrics import UpstreamMetrics
from gateway.redaction import SecretRegistry, redact_url
from gateway.upstream.bound import BoundUpstream
from gateway.upstream.failures import scrub
from gateway.upstream.middlewares import AttemptStats
from gateway.upstream.values import UpstreamCall

__all__ = ["AttemptLine", "AttemptLog"]

_log = get_logger("gateway.upstream")

_ERROR_MAX: Final = 200
_REDACTED_URLS: Final = 1024


class AttemptLine:
    """What an attempt's `upstream.call` line says besides its outcome and figures: the fields
    as plain attributes, passed to the logger as keywords when the line is written, rather than
    a dict built per attempt and unpacked again into the logger's keywords."""

    def __init__(
        self, bound: BoundUpstream[Any], call: UpstreamCall, attempt: int, url: str
    ) -> None:
        self.bound: Final = bound
        self.call: Final = call
        self.attempt: Final = attempt
        self.url: Final = url  # redacted
        self.status: int | None = None


class AttemptLog:
    """The log lines and metrics of one backend's attempts (`UpstreamClient.attempt_log`)."""

    def __init__(self, backend: str, metrics: UpstreamMetrics, secrets: SecretRegistry) -> None:
        self.backend: Final = backend
        self._metrics: Final = metrics
        self._secrets: Final = secrets
        # URL -> (the secrets' version, its redacted text): a backend calls a few URLs over and
        # over, and redacting one (str() and a scan for every known secret) costs each attempt.
        self._redacted: dict[URL, tuple[int, str]] = {}
        # The last URL redacted, the same object: found without the dict, whose key is hashed
        # by yarl in Python (~1 k instructions); plugins' URLs are parsed once each
        # (`UpstreamUrls.absolute`), so a repeated call brings the very object again.
        self._last_redacted: tuple[URL, int, str] | None = None

    def line(
        self, bound: BoundUpstream[Any], call: UpstreamCall, attempt: int, url: URL
    ) -> AttemptLine:
        """The attempt's line, to be written once its outcome is known; `url` as sent."""
        return AttemptLine(bound, call, attempt, self.redacted(url))

    def redacted(self, url: URL) -> str:
        """`redact_url(url, secrets)`, remembered until the known secrets change."""
        version = self._secrets.version
        last = self._last_redacted
        if last is not None and last[0] is url and last[1] == version:
            return last[2]
        found = self._redacted.get(url)
        if found is not None and found[0] == version:
            text = found[1]
        else:
            text = redact_url(url, self._secrets)
            if len(self._redacted) >= _REDACTED_URLS:
                self._redacted.clear()  # URLs with ids in them: bounded, and rebuilt as used
            self._redacted[url] = (version, text)
        self._last_redacted = (url, version, text)
        return text

    def failed(
        self, line: AttemptLine, stats: AttemptStats, started: float, kind: str, error: str
    ) -> None:
        """The line of an attempt sent at `started` that got no answer (`kind`: why)."""
        duration = asyncio.get_running_loop().time() - started
        self.emit(line, kind, error, duration, stats.bytes_sent)

    def emit(
        self,
        line: AttemptLine,
        status: str,
        error: str | None,
        duration: float | None = None,
        sent: int = 0,
        received: int = 0,
    ) -> None:
        """The attempt's one log line, and its metrics; `duration` None: nothing was sent."""
        call = line.call
        operation = call.operation
        self._metrics.calls.inc((self.backend, operation, status))
        duration_ms = 0.0
        if duration is not None:
            self._metrics.latency.observe((self.backend, operation), duration)
            duration_ms = _ms(duration)
        bound = line.bound
        # The fields as keywords (the logger's own dict is built once from them), in this order;
        # written out for each level, since a dict of them shared by both would be built and
        # unpacked again on every attempt, the cost this saves.
        if error is None:
            _log.info(
                "upstream.call",
                request_id=bound.request_id,
                tenant=bound.tenant,
                backend=self.backend,
                operation=operation,
                method=call.method,
                url=line.url,
                status=line.status,
                duration_ms=duration_ms,
                attempt=line.attempt,
                bytes_sent=sent,
                bytes_received=received,
            )
        else:
            _log.warning(
                "upstream.call",
                request_id=bound.request_id,
                tenant=bound.tenant,
                backend=self.backend,
                operation=operation,
                method=call.method,
                url=line.url,
                status=line.status,
                duration_ms=duration_ms,
                attempt=line.attempt,
                bytes_sent=sent,
                bytes_received=received,
                error=scrub(self._secrets, error, _ERROR_MAX),
            )


def _ms(seconds: float) -> float:
    # Milliseconds to a tenth, as round(ms, 1) (which formats a decimal string: 2.6 k
    # instructions a line against 0.5 k), but for a tie's rounding direction.
    return math.floor(seconds * 10_000 + 0.5) / 10
