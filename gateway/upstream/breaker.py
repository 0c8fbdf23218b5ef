"""The per-backend circuit breaker: while a backend fails, calls to it are refused unsent."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Final

from gateway.upstream.errors import CircuitOpen

__all__ = ["BREAKER_GAUGE", "BreakerState", "CircuitBreaker"]

_HALF_OPEN_BUSY_RETRY_AFTER: Final = 1.0


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BREAKER_GAUGE: Final = {
    BreakerState.CLOSED: 0.0,
    BreakerState.HALF_OPEN: 1.0,
    BreakerState.OPEN: 2.0,
}
"""The value of the `gateway_upstream_breaker_state` gauge for each state."""


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `reset_after` s lets one probe through.

    Failures are connection errors, timeouts and 5xx; any other answer (4xx included, 429 too)
    shows the backend is alive and counts as a success. A call that ends without a verdict
    (cancelled, credentials unavailable) must `release()` so that a half-open probe slot is freed.
    """

    def __init__(
        self,
        threshold: int,
        reset_after: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        name: str = "",
    ) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self.name = name
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_after:
            return BreakerState.HALF_OPEN
        return self._state

    def before_call(self) -> None:
        state = self.state
        if state is BreakerState.CLOSED:
            return
        now = self._clock()
        if state is BreakerState.OPEN:
            raise CircuitOpen(self._opened_at + self.reset_after - now, self.name)
        # Half-open: one probe at a time; a probe stuck for longer than reset_after is presumed
        # lost, so that a leaked probe cannot keep the breaker shut for ever.
        if self._probe_started is not None and now - self._probe_started < self.reset_after:
            raise CircuitOpen(_HALF_OPEN_BUSY_RETRY_AFTER, self.name)
        self._state = BreakerState.HALF_OPEN
        self._probe_started = now

    def record_success(self) -> None:
        if self.state is BreakerState.OPEN:
            return  # a slow call begun before the breaker opened: no news of the present
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_started = None

    def record_failure(self) -> None:
        state = self.state
        if state is BreakerState.OPEN:
            return
        if state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self._failures >= self.threshold:
            self._open()

    def release(self) -> None:
        """The call ended without telling anything about the backend's health."""
        if self._state is BreakerState.HALF_OPEN:
            self._probe_started = None

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0
        self._probe_started = None
