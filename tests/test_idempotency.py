"""Idempotency-Key: one upstream upload per key and request, whatever the retries."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import FormData

from tests.conftest import CALLER_KEY_B, Gateway


def photo(content: bytes = b"\xff\xd8\xff" + b"j" * 4000) -> FormData:
    form = FormData()
    form.add_field("file", content, filename="me.jpg", content_type="image/jpeg")
    form.add_field("guest", "true")
    return form


async def upload(gateway: Gateway, key: str | None, caller: str | None = None, **kw: Any) -> Any:
    headers = gateway.auth(caller) if caller else gateway.auth()
    if key is not None:
        headers["Idempotency-Key"] = key
    return await gateway.client.post("/v1/users/u-1/photos", data=photo(**kw), headers=headers)


async def test_same_key_same_request_uploads_once(gateway: Gateway) -> None:
    """The retry gets the stored answer, marked as replayed; the upstream saw one upload."""
    first = await upload(gateway, "key-1")
    assert first.status == 201, await first.text()
    again = await upload(gateway, "key-1")
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    assert gateway.upstream.photos_uploaded == 1


async def test_without_a_key_every_request_uploads(gateway: Gateway) -> None:
    """No key, no de-duplication: uploads are never retried or merged silently."""
    await upload(gateway, None)
    await upload(gateway, None)
    assert gateway.upstream.photos_uploaded == 2


async def test_same_key_different_request_is_422(gateway: Gateway) -> None:
    """Reusing a key for another file is refused, naming the header."""
    await upload(gateway, "key-2")
    other = await upload(gateway, "key-2", content=b"\xff\xd8\xff" + b"k" * 4000)
    assert other.status == 422
    body = await other.json()
    assert body["errors"][0]["location"] == "Idempotency-Key"
    assert gateway.upstream.photos_uploaded == 1


async def test_concurrent_duplicates_wait_for_the_first(gateway: Gateway) -> None:
    """Duplicates arriving while the first upload runs wait and get its answer."""
    gateway.upstream.photo_delay = 0.3
    answers = await asyncio.gather(*(upload(gateway, "key-3") for _ in range(4)))
    assert [a.status for a in answers] == [201] * 4
    bodies = [await a.json() for a in answers]
    assert all(b == bodies[0] for b in bodies)
    assert gateway.upstream.photos_uploaded == 1


async def test_failed_request_releases_the_key(gateway: Gateway) -> None:
    """An upstream failure is not stored: the caller may retry with the same key."""
    gateway.upstream.fail_next = 1
    failed = await upload(gateway, "key-4")
    assert failed.status == 502
    retried = await upload(gateway, "key-4")
    assert retried.status == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert gateway.upstream.photos_uploaded == 1


async def test_keys_are_per_tenant(gateway: Gateway) -> None:
    """Another tenant's identical key is another request."""
    await upload(gateway, "shared-key")
    other = await upload(gateway, "shared-key", caller=CALLER_KEY_B)
    assert other.status == 201
    assert "Idempotent-Replayed" not in other.headers
    assert gateway.upstream.photos_uploaded == 2
