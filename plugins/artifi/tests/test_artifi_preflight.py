"""Uploads are checked against the website's rules before anything goes to Artifi."""

from __future__ import annotations

import asyncio
import struct
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import attrs
from artifi_harness import (
    SETTINGS,
    TENANT_B,
    UPLOAD,
    WEBSITE_A,
    Answer,
    ArtifiGateway,
    MakeArtifi,
    artifi,
    image,
    make_artifi,
)

__all__ = ["artifi", "make_artifi"]  # the fixtures, for this module's tests

MB = 1024 * 1024


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size and has no pixels: only a header-reading check can pass it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


async def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_too_large_is_413_before_upstream(artifi: ArtifiGateway) -> None:
    """A file over the website's FileSize gets 413 with limitBytes; Artifi never sees it."""
    padded = image("PNG", (50, 50)) + b"\0" * MB  # a valid header, past tenant B's 1 MB
    response = await artifi.upload(
        "user-1", padded, tenant=TENANT_B, filename="big.png", content_type="image/png"
    )
    body = await problem_of(response, 413)
    assert body["type"] == "urn:gateway:problem:payload-too-large"
    assert body["limitBytes"] == MB
    assert artifi.sandbox.uploads_received == 0


async def test_type_is_judged_by_content_not_name(artifi: ArtifiGateway) -> None:
    """A GIF called .png and a text called .jpg get 415; a PNG called .jpg is accepted as PNG."""
    gif = await artifi.upload("u", image("GIF"), filename="a.png", content_type="image/png")
    body = await problem_of(gif, 415)
    assert "GIF" in body["detail"]
    assert body["allowedTypes"] == ["JPEG", "JPG", "PNG"]
    text = await artifi.upload("u", b"hello, not an image " * 10, filename="b.jpg")
    assert "not an image" in (await problem_of(text, 415))["detail"]
    assert artifi.sandbox.uploads_received == 0

    png = await artifi.upload("u", image("PNG"), filename="c.jpg", content_type="image/jpeg")
    photo = await problem_of(png, 201)
    assert (photo["extension"], photo["mimeType"]) == (".png", "image/png")


async def test_dimensions_over_the_limit_are_422(artifi: ArtifiGateway) -> None:
    """Wider or taller than the website's Dimension: 422 at /file, nothing sent upstream."""
    wide = await artifi.upload(
        "u", image("PNG", (801, 10)), tenant=TENANT_B, content_type="image/png"
    )
    body = await problem_of(wide, 422)
    assert [e["location"] for e in body["errors"]] == ["/file"]
    assert "801x10" in body["detail"]
    assert "800x600" in body["detail"]
    ok = await artifi.upload(
        "u", image("PNG", (800, 600)), tenant=TENANT_B, content_type="image/png"
    )
    assert ok.status == 201
    assert artifi.sandbox.uploads_received == 1


async def test_dimensions_come_from_the_header_alone(artifi: ArtifiGateway) -> None:
    """Header-only PNGs: 5000x5000 is refused for its size, a pixel bomb for its pixel count."""
    body = await problem_of(await artifi.upload("u", png_header_only(5000, 5000)), 422)
    assert "5000x5000" in body["detail"]
    bomb = await problem_of(await artifi.upload("u", png_header_only(40000, 40000)), 422)
    assert "too many pixels" in bomb["detail"]
    assert artifi.sandbox.uploads_received == 0


async def test_settings_are_cached_per_tenant_with_ttl(make_artifi: MakeArtifi) -> None:
    """GetImageSettings is asked once per tenant while fresh, and again once expired."""
    # Long enough that four calls on a loaded 2-core CI machine stay within it (0.2 s did not).
    artifi = await make_artifi(tenant_a={"settings_ttl_s": 2.0})
    for _ in range(3):
        assert (await artifi.upload("u", image())).status == 201
    assert len(artifi.requests_to(SETTINGS)) == 1
    settings_b = await artifi.client.get("/v1/photo-settings", headers=artifi.auth(TENANT_B))
    assert settings_b.status == 200
    assert len(artifi.requests_to(SETTINGS)) == 2
    await asyncio.sleep(2.05)
    assert (await artifi.upload("u", image())).status == 201
    assert len(artifi.requests_to(SETTINGS)) == 3


async def test_unreadable_settings_are_502(artifi: ArtifiGateway) -> None:
    """Settings without ImageExtensions cannot be checked against: 502, no upload."""
    artifi.tap.once(
        SETTINGS, Answer(200, {"Response": "Success", "Data": {"FileSize": 5}, "ErrorCode": None})
    )
    body = await problem_of(await artifi.upload("u", image()), 502)
    assert "ImageExtensions" in body["detail"]
    assert artifi.sandbox.uploads_received == 0


async def test_large_upload_memory_stays_bounded(make_artifi: MakeArtifi, tmp_path: Path) -> None:
    """A 12 MB photo passes through the gateway without being held in memory."""
    size = 12 * MB
    artifi = await make_artifi()
    artifi.sandbox.websites[WEBSITE_A.website_id] = attrs.evolve(WEBSITE_A, max_file_mb=20)
    # The sandbox would buffer the whole part itself: answer without reading it.
    artifi.tap.once(
        UPLOAD,
        Answer(
            200,
            {
                "Response": "Success",
                "Data": {"Id": 1, "ImageName": "big", "UniqueImageName": "u", "Width": 64},
                "ErrorCode": None,
            },
        ),
    )
    path = tmp_path / "big.jpg"
    with path.open("wb") as out:
        out.write(image("JPEG", (64, 48)))
        for _ in range(size // MB):
            out.write(b"\0" * MB)
    settings = await artifi.client.get("/v1/photo-settings", headers=artifi.auth())
    assert (await settings.json())["maxBytes"] == 20 * MB

    tracemalloc.start()
    try:
        with path.open("rb") as handle:
            form = aiohttp.FormData()
            form.add_field("file", handle, filename="big.jpg", content_type="image/jpeg")
            response = await artifi.client.post(
                "/v1/users/u/photos", data=form, headers=artifi.auth()
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    photo = await problem_of(response, 201)
    assert (photo["width"], photo["height"]) == (64, 48)  # height from the gateway's own read
    assert peak < 4 * MB, f"peak {peak / MB:.1f} MB for a {size / MB:.0f} MB upload"
