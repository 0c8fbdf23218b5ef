"""Sandbox simulator of the Artifi API (user photo upload and the calls around it).

A real aiohttp application that follows /work/shared/upstreams/ARTIFI.md: the gateway's tests,
``gateway serve --sandbox`` and client authors run against it instead of Artifi.

Its routes are listed in ``paths``. Where the docs are silent it makes numbered assumptions (the
gateway relies on exactly these), each in the docstring of the module that simulates it:

- 1, 10 and 12 (the envelope, error wording, quirks): ``envelope``
- 2 (credentials and query parameters): ``params``
- 3 to 6 (upload): ``uploads``
- 7 and 8 (listing and deleting a user's photos): ``user_photos``
- 9 (moving photos to another user id): ``users``
- 11 (faults and request records): ``app``; 13 (``POST /_sandbox/faults``): ``settings``

The recording of requests, the fault middleware and the control endpoints are the simulators'
shared scaffolding, ``gateway.sandbox_kit``.
"""

from gateway.plugin_api import RecordedRequest
from gateway_artifi.sandbox.app import create_sandbox_app
from gateway_artifi.sandbox.envelope import PROBLEM_TYPE, SERVER_ERROR_MESSAGE, VALIDATION_TITLE
from gateway_artifi.sandbox.params import MAX_USER_ID_LENGTH
from gateway_artifi.sandbox.paths import (
    DELETE_PATH,
    LIST_PATH,
    SETTINGS_PATH,
    UPDATE_USER_PATH,
    UPLOAD_PATH,
)
from gateway_artifi.sandbox.settings import ArtifiSandboxSettings, ArtifiWebsite, Faults
from gateway_artifi.sandbox.state import (
    FIRST_PHOTO_ID,
    SANDBOX_STATE,
    ArtifiSandboxState,
    PhotoRecord,
)
from gateway_artifi.sandbox.uploads import DEFAULT_DPI, MAX_DPI, MIB, MISSING_BOUNDARY
from gateway_artifi.sandbox.user_photos import DELETED_MESSAGE, PHOTO_NOT_FOUND_MESSAGE
from gateway_artifi.sandbox.users import USER_UPDATED_MESSAGE

__all__ = [
    "DEFAULT_DPI",
    "DELETED_MESSAGE",
    "DELETE_PATH",
    "FIRST_PHOTO_ID",
    "LIST_PATH",
    "MAX_DPI",
    "MAX_USER_ID_LENGTH",
    "MIB",
    "MISSING_BOUNDARY",
    "PHOTO_NOT_FOUND_MESSAGE",
    "PROBLEM_TYPE",
    "SANDBOX_STATE",
    "SERVER_ERROR_MESSAGE",
    "SETTINGS_PATH",
    "UPDATE_USER_PATH",
    "UPLOAD_PATH",
    "USER_UPDATED_MESSAGE",
    "VALIDATION_TITLE",
    "ArtifiSandboxSettings",
    "ArtifiSandboxState",
    "ArtifiWebsite",
    "Faults",
    "PhotoRecord",
    "RecordedRequest",
    "create_sandbox_app",
]
