"""The one instrumented HTTP client through which the gateway calls third-party backends.

One `UpstreamClient` (one persistent `ClientSession`) per backend, for the life of the app. A
backend plugin gets a `BoundUpstream` per caller request (`client.bind(...)`), which knows the
tenant, the request id and the caller's deadline, and sends through it:

- credentials are asked of the plugin for every attempt and merged over the request (a caller's
  `Authorization` never goes upstream); `X-Request-ID` is always sent;
- every attempt (every request actually sent, and every call refused before sending) writes exactly
  one `upstream.call` log line, with the URL redacted and never a body or a header value;
- idempotent calls are retried on connection errors, timeouts, 5xx and 429, with capped exponential
  backoff and full jitter (or the upstream's `Retry-After`), within the caller's deadline;
- a per-backend circuit breaker refuses calls, without sending anything, while the backend fails;
- whatever goes wrong reaches the caller as a `ProblemError` subclass defined here.

One module per role: `policy` (UpstreamPolicy), `errors` (what the caller sees), `breaker`,
`values` (UpstreamResponse, the prepared call), `middlewares` (what the session does to each
attempt), `failures` (an answer classified: retry, refresh or fail), `attempt_log` (each
attempt's log line and metrics), `streams` (a 2xx handed to the plugin unread), `urls` (the URLs
a client calls, parsed and checked against a key's origin once), `client` (UpstreamClient: the
session and the attempt loop) and `bound` (BoundUpstream, CredentialsRequest). Import from
`gateway.upstream`: the names below are the package's interface.
"""

from gateway.upstream.bound import BoundUpstream, CredentialsProvider, CredentialsRequest
from gateway.upstream.breaker import BreakerState, CircuitBreaker
from gateway.upstream.client import UpstreamClient
from gateway.upstream.errors import (
    CircuitOpen,
    UpstreamCredentialsRejected,
    UpstreamError,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.policy import UpstreamPolicy
from gateway.upstream.values import BodyFactory, UpstreamResponse

__all__ = [
    "BodyFactory",
    "BoundUpstream",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpen",
    "CredentialsProvider",
    "CredentialsRequest",
    "UpstreamClient",
    "UpstreamCredentialsRejected",
    "UpstreamError",
    "UpstreamPolicy",
    "UpstreamRejected",
    "UpstreamResponse",
    "UpstreamServerError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]
