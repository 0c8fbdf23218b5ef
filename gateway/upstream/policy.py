"""How one backend's client behaves: its timeouts, retries and circuit breaking."""

from __future__ import annotations

import attrs

__all__ = ["UpstreamPolicy"]

_positive = attrs.validators.gt(0.0)
_not_negative = attrs.validators.ge(0.0)
_at_least_one = attrs.validators.ge(1)


@attrs.frozen
class UpstreamPolicy:
    """Timeouts, retries and circuit breaking of one backend's client."""

    connect_timeout: float = attrs.field(default=5.0, validator=_positive)
    attempt_timeout: float = attrs.field(default=30.0, validator=_positive)  # one attempt, total
    deadline: float = attrs.field(default=60.0, validator=_positive)  # one caller request, all in
    max_attempts: int = attrs.field(default=3, validator=_at_least_one)
    # Full jitter: sleep uniform(0, min(cap, base * 2**(n-1))) before attempt n+1.
    backoff_base: float = attrs.field(default=0.1, validator=_not_negative)
    backoff_cap: float = attrs.field(default=2.0, validator=_not_negative)
    retry_after_cap: float = attrs.field(default=10.0, validator=_not_negative)  # longer: fail now
    breaker_threshold: int = attrs.field(default=5, validator=_at_least_one)  # consecutive failures
    breaker_reset: float = attrs.field(default=30.0, validator=_positive)  # open, before a probe
    max_connections: int = attrs.field(default=100, validator=_at_least_one)  # per backend
