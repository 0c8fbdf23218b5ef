"""What the gateway does when Artifi fails: uploads never resent, deletes checked, calls bounded."""

from __future__ import annotations

import asyncio

import pytest
from artifi_harness import (
    DELETE,
    LIST,
    TENANT_B,
    UPLOAD,
    ArtifiGateway,
    Drop,
    Late,
    MakeArtifi,
    artifi,
    image,
    make_artifi,
)

from gateway.plugin_api import ProblemError
from gateway_artifi.client import Slots

__all__ = ["artifi", "make_artifi"]  # the fixtures, for this module's tests


async def test_failed_upload_is_not_retried(artifi: ArtifiGateway) -> None:
    """A 503 or a dropped connection on upload reaches the caller; the upload went once."""
    settings = await artifi.client.get("/v1/photo-settings", headers=artifi.auth())
    assert settings.status == 200
    artifi.sandbox.faults.fail_next = 1
    response = await artifi.upload("u", image())
    assert response.status == 502, await response.text()
    assert artifi.sandbox.uploads_received == 1

    artifi.tap.once(UPLOAD, Drop(after_handling=True))
    response = await artifi.upload("u", image())
    assert response.status == 502, await response.text()
    assert artifi.sandbox.uploads_received == 2
    assert len(artifi.sandbox.user_photos(1234, "u")) == 1  # stored once, never twice


async def test_lost_delete_answer_is_checked_in_the_list(artifi: ArtifiGateway) -> None:
    """Deleted upstream but the answer lost: the list shows it gone, 204 and photo.deleted."""
    photo = await (await artifi.upload("u", image())).json()
    artifi.tap.once(DELETE, Drop(after_handling=True))
    lists_before = len(artifi.requests_to(LIST))
    response = await artifi.delete("u", photo["id"])
    assert response.status == 204, await response.text()
    assert len(artifi.requests_to(DELETE)) == 1
    assert len(artifi.requests_to(LIST)) == lists_before + 1
    assert artifi.sandbox.user_photos(1234, "u") == []
    [event] = await artifi.events("photo.deleted")
    assert event["data"] == {"userId": "u", "photoId": photo["id"]}


async def test_delete_that_did_not_happen_answers_the_error(artifi: ArtifiGateway) -> None:
    """The connection dropped before Artifi deleted: the photo is listed, the caller gets 502."""
    photo = await (await artifi.upload("u", image())).json()
    artifi.tap.once(DELETE, Drop(after_handling=False))
    response = await artifi.delete("u", photo["id"])
    assert response.status == 502
    assert (await response.json())["type"] == "urn:gateway:problem:upstream-unavailable"
    assert len(artifi.requests_to(DELETE)) == 1  # not resent blindly
    assert [p.id for p in artifi.sandbox.user_photos(1234, "u")] == [int(photo["id"])]
    assert await artifi.events("photo.deleted") == []
    # The caller may retry: this time it goes through.
    assert (await artifi.delete("u", photo["id"])).status == 204


async def test_delete_timeout_is_checked_in_the_list(make_artifi: MakeArtifi) -> None:
    """A delete whose answer comes after the attempt timeout is confirmed by the list."""
    artifi = await make_artifi(upstream={"attempt_timeout": 0.2})
    photo = await (await artifi.upload("u", image())).json()
    artifi.tap.once(DELETE, Late(0.4))
    response = await artifi.delete("u", photo["id"])
    assert response.status == 204, await response.text()
    assert len(artifi.requests_to(DELETE)) == 1


async def test_delete_check_pages_through_the_list(make_artifi: MakeArtifi) -> None:
    """The check reads every page: a photo on the last page counts as still there."""
    artifi = await make_artifi(tenant_a={"scan_page_size": 2})
    ids = [(await (await artifi.upload("u", image())).json())["id"] for _ in range(5)]
    artifi.tap.once(DELETE, Drop(after_handling=False))
    lists_before = len(artifi.requests_to(LIST))
    assert (await artifi.delete("u", ids[-1])).status == 502
    pages = [r.query["pageIndex"] for r in artifi.requests_to(LIST)[lists_before:]]
    assert pages == ["1", "2", "3"]


async def test_concurrency_to_artifi_is_bounded_per_tenant(make_artifi: MakeArtifi) -> None:
    """At most max_concurrency calls per tenant are in flight; another tenant has its own."""
    artifi = await make_artifi(tenant_a={"max_concurrency": 2})
    artifi.tap.delay_s = 0.05
    answers = await asyncio.gather(*(artifi.photos(f"u{i}") for i in range(6)))
    assert [r.status for r in answers] == [200] * 6
    assert artifi.tap.max_in_flight == 2

    artifi.tap.max_in_flight = 0
    answers = await asyncio.gather(*(artifi.photos(f"u{i}", tenant=TENANT_B) for i in range(6)))
    assert [r.status for r in answers] == [200] * 6
    assert artifi.tap.max_in_flight > 2


async def test_no_free_slot_before_the_deadline_is_503() -> None:
    """Waiting for a concurrency slot ends with the caller's deadline: 503 with Retry-After."""
    runtime = Slots()
    loop = asyncio.get_running_loop()
    async with runtime.slot("t", 1, loop.time() + 5):
        with pytest.raises(ProblemError) as caught:
            async with runtime.slot("t", 1, loop.time() + 0.05):
                pytest.fail("a second slot was granted")
        async with runtime.slot("other-tenant", 1, loop.time() + 0.05):
            pass
    assert (caught.value.status, caught.value.slug) == (503, "backend-busy")
    assert caught.value.headers["Retry-After"] == "1"
    async with runtime.slot("t", 1, loop.time() + 0.05):
        pass  # released again
