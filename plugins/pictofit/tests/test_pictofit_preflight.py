"""Image preflight: refused images never go upstream, and each refusal says what is wrong."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from pictofit_harness import MakePictofit, Pictofit, image, make_pictofit, pictofit, tenant_a_config
from PIL import Image

from gateway.plugin_api import ProblemError
from gateway_pictofit.config import ImageRules
from gateway_pictofit.preflight import check_image

__all__ = ["make_pictofit", "pictofit"]  # the fixtures, for this module's tests


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height`, with almost no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


async def _refused(gateway: Pictofit, content: bytes, status: int, **upload: str) -> dict[str, Any]:
    product_id = await gateway.put_product()
    configuration_id = await gateway.put_configuration(product_id)
    before = len(gateway.sandbox.requests)
    response = await gateway.upload(product_id, configuration_id, content, **upload)
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    assert len(gateway.sandbox.requests) == before, "nothing went upstream"
    problem: dict[str, Any] = await response.json()
    return problem


async def test_gif_declared_as_png_is_415(pictofit: Pictofit) -> None:
    """The type is decided by the content's magic bytes, not by the declared Content-Type."""
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 900)).save(buffer, format="GIF")
    problem = await _refused(pictofit, buffer.getvalue(), 415, content_type="image/png")
    assert "neither PNG nor JPEG" in str(problem["detail"])


async def test_png_declared_as_jpeg_goes_up_as_png(pictofit: Pictofit) -> None:
    """A real PNG with a wrong declared type is accepted and sent as image/png."""
    product_id = await pictofit.put_product()
    configuration_id = await pictofit.put_configuration(product_id)
    response = await pictofit.upload(
        product_id, configuration_id, image("PNG"), content_type="image/jpeg", filename="x.jpg"
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert (body["contentType"], body["width"], body["height"]) == ("image/png", 1200, 900)
    [stored] = pictofit.sandbox.files.values()
    assert stored.id == body["id"]
    assert stored.content_type == "image/png"
    assert stored.data == image("PNG")


async def test_too_narrow_is_422(pictofit: Pictofit) -> None:
    """Narrower than 1000 px is refused, naming the width and the rule."""
    problem = await _refused(pictofit, image("PNG", 800, 1200), 422)
    [error] = problem["errors"]
    assert error["location"] == "/file"
    assert "800 px wide" in error["message"]
    assert "1000" in error["message"]


async def test_cmyk_is_422(pictofit: Pictofit) -> None:
    """A CMYK JPEG is refused: PICTOFiT needs RGB."""
    problem = await _refused(
        pictofit, image("JPEG", mode="CMYK"), 422, content_type="image/jpeg", filename="c.jpg"
    )
    assert "CMYK" in str(problem["detail"])


async def test_over_the_size_limit_is_413(make_pictofit: MakePictofit) -> None:
    """A file over the tenant's `images.max_mb` is 413 with `limitBytes`."""

    def small_limit(url: str) -> dict[str, object]:
        return {**tenant_a_config(url), "images": {"max_mb": 0.5}}

    gateway = await make_pictofit(tenant_a=small_limit)
    padded = image("PNG") + b"\x00" * (600 * 1024)  # still a valid PNG header
    problem = await _refused(gateway, padded, 413)
    assert problem["limitBytes"] == 512 * 1024


async def test_only_the_header_is_read(pictofit: Pictofit) -> None:
    """A 12000x6000 PNG header with no pixel data is judged by its header: 72 MP, over 60."""
    problem = await _refused(pictofit, png_header_only(12000, 6000), 422)
    assert "72.0 megapixels" in str(problem["detail"])


async def test_unreadable_header_is_422(pictofit: Pictofit) -> None:
    """PNG magic followed by garbage is a clear 422, not a 500."""
    problem = await _refused(pictofit, b"\x89PNG\r\n\x1a\n" + b"garbage" * 200, 422)
    assert "cannot be read" in str(problem["detail"])


def test_check_image_reports_every_broken_rule(tmp_path: Path) -> None:
    """Several broken rules are all named, each as its own error."""
    path = tmp_path / "small.jpg"
    path.write_bytes(image("JPEG", 500, 400, "CMYK"))
    with pytest.raises(ProblemError) as caught:
        check_image(path, path.stat().st_size, "image/jpeg", ImageRules())
    assert caught.value.status == 422
    assert len(caught.value.errors) == 2


def test_check_image_answers_the_facts(tmp_path: Path) -> None:
    """An acceptable image's type, size and dimensions come from its content."""
    path = tmp_path / "ok.bin"
    path.write_bytes(image("JPEG", 1500, 1000))
    info = check_image(path, path.stat().st_size, None, ImageRules())
    assert (info.content_type, info.width, info.height) == ("image/jpeg", 1500, 1000)
    assert info.size == path.stat().st_size
