"""Type names cached per tenant until the TTL: the core's `TtlCache` (its clock moved by the test)
through PICTOFiT's type lists. (The type names themselves are tested in plugins/pictofit/tests.)"""

from __future__ import annotations

import pytest

from gateway import caching
from tests.pictofit.conftest import Pictofit


def _types_calls(gateway: Pictofit, path: str) -> int:
    return sum(1 for r in gateway.sandbox.requests if r.path == path)


async def test_type_lists_are_cached_per_tenant_until_the_ttl(
    pictofit: Pictofit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list is fetched once per tenant while fresh, and again once it is older than the TTL."""
    now = [1000.0]
    monkeypatch.setattr(caching, "clock", lambda: now[0])
    for _ in range(3):
        await pictofit.put_product()
    await pictofit.call("GET", "/v1/product-types", expect=200)
    assert _types_calls(pictofit, "/products/types") == 1
    from tests.conftest import CALLER_KEY_B

    await pictofit.put_product(key=CALLER_KEY_B)  # tenant B has its own cache
    assert _types_calls(pictofit, "/products/types") == 2
    now[0] += 301  # the default types_ttl_s is 300
    await pictofit.put_product()
    assert _types_calls(pictofit, "/products/types") == 3
