"""The Artifi API paths the sandbox serves.

Routes (documented paths and verbs, matched exactly and case-sensitively; a wrong verb on a known
path gets aiohttp's 405, an unknown path 404):

- ``POST /api/2/UploadPhoto/UploadUserPhotos``  multipart upload of one user photo
- ``POST /api/3/UploadImage/GetImageSettings``  the website's upload rules
- ``GET  /api/3/UploadImage/GetUserUploadedList``  a user's uploads
- ``GET  /api/3/UploadImage/DeleteUserPhoto``  deletes a photo (yes, a GET)
- ``PUT  /api/3/User/UpdateUserId``  moves a user's photos to another user id
- ``POST /_sandbox/faults`` and ``GET /_sandbox/state``: control endpoints, no auth, no faults.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DELETE_PATH",
    "LIST_PATH",
    "SETTINGS_PATH",
    "UPDATE_USER_PATH",
    "UPLOAD_PATH",
]

UPLOAD_PATH: Final = "/api/2/UploadPhoto/UploadUserPhotos"
SETTINGS_PATH: Final = "/api/3/UploadImage/GetImageSettings"
LIST_PATH: Final = "/api/3/UploadImage/GetUserUploadedList"
DELETE_PATH: Final = "/api/3/UploadImage/DeleteUserPhoto"
UPDATE_USER_PATH: Final = "/api/3/User/UpdateUserId"
