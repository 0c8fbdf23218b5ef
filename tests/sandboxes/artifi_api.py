"""The Artifi sandbox as its tests configure it, and the documented API's paths and credentials."""

from __future__ import annotations

from gateway_artifi.sandbox import ArtifiSandboxSettings, ArtifiWebsite

KEY = "test-key"
SETTINGS = ArtifiSandboxSettings(
    websites=(
        ArtifiWebsite(website_id=1234, client_key=KEY),
        ArtifiWebsite(website_id=77, client_key="small-key", max_file_mb=1),
    ),
    seed=7,
)
CREDS = {"websiteId": "1234", "webApiClientKey": KEY}
UPLOAD = "/api/2/UploadPhoto/UploadUserPhotos"
SETTINGS_PATH = "/api/3/UploadImage/GetImageSettings"
LIST = "/api/3/UploadImage/GetUserUploadedList"
DELETE = "/api/3/UploadImage/DeleteUserPhoto"
