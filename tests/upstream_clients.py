"""Upstream clients for their own tests: a fast policy, a credentials provider that records its
calls, clients built (and closed) by `make_client`, the fixture, bound to a request, and the
`upstream.call` lines they log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.metrics import UpstreamMetrics
from gateway.plugin_api import Credentials, CredentialsRequest
from gateway.redaction import SecretRegistry
from gateway.upstream import BoundUpstream, UpstreamClient, UpstreamPolicy

SECRET = "SECRET-KEY-123"
FAST = UpstreamPolicy(
    connect_timeout=1.0,
    attempt_timeout=2.0,
    deadline=5.0,
    max_attempts=3,
    backoff_base=0.001,
    backoff_cap=0.01,
    retry_after_cap=2.0,
    breaker_threshold=100,
    breaker_reset=30.0,
)


class Provider:
    """A credentials provider that records its calls; token `n` is handed out on the n-th call."""

    def __init__(self, *, query: dict[str, str] | None = None) -> None:
        self.calls: list[bool] = []
        self.refused: list[Credentials | None] = []  # what each call was told was refused
        self.query = query or {}

    async def __call__(self, request: CredentialsRequest) -> Credentials:
        refresh = request.refused is not None
        self.calls.append(refresh)
        self.refused.append(request.refused)
        token = f"tok-{len(self.calls)}" + ("-fresh" if refresh else "")
        return Credentials(
            headers={"Authorization": f"Bearer {token}"},
            query=self.query,
            secrets=frozenset({token, *self.query.values()}),
        )


def calls(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "upstream.call"]


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., Awaitable[UpstreamClient]]]:
    clients: list[UpstreamClient] = []

    async def build(
        provider: Provider | None = None,
        policy: UpstreamPolicy = FAST,
        registry: CollectorRegistry | None = None,
    ) -> UpstreamClient:
        client = UpstreamClient(
            "acme",
            policy=policy,
            credentials=provider or Provider(),
            metrics=UpstreamMetrics(registry or CollectorRegistry()),
            secrets=SecretRegistry(),
        )
        await client.start()
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.close()


def bound(client: UpstreamClient, **kwargs: Any) -> BoundUpstream:
    return client.bind(tenant="t1", config=None, request_id="req-1", operation="getThing", **kwargs)
