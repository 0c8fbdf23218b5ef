"""The website's upload rules (GetImageSettings) and the checks an upload passes before it is sent.

A refusal here costs the caller a clear 413/415/422 and costs Artifi nothing. The file is judged
by its content, never its name or declared type, and only its header is read: Pillow's `open`
parses the header lazily and no pixel is decoded, so a large file costs no memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import attrs
from PIL import Image, UnidentifiedImageError

from gateway.plugin_api import (
    FieldError,
    UploadedFile,
    invalid_input,
    payload_too_large,
    unsupported_media_type,
)
from gateway_artifi.config import Assumptions

__all__ = ["ImageFacts", "UploadRules", "check_upload", "identify"]


class UnreadableSettings(ValueError):
    """GetImageSettings answered something this module cannot read as rules."""


def _number(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key)
    if value is None or value == "":
        if default is None:
            raise UnreadableSettings(f"image settings have no {key}")
        return default
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise UnreadableSettings(f"image settings {key} is not a number: {value!r}") from None


@attrs.frozen
class UploadRules:
    """A website's rules for user photos; a limit of None means there is none."""

    allowed_types: tuple[str, ...]  # upper case, as the website lists them (JPEG, JPG, PNG)
    max_bytes: int | None
    max_width: int | None
    max_height: int | None
    dpi: int

    @classmethod
    def from_data(cls, data: Any, assumptions: Assumptions) -> UploadRules:
        """From the (key-folded) `Data` of GetImageSettings."""
        if not isinstance(data, dict):
            raise UnreadableSettings("image settings are not an object")
        raw_types = data.get("imageextensions")
        if not isinstance(raw_types, str):
            raise UnreadableSettings("image settings have no ImageExtensions")
        types = tuple(
            dict.fromkeys(t.strip().lstrip(".").upper() for t in raw_types.split(",") if t.strip())
        )
        dimension = data.get("dimension")
        dimension = dimension if isinstance(dimension, dict) else {}

        def limit(value: int) -> int | None:
            return None if value <= 0 and assumptions.zero_limit_is_unlimited else value

        megabytes = _number(data, "filesize")
        return cls(
            allowed_types=types,
            max_bytes=limit(megabytes * assumptions.file_size_unit_bytes),
            max_width=limit(_number(dimension, "width", 0)),
            max_height=limit(_number(dimension, "height", 0)),
            dpi=_number(data, "imagedpi", 0),
        )

    def allows(self, pillow_format: str, assumptions: Assumptions) -> bool:
        names = {pillow_format.upper()}
        for group in assumptions.same_formats:
            upper = {n.upper() for n in group}
            if names & upper:
                names |= upper
        return bool(names & set(self.allowed_types))


@attrs.frozen
class ImageFacts:
    """What the image's header says."""

    format: str  # Pillow's name: JPEG, PNG, ...
    width: int
    height: int

    @property
    def mime_type(self) -> str:
        return Image.MIME.get(self.format, "application/octet-stream")

    @property
    def extension(self) -> str:
        return ".jpg" if self.format == "JPEG" else "." + self.format.lower()


class _TooManyPixels(Exception):
    pass


def _identify(upload: UploadedFile) -> ImageFacts | None:
    try:
        with upload.open() as handle, Image.open(handle) as image:
            if image.format is None:
                return None
            width, height = image.size
            return ImageFacts(image.format.upper(), width, height)
    except Image.DecompressionBombError:
        raise _TooManyPixels from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        # Pillow reports a malformed header with any of these.
        return None


async def identify(upload: UploadedFile) -> ImageFacts | None:
    """Format and size from the header (None if not an image); file reads off the event loop."""
    return await asyncio.to_thread(_identify, upload)


async def check_upload(
    upload: UploadedFile, rules: UploadRules, assumptions: Assumptions
) -> ImageFacts:
    """The image's facts when the website accepts it, else the problem that says why not."""
    allowed = ", ".join(rules.allowed_types) or "none"
    if rules.max_bytes is not None and upload.size > rules.max_bytes:
        raise payload_too_large(
            rules.max_bytes,
            f"the file has {upload.size} bytes; this website accepts at most {rules.max_bytes}",
            [FieldError("/file", f"larger than {rules.max_bytes} bytes")],
        )
    try:
        facts = await identify(upload)
    except _TooManyPixels:
        raise invalid_input(
            "the image has too many pixels to be accepted",
            [FieldError("/file", "image dimensions are too large")],
        ) from None
    if facts is None or not rules.allows(facts.format, assumptions):
        what = "not an image" if facts is None else f"a {facts.format} image"
        raise unsupported_media_type(
            f"the file is {what}; this website accepts {allowed} (judged by content)",
            [FieldError("/file", f"{what}; accepted: {allowed}")],
            extra={"allowedTypes": list(rules.allowed_types)},
        )
    too_wide = rules.max_width is not None and facts.width > rules.max_width
    too_tall = rules.max_height is not None and facts.height > rules.max_height
    if too_wide or too_tall:
        limit = f"{rules.max_width or 'any'}x{rules.max_height or 'any'}"
        raise invalid_input(
            f"the image is {facts.width}x{facts.height} pixels; this website accepts at most "
            f"{limit}",
            [FieldError("/file", f"{facts.width}x{facts.height} pixels exceeds {limit}")],
        )
    return facts
