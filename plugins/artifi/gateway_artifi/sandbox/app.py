"""The Artifi sandbox application: its routes, its fault answers, and its state.

11. Faults (``Faults``), applied by a middleware in this order after recording the request:
    ``latency_s`` sleep, ``drop_rate`` (transport closed without an answer), ``fail_next``
    (HTTP 503 for the next N requests), ``error_rate`` (the documented 500 envelope, HTTP 200).
    Rates draw from ``random.Random(settings.seed)``, only when the rate is > 0. Every request
    is recorded in ``requests`` (control calls too) and ``uploads_received`` counts every POST
    to the upload route, before any fault, whatever the outcome.

The recording, the fault middleware and the control endpoints are ``gateway.sandbox_kit``'s.
"""

from __future__ import annotations

from aiohttp import web

from gateway.plugin_api import FaultAnswers, simulator_app
from gateway_artifi.sandbox.envelope import SERVER_ERROR_MESSAGE, error
from gateway_artifi.sandbox.image_settings import get_image_settings
from gateway_artifi.sandbox.paths import (
    DELETE_PATH,
    LIST_PATH,
    SETTINGS_PATH,
    UPDATE_USER_PATH,
    UPLOAD_PATH,
)
from gateway_artifi.sandbox.settings import ArtifiSandboxSettings
from gateway_artifi.sandbox.state import SANDBOX_STATE, ArtifiSandboxState
from gateway_artifi.sandbox.uploads import upload_user_photos
from gateway_artifi.sandbox.user_photos import delete_user_photo, get_user_uploaded_list
from gateway_artifi.sandbox.users import update_user_id

__all__ = ["create_sandbox_app"]

ROUTES = [
    web.post(UPLOAD_PATH, upload_user_photos),
    web.post(SETTINGS_PATH, get_image_settings),
    web.get(LIST_PATH, get_user_uploaded_list, allow_head=False),
    web.get(DELETE_PATH, delete_user_photo, allow_head=False),
    web.put(UPDATE_USER_PATH, update_user_id),
]


def create_sandbox_app(settings: ArtifiSandboxSettings | None = None) -> web.Application:
    """The Artifi sandbox application; its state is ``app[SANDBOX_STATE]``."""
    state = ArtifiSandboxState.from_settings(settings or ArtifiSandboxSettings())
    answers = FaultAnswers(
        unavailable=lambda: web.Response(status=503, text="Service Unavailable"),
        server_error=lambda: error(state, "500", SERVER_ERROR_MESSAGE),
    )
    return simulator_app(SANDBOX_STATE, state, ROUTES, answers=answers, record_control=True)
