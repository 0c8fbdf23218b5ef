"""Everything the Artifi sandbox remembers: its websites' user photos, requests and faults.

Photo ids and uuids behave as assumption 5 says (``uploads``), the records of requests and
``uploads_received`` as assumption 11 says (``app``).
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import ClassVar, Final

import attrs
from aiohttp import hdrs, web

from gateway.plugin_api import RecordedRequest
from gateway_artifi.sandbox.paths import UPLOAD_PATH
from gateway_artifi.sandbox.settings import ArtifiSandboxSettings, ArtifiWebsite, Faults

__all__ = ["FIRST_PHOTO_ID", "SANDBOX_STATE", "ArtifiSandboxState", "PhotoRecord"]

FIRST_PHOTO_ID: Final = 5101329


@attrs.frozen
class PhotoRecord:
    """One stored user photo."""

    id: int
    image_name: str
    unique_image_name: str
    width: int
    height: int
    dpi: int
    extension: str
    mime_type: str
    photo_code: str
    is_guest: bool
    uploaded_at: datetime

    def upload_data(self) -> dict[str, object]:
        """The ``Data`` of a successful upload (api/2 names)."""
        return {
            "Id": self.id,
            "ImageName": self.image_name,
            "UniqueImageName": self.unique_image_name,
            "Width": self.width,
            "Height": self.height,
            "DPI": self.dpi,
            "Extension": self.extension,
            "MimeType": self.mime_type,
            "PhotoCode": self.photo_code,
        }

    def asset(self) -> dict[str, object]:
        """One ``AssetList`` item: the upload ``Data``, but api/3 says ``UniqueName`` (second)."""
        data = self.upload_data()
        return {"Id": data.pop("Id"), "UniqueName": data.pop("UniqueImageName"), **data}


@attrs.define
class ArtifiSandboxState:
    """Everything the sandbox remembers; reachable as ``app[SANDBOX_STATE]``."""

    # What a sandbox restart keeps (gateway.sandbox_kit.keep_state).
    durable: ClassVar = ("photos", "next_photo_id", "rng")

    settings: ArtifiSandboxSettings
    rng: random.Random
    websites: dict[int, ArtifiWebsite]
    # website id -> user id -> photos in upload order
    photos: dict[int, dict[str, list[PhotoRecord]]] = attrs.Factory(dict)
    next_photo_id: int = FIRST_PHOTO_ID
    requests: list[RecordedRequest] = attrs.Factory(list)
    faults: Faults = attrs.Factory(Faults)

    @classmethod
    def from_settings(cls, settings: ArtifiSandboxSettings) -> ArtifiSandboxState:
        websites = {w.website_id: w for w in settings.websites}
        if len(websites) != len(settings.websites):
            raise ValueError("duplicate website_id in ArtifiSandboxSettings.websites")
        return cls(
            settings=settings,
            rng=random.Random(settings.seed),
            websites=websites,
            photos={website_id: {} for website_id in websites},
        )

    @property
    def uploads_received(self) -> int:
        """POSTs to the upload route, whatever their outcome (faults included)."""
        return sum(1 for r in self.requests if r.method == hdrs.METH_POST and r.path == UPLOAD_PATH)

    def user_photos(self, website_id: int, user_id: str) -> list[PhotoRecord]:
        """A user's photos in upload order (a copy; empty for an unknown user)."""
        return list(self.photos.get(website_id, {}).get(user_id, []))

    def new_uuid(self) -> str:
        # Seeded, so a given seed and call sequence always yields the same names.
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def take_photo_id(self) -> int:
        photo_id = self.next_photo_id
        self.next_photo_id += 1
        return photo_id

    def store_photo(self, website_id: int, user_id: str, photo: PhotoRecord) -> None:
        self.photos.setdefault(website_id, {}).setdefault(user_id, []).append(photo)

    def move_photos(
        self, website_id: int, old_user_id: str, new_user_id: str, is_guest: bool
    ) -> int:
        """Move every photo of ``old_user_id`` to ``new_user_id``; returns how many moved."""
        users = self.photos.setdefault(website_id, {})
        if old_user_id == new_user_id or old_user_id not in users:
            return 0
        moved = [attrs.evolve(p, is_guest=is_guest) for p in users.pop(old_user_id)]
        merged = users.setdefault(new_user_id, []) + moved
        # Appended, but kept in upload order so listings stay ascending.
        users[new_user_id] = sorted(merged, key=lambda p: p.id)
        return len(moved)

    def delete_photo(self, website_id: int, user_id: str, photo_id: int) -> bool:
        user = self.photos.get(website_id, {}).get(user_id)
        if not user:
            return False
        for index, photo in enumerate(user):
            if photo.id == photo_id:
                del user[index]
                return True
        return False

    def summary(self) -> dict[str, object]:
        """JSON-ready view for ``GET /_sandbox/state``."""
        return {
            "websites": {
                str(website_id): {
                    "users": {
                        user_id: [
                            {
                                **photo.upload_data(),
                                "IsGuest": photo.is_guest,
                                "UploadedAt": photo.uploaded_at.isoformat(),
                            }
                            for photo in photos
                        ]
                        for user_id, photos in users.items()
                    }
                }
                for website_id, users in self.photos.items()
            },
            "next_photo_id": self.next_photo_id,
            "uploads_received": self.uploads_received,
            "requests": len(self.requests),
            "faults": attrs.asdict(self.faults),
        }


SANDBOX_STATE: Final = web.AppKey("artifi_sandbox_state", ArtifiSandboxState)
