"""A tenant's PICTOFiT key rotated while the gateway runs: the next upstream request carries the
new key, an unset key is the caller's 503 until it is back, and no key is ever logged. This tests
the core's secret references through that backend."""

from __future__ import annotations

import pytest

from gateway.testing import GatewayLogs
from tests.pictofit.conftest import PICTOFIT_KEY_A, PICTOFIT_KEY_B, MakePictofit

ROTATED_KEY = "pictofit-key-A-rotated-Qe3v8Ks1"


async def test_a_rotated_api_key_goes_with_the_next_request(
    make_pictofit: MakePictofit, logs: GatewayLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """listConfigurations after each change of TEST_PICTOFIT_KEY_A: the sandbox sees the new key
    on the very next request (no restart, no stale key kept from the call before), an unset key
    answers 503 `secret-unavailable` sending nothing upstream, and neither key reaches the log."""
    gateway = await make_pictofit(
        sandbox={"api_keys": frozenset({PICTOFIT_KEY_A, PICTOFIT_KEY_B, ROTATED_KEY})},
        wait_synced=False,
    )
    product_id = await gateway.put_product()
    listing = f"/v1/products/{product_id}/configurations"

    def last_key() -> str:
        [*_, last] = (r for r in gateway.upstream_requests() if r.path.endswith("/configurations"))
        return str(last.headers["Authorization"])

    await gateway.call("GET", listing, expect=200)
    assert last_key() == f"Bearer {PICTOFIT_KEY_A}"

    monkeypatch.setenv("TEST_PICTOFIT_KEY_A", ROTATED_KEY)
    await gateway.call("GET", listing, expect=200)
    assert last_key() == f"Bearer {ROTATED_KEY}"

    monkeypatch.delenv("TEST_PICTOFIT_KEY_A")
    sent = len(gateway.upstream_requests())
    problem = await gateway.call("GET", listing, expect=503)
    assert problem["type"] == "urn:gateway:problem:secret-unavailable"
    assert len(gateway.upstream_requests()) == sent

    monkeypatch.setenv("TEST_PICTOFIT_KEY_A", PICTOFIT_KEY_A)
    await gateway.call("GET", listing, expect=200)
    assert last_key() == f"Bearer {PICTOFIT_KEY_A}"
    assert PICTOFIT_KEY_A not in logs.text()
    assert ROTATED_KEY not in logs.text()
