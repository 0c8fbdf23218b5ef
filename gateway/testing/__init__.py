"""The kit a backend's tests are built with: plain async context managers, no pytest needed.

- `sandbox_gateway(backend)`: the backend's simulator (its `gateway_sandbox()` hook's `Sandbox`)
  served on a local port, and a real gateway server in front of it with one tenant configured
  against it (the sandbox's `tenant_config`) and a fresh caller key. Every answer the gateway
  sends is checked against the contract it serves; a drift fails the block when it ends.
  `tenants` configures several tenants on the backend, `sandbox_app` serves a simulator the test
  tuned instead of the plugin's default one.
- `ContractCheck`: that check, for apps a test builds itself; `assert_conforms(schema, body)`
  holds one body against one of the contract's schemas.
- `webhook_subscriber()`: a real local HTTP server that records each delivery and verifies its
  Standard Webhooks signature with the secrets of the subscriptions made for it (a delivery that
  does not verify is refused with a 401, and fails the block when it ends).
- `logging_to(path)` and `GatewayLogs`: the gateway's log lines (upstream calls, a backend's own
  lines) as JSON in a file, and read back from a point on.

`gateway.plugin_api` re-exports all of it, so a plugin's tests import the plugin API only;
`gateway.pytest_plugin` offers the same as pytest fixtures (`start_gateway`, `subscriber`,
`contract_check`, `gateway_logs`).
"""

from __future__ import annotations

from gateway.testing.contract_check import (
    ContractCheck,
    assert_conforms,
    problem_validator,
    schema_validator,
)
from gateway.testing.logs import GatewayLogs, logging_to
from gateway.testing.sandbox import (
    SANDBOX_TENANT,
    SandboxGateway,
    StartGateway,
    TenantTable,
    sandbox_gateway,
)
from gateway.testing.subscriber import (
    Delivery,
    WebhookSubscriber,
    verify_webhook,
    webhook_subscriber,
)
from gateway.testing.waiting import eventually

__all__ = [
    "SANDBOX_TENANT",
    "ContractCheck",
    "Delivery",
    "GatewayLogs",
    "SandboxGateway",
    "StartGateway",
    "TenantTable",
    "WebhookSubscriber",
    "assert_conforms",
    "eventually",
    "logging_to",
    "problem_validator",
    "sandbox_gateway",
    "schema_validator",
    "verify_webhook",
    "webhook_subscriber",
]
