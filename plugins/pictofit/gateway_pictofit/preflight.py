"""Checking an uploaded image against PICTOFiT's input rules before anything goes upstream.

The file is already spooled to disk by the core. Its type is decided by its first bytes, never by
the declared Content-Type; its size by the spooled length; its width, pixels and colour mode by
the image header alone (`Image.open` parses the header and decodes nothing), so a check costs a
few kilobytes of reading whatever the file's size.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Final

import attrs
from PIL import Image, UnidentifiedImageError

from gateway.plugin_api import (
    FieldError,
    ProblemError,
    invalid_input,
    payload_too_large,
    unsupported_media_type,
)
from gateway_pictofit.config import ImageRules

__all__ = ["ImageInfo", "check_image", "sniff"]

_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png", "PNG"),
    (b"\xff\xd8\xff", "image/jpeg", "JPEG"),
)
# Colour spaces that are not RGB; grey and palette images render as RGB and pass.
_NOT_RGB: Final = frozenset({"CMYK", "YCbCr", "LAB", "HSV"})
_LOCATION: Final = "/file"


@attrs.frozen
class ImageInfo:
    content_type: str
    width: int
    height: int
    size: int


def sniff(head: bytes) -> tuple[str, str] | None:
    """(media type, Pillow format) from the file's first bytes; None if neither PNG nor JPEG."""
    for magic, media_type, pil_format in _MAGIC:
        if head.startswith(magic):
            return media_type, pil_format
    return None


def _unprocessable(detail: str, message: str) -> ProblemError:
    return invalid_input(detail, [FieldError(_LOCATION, message)])


def check_image(path: Path, size: int, declared: str | None, rules: ImageRules) -> ImageInfo:
    """The image's facts, or the problem that refuses it (413, 415 or 422). Blocking: run it in a
    thread."""
    limit = rules.max_bytes
    if size > limit:
        raise payload_too_large(
            limit, f"the image is {size} bytes; PICTOFiT takes at most {limit} bytes"
        )
    with path.open("rb") as f:
        head = f.read(16)
    sniffed = sniff(head)
    if sniffed is None:
        shown = f" (declared {declared})" if declared else ""
        raise unsupported_media_type(
            f"the file is neither PNG nor JPEG by its content{shown}; "
            "PICTOFiT accepts image/png and image/jpeg"
        )
    media_type, pil_format = sniffed
    try:
        with warnings.catch_warnings():
            # Pillow warns about large pixel counts; the limit below is PICTOFiT's, not Pillow's.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=[pil_format]) as image:
                width, height = image.size
                mode = image.mode
    except Image.DecompressionBombError:
        raise _unprocessable(
            "the image has too many pixels",
            f"at most {rules.max_megapixels:g} megapixels",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise _unprocessable(
            f"the file starts like {pil_format} but its header cannot be read",
            f"not a readable {pil_format} image",
        ) from None
    problems = []
    if width < rules.min_width:
        problems.append(f"{width} px wide; PICTOFiT needs at least {rules.min_width} px")
    if width * height > rules.max_megapixels * 1_000_000:
        problems.append(
            f"{width}x{height} is {width * height / 1e6:.1f} megapixels; "
            f"at most {rules.max_megapixels:g}"
        )
    if mode in _NOT_RGB:
        problems.append(f"colour mode {mode}; PICTOFiT needs RGB (sRGB), not {mode}")
    if problems:
        raise invalid_input(
            "the image does not meet PICTOFiT's input rules: " + "; ".join(problems),
            [FieldError(_LOCATION, p) for p in problems],
        )
    return ImageInfo(media_type, width, height, size)
