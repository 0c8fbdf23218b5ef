"""Two tenants sharing one Artifi website: whatever user a tenant names first is its own."""

from __future__ import annotations

from typing import Any

from artifi_harness import (
    DELETE,
    LIST,
    TENANT_B,
    UPDATE_USER,
    UPLOAD,
    WEBSITE_A,
    ArtifiGateway,
    MakeArtifi,
    image,
    make_artifi,
)

__all__ = ["make_artifi"]  # the fixtures, for this module's tests

SHARED_WEBSITE = {"website_id": WEBSITE_A.website_id, "client_key": "env:TEST_ARTIFI_KEY_A"}


async def json_of(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def test_a_user_is_its_first_tenants(make_artifi: MakeArtifi) -> None:
    """A uploads for a user; on the same website B can neither list, delete, merge, nor upload
    for that user, in any spelling of its id, and none of B's attempts reaches Artifi."""
    artifi: ArtifiGateway = await make_artifi(tenant_b=SHARED_WEBSITE)
    photo = await json_of(await artifi.upload("alice", image("JPEG")), 201)
    sent = len(artifi.sandbox.requests)

    full_width = "\uff41\uff4c\uff49\uff43\uff45"  # "alice" in full-width letters
    for spelling in ("alice", "ALICE", "Alice", full_width):
        b = TENANT_B
        assert (await artifi.photos(spelling, tenant=b)).status == 404
        assert (await artifi.delete(spelling, photo["id"], tenant=b)).status == 404
        assert (await artifi.upload(spelling, image("JPEG"), tenant=b)).status == 404
        assert (await artifi.merge("b-user", spelling, tenant=b)).status == 404
        assert (await artifi.merge(spelling, "b-guest", tenant=b)).status == 404
    moved = await artifi.upload("b-user", image("JPEG"), tenant=TENANT_B, previousUserId="alice")
    assert moved.status == 404
    assert not [
        r for r in artifi.sandbox.requests[sent:] if r.path in {UPLOAD, LIST, DELETE, UPDATE_USER}
    ], "none of B's attempts reached Artifi"

    page = await json_of(await artifi.photos("alice"), 200)
    assert [p["id"] for p in page["items"]] == [photo["id"]]
    assert (await artifi.delete("alice", photo["id"])).status == 204


async def test_each_tenant_keeps_its_own_users(make_artifi: MakeArtifi) -> None:
    """On a shared website each tenant works with the users it named first, and A's guest can be
    merged into A's user but not into B's."""
    artifi: ArtifiGateway = await make_artifi(tenant_b=SHARED_WEBSITE)
    await json_of(await artifi.upload("guest-a", image("JPEG"), guest="true"), 201)
    await json_of(await artifi.upload("bob", image("JPEG"), tenant=TENANT_B), 201)
    assert (await artifi.merge("bob", "guest-a", tenant=TENANT_B)).status == 404
    assert (await artifi.merge("guest-a", "bob")).status == 404
    merged = await json_of(await artifi.merge("alice", "guest-a"), 200)
    assert merged["merged"] is True
    page = await json_of(await artifi.photos("alice"), 200)
    assert page["total"] == 1
    page_b = await json_of(await artifi.photos("bob", tenant=TENANT_B), 200)
    assert page_b["total"] == 1
