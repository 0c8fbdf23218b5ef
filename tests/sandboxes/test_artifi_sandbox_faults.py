"""The Artifi sandbox's quirks and faults (lowercase keys, Data as a string, a bare 400, latency,
errors, dropped connections, failing the next calls), its control endpoints, and only the
documented routes."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from tests.sandboxes.artifi_api import CREDS, DELETE, LIST, SETTINGS_PATH, UPLOAD
from tests.sandboxes.artifi_calls import Client, get_json, image_bytes, photo_form, state_of, upload

SERVER_ERROR = {
    "Response": "Error",
    "Message": "Internal server error occurred , while processing image",
    "Data": None,
    "ErrorCode": "500",
}


# --- quirks -----------------------------------------------------------------------------------


async def test_lowercase_keys_quirk(client: Client) -> None:
    """lowercase_keys lowercases the envelope keys and the Data keys, nested ones too."""
    state_of(client).faults.lowercase_keys = True
    async with client.post(SETTINGS_PATH, params=CREDS) as resp:
        body = await resp.json()
    assert set(body) == {"response", "message", "data", "errorcode"}
    assert body["data"]["dimension"] == {"width": 3000, "height": 3000}


async def test_data_as_string_quirk(client: Client) -> None:
    """data_as_string sends Data as a JSON string holding the usual object."""
    state_of(client).faults.data_as_string = True
    body = await upload(client)
    assert isinstance(body["Data"], str)
    assert json.loads(body["Data"])["Width"] == 640


async def test_problem_details_quirk_applies_once(client: Client) -> None:
    """problem_details_400 turns the next validation failure into a bare 400, then resets."""
    state_of(client).faults.problem_details_400 = True
    query = {**CREDS, "frontAppUserId": "u", "dpi": "0"}
    async with client.post(UPLOAD, params=query, data=photo_form(image_bytes("JPEG"))) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["title"] == "One or more validation errors occurred."
    assert body["status"] == 400
    assert set(body["errors"]) == {"dpi"}
    assert (await upload(client, dpi="0"))["ErrorCode"] == "265"


# --- faults -----------------------------------------------------------------------------------


async def test_latency_fault_delays_answers(client: Client) -> None:
    """latency_s delays API answers but not the control endpoints."""
    async with client.post("/_sandbox/faults", json={"latency_s": 0.2}) as resp:
        assert (await resp.json())["latency_s"] == 0.2
    started = time.monotonic()
    await get_json(client, LIST, userId="u")
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    async with client.get("/_sandbox/state") as resp:
        assert resp.status == 200
    assert time.monotonic() - started < 0.2


async def test_error_rate_answers_documented_500_envelope(client: Client) -> None:
    """error_rate 1 answers every call with the documented 500 envelope, HTTP 200."""
    state_of(client).faults.error_rate = 1
    assert await upload(client) == SERVER_ERROR
    # The upload was received even though it failed: the gateway must not retry it.
    assert state_of(client).uploads_received == 1
    assert state_of(client).user_photos(1234, "user-1") == []


async def test_drop_rate_closes_the_connection(client: Client) -> None:
    """drop_rate 1 closes the connection without any answer."""
    state_of(client).faults.drop_rate = 1
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(SETTINGS_PATH, params=CREDS)
    assert state_of(client).requests[-1].path == SETTINGS_PATH


async def test_fail_next_answers_503_then_recovers(client: Client) -> None:
    """fail_next N answers the next N API calls with 503; control calls neither count nor fail."""
    async with client.post("/_sandbox/faults", json={"fail_next": 2}) as resp:
        assert resp.status == 200
    for _ in range(2):
        async with client.post(SETTINGS_PATH, params=CREDS) as resp:
            assert resp.status == 503
        async with client.get("/_sandbox/state") as resp:
            assert resp.status == 200
    async with client.post(SETTINGS_PATH, params=CREDS) as resp:
        assert resp.status == 200
        assert (await resp.json())["Response"] == "Success"


async def test_faults_endpoint_rejects_bad_input_and_state_summarises(client: Client) -> None:
    """POST /_sandbox/faults refuses unknown fields and bad types; GET /_sandbox/state reports."""
    async with client.post("/_sandbox/faults", json={"nope": 1}) as resp:
        assert resp.status == 400
    async with client.post("/_sandbox/faults", json={"error_rate": 2}) as resp:
        assert resp.status == 400
    await upload(client, user="u")
    async with client.get("/_sandbox/state") as resp:
        summary = await resp.json()
    assert summary["uploads_received"] == 1
    assert summary["next_photo_id"] == 5101330
    assert summary["websites"]["1234"]["users"]["u"][0]["Id"] == 5101329
    assert summary["faults"]["error_rate"] == 0


async def test_unknown_route_is_404_and_wrong_verb_405(client: Client) -> None:
    """Only the documented paths and verbs exist."""
    async with client.get("/api/2/Nope", params=CREDS) as resp:
        assert resp.status == 404
    async with client.post(DELETE, params=CREDS) as resp:
        assert resp.status == 405
