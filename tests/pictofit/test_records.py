"""PICTOFiT records a product once, after the service accepted it: the core only checked. This
tests the core's store records (which writes it makes) through that backend."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway.state import STORE
from gateway.store.protocol import Store
from tests.conftest import CALLER_KEY_A
from tests.pictofit.conftest import Pictofit


async def test_pictofit_records_once_after_the_service_accepted(
    pictofit: Pictofit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """putProduct writes its record in one store write after PICTOFiT answered: nothing before
    the upstream call, no claim to release; the create is a 201 with its creation time, the
    replacement a 200 that keeps it; a refused create (an unknown type, a failing service) writes
    nothing."""
    store: Store = pictofit.client.app[STORE]
    writes: list[str] = []
    for name in ("put_resource", "claim_resource", "release_resource", "update_resource"):
        original = getattr(store, name)

        def counting(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            writes.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(store, name, counting)

    product_id = str(uuid.uuid4())
    path = f"/v1/products/{product_id}"
    await pictofit.call("PUT", path, CALLER_KEY_A, 422, json={"name": "x", "type": "NOPE"})
    pictofit.sandbox.faults.fail_next = 5  # every attempt fails: 5xx to the caller
    failed = await pictofit.client.put(
        path, json={"name": "x", "type": "GARMENT_2D"}, headers=pictofit.auth()
    )
    assert failed.status >= 500
    pictofit.sandbox.faults.fail_next = 0
    assert writes == []
    assert await store.get_resource("product", product_id) is None

    created = await pictofit.call(
        "PUT", path, CALLER_KEY_A, 201, json={"name": "Silk", "type": "GARMENT_2D"}
    )
    assert writes == ["put_resource"]
    record = await store.get_resource("product", product_id)
    assert record is not None
    assert dict(record.attributes) == {"name": "Silk", "type": "GARMENT_2D", "sku": None}
    assert created["createdAt"] == record.created_at
    replaced = await pictofit.call(
        "PUT", path, CALLER_KEY_A, 200, json={"name": "Wool", "type": "GARMENT_2D"}
    )
    assert (replaced["name"], replaced["createdAt"]) == ("Wool", created["createdAt"])
