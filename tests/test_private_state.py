"""What the gateway holds about its tenants stays private: /readyz counts them and names none."""

from __future__ import annotations

from tests.conftest import Gateway


async def test_readiness_counts_tenants_and_names_none(gateway: Gateway) -> None:
    """/readyz answers anyone: it says how many tenants are configured and for how many each
    backend's callbacks are registered, never which tenants."""
    response = await gateway.client.get("/readyz")
    text = await response.text()
    for tenant in gateway.settings.tenants:
        assert tenant.id not in text
    checks = (await response.json())["checks"]
    assert checks["tenants"] == {"ok": True, "detail": "2 configured"}
    assert checks["callbacks:acme"] == {"ok": True, "detail": "2 of 2 tenants synced"}
    assert set(checks) == {"store", "tenants", "backend:acme", "callbacks:acme"}
