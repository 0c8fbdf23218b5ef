"""Artifi's payloads (key-folded `Data`) as the contract's values: `Photo`, the parts of a
`PhotoPage`, `PhotoSettings`."""

from __future__ import annotations

from typing import Any

from gateway_artifi.envelope import unexpected
from gateway_artifi.preflight import ImageFacts, UploadRules
from gateway_artifi.values import Photo, PhotoSettings

__all__ = ["assets", "photo_settings", "to_photo"]


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def to_photo(item: Any, facts: ImageFacts | None = None) -> Photo:
    """One photo; `facts` (what the gateway read from the uploaded file) fills what is missing.

    The upload answer says `UniqueImageName`, the list `UniqueName` (both documented).
    """
    if not isinstance(item, dict) or _text(item.get("id")) is None:
        raise unexpected("a photo without an Id")
    width, height = _int(item.get("width")), _int(item.get("height"))
    return Photo(
        id=str(item["id"]),
        code=_text(item.get("photocode")),
        image_name=_text(item.get("imagename")) or "",
        unique_image_name=_text(item.get("uniqueimagename") or item.get("uniquename")) or "",
        width=width if width is not None else (facts.width if facts else 0),
        height=height if height is not None else (facts.height if facts else 0),
        dpi=_int(item.get("dpi")),
        extension=_text(item.get("extension")),
        mime_type=_text(item.get("mimetype")) or (facts.mime_type if facts else None),
    )


def assets(data: Any) -> tuple[list[dict[str, Any]], int]:
    """A GetUserUploadedList `Data`: its raw items and `AssetCount` (all matches, every page)."""
    if data is None:  # nothing uploaded: some endpoints answer no Data rather than an empty list
        return [], 0
    if not isinstance(data, dict):
        raise unexpected("a user uploaded list that is not an object")
    items = data.get("assetlist") or []
    if not isinstance(items, list):
        raise unexpected("an AssetList that is not a list")
    total = _int(data.get("assetcount"))
    return items, total if total is not None else len(items)


def photo_settings(rules: UploadRules) -> PhotoSettings:
    """The contract's `PhotoSettings` (0 where Artifi sets no limit)."""
    return PhotoSettings(
        allowed_types=rules.allowed_types,
        max_bytes=rules.max_bytes or 0,
        max_width=rules.max_width or 0,
        max_height=rules.max_height or 0,
        dpi=rules.dpi,
    )
