"""The contract's values Artifi answers and emits, as frozen attrs classes, and its event types.

The core writes them in the wire format (camelCase, through its one cattrs converter), so a field
here is the contract's property of the same name in snake_case (`openapi/gateway.yaml`'s schema
named in each docstring); `None` is written as null, where the contract's property is nullable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

__all__ = [
    "EVENT_TYPES",
    "PHOTO_DELETED",
    "PHOTO_UPLOADED",
    "USER_MERGED",
    "MergeUserResult",
    "Photo",
    "PhotoDeletedData",
    "PhotoPage",
    "PhotoSettings",
    "PhotoUploadedData",
    "UserMergedData",
]

PHOTO_UPLOADED: Final = "photo.uploaded"
PHOTO_DELETED: Final = "photo.deleted"
USER_MERGED: Final = "user.merged"

# The events the backend emits (`Backend.event_types`), each with its data's value below.
EVENT_TYPES: Final[Mapping[str, str]] = {
    PHOTO_UPLOADED: "A user photo was uploaded to Artifi through the gateway.",
    PHOTO_DELETED: "A user photo was deleted from Artifi through the gateway.",
    USER_MERGED: "A guest's Artifi uploads moved to a registered user through the gateway.",
}


@attrs.frozen
class Photo:
    """`Photo`: a user photo Artifi stores."""

    id: str
    code: str | None
    image_name: str
    unique_image_name: str
    width: int
    height: int
    dpi: int | None
    extension: str | None
    mime_type: str | None


@attrs.frozen
class PhotoPage:
    """`PhotoPage`."""

    items: tuple[Photo, ...]
    page: int
    page_size: int
    total: int


@attrs.frozen
class PhotoSettings:
    """`PhotoSettings`: the website's upload rules, 0 where it sets no limit."""

    allowed_types: tuple[str, ...]
    max_bytes: int
    max_width: int
    max_height: int
    dpi: int


@attrs.frozen
class MergeUserResult:
    """`MergeUserResult`."""

    user_id: str
    guest_user_id: str
    merged: bool = True


@attrs.frozen
class PhotoUploadedData:
    """`PhotoUploadedData` (event photo.uploaded)."""

    user_id: str
    photo: Photo


@attrs.frozen
class PhotoDeletedData:
    """`PhotoDeletedData` (event photo.deleted)."""

    user_id: str
    photo_id: str


@attrs.frozen
class UserMergedData:
    """`UserMergedData` (event user.merged)."""

    user_id: str
    guest_user_id: str
