"""How the PICTOFiT sandbox behaves: its settings, and the fault knobs of its control endpoints.

Sandbox control (no auth, never faulted, not recorded in ``state.requests``)
- ``POST /_sandbox/faults`` with JSON fields of ``Faults`` (partial update) answers the faults;
  ``GET /_sandbox/state`` answers a JSON summary.
- Faults apply to every other request, in this order: latency, then drop (close the connection
  without an answer), then 429 with ``Retry-After`` (``throttle_remaining``), then 503
  (``fail_next``), then 500 (``error_rate``). Random draws come from ``random.Random(seed)`` and
  are taken only when the rate is above zero. Note that aiohttp's client retries an idempotent
  request once when a reused connection is dropped, so one client call may show as two requests.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from aiohttp import hdrs, web

from gateway.plugin_api import (
    FaultAnswers,
    count_knob,
    json_error,
    rate_knob,
    seconds_knob,
)

__all__ = ["Faults", "PictofitSandboxSettings", "fault_answers"]


def _default_token_users() -> Mapping[str, str]:
    return {"sandbox-user": "sandbox-password"}


@attrs.frozen
class PictofitSandboxSettings:
    """How the sandbox behaves; every field has a default that works out of the box."""

    api_keys: frozenset[str] = frozenset({"sandbox-pictofit-key"})
    customer_id: str = "00000000-0000-4000-8000-000000000001"
    # Mutable mapping type for convenience; eq/hash ignore it so the settings stay hashable.
    token_users: Mapping[str, str] = attrs.field(factory=_default_token_users, eq=False, hash=False)
    client_secret: str = "sandbox-client-secret"  # noqa: S105 - a well-known sandbox default
    token_lifetime_s: int = 3600
    processing_delay_s: float = 0.2
    callback_timeout_s: float = 5.0
    seed: int = 0


@attrs.define
class Faults:
    """Fault knobs, mutable at run time; validated on every assignment."""

    latency_s: float = seconds_knob()
    error_rate: float = rate_knob()
    drop_rate: float = rate_knob()
    throttle_remaining: int = count_knob()
    throttle_retry_after: int = count_knob(1)
    fail_next: int = count_knob()


def fault_answers(faults: Faults) -> FaultAnswers:
    """The answers of the faults, in the service's (undocumented) JSON error format."""

    def throttle() -> web.Response | None:
        if faults.throttle_remaining <= 0:
            return None
        faults.throttle_remaining -= 1
        return json_error(
            429,
            "too many requests (sandbox fault)",
            headers={hdrs.RETRY_AFTER: str(faults.throttle_retry_after)},
        )

    return FaultAnswers(
        unavailable=lambda: json_error(503, "service unavailable (sandbox fault)"),
        server_error=lambda: json_error(500, "internal server error (sandbox fault)"),
        extra=throttle,
    )
