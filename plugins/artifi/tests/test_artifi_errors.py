"""Artifi's error codes and envelope quirks, through the gateway, as the caller's problems."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from artifi_harness import (
    DELETE,
    LIST,
    SETTINGS,
    UPDATE_USER,
    UPLOAD,
    WEBSITE_A,
    WRONG_KEY,
    Answer,
    ArtifiGateway,
    MakeArtifi,
    Rewrite,
    artifi,
    image,
    make_artifi,
)

from gateway.plugin_api import GatewayLogs
from gateway_artifi.sandbox import SERVER_ERROR_MESSAGE

__all__ = ["artifi", "make_artifi"]  # the fixtures, for this module's tests

CREDENTIALS_PROBLEM = "urn:gateway:problem:upstream-credentials-rejected"
VALIDATION_PROBLEM = "urn:gateway:problem:validation-failed"
UPSTREAM_PROBLEM = "urn:gateway:problem:upstream-error"


def error_envelope(code: str | None, message: str = "nope") -> dict[str, Any]:
    return {"Response": "Error", "Message": message, "Data": None, "ErrorCode": code}


async def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    return body


@pytest.mark.parametrize(
    ("code", "status", "problem", "locations"),
    [
        ("261", 422, VALIDATION_PROBLEM, ["userId"]),
        ("262", 422, VALIDATION_PROBLEM, ["/file"]),
        ("265", 422, VALIDATION_PROBLEM, ["/dpi"]),
        ("372", 502, CREDENTIALS_PROBLEM, None),
        ("221", 502, CREDENTIALS_PROBLEM, None),
        ("226", 502, CREDENTIALS_PROBLEM, None),
        ("234", 502, CREDENTIALS_PROBLEM, None),
        ("221,234", 502, CREDENTIALS_PROBLEM, None),
        ("500", 502, UPSTREAM_PROBLEM, None),
        ("9999", 502, UPSTREAM_PROBLEM, None),
        (None, 502, UPSTREAM_PROBLEM, None),
    ],
)
async def test_each_error_code_maps_to_its_problem(
    artifi: ArtifiGateway,
    gateway_logs: GatewayLogs,
    code: str | None,
    status: int,
    problem: str,
    locations: list[str] | None,
) -> None:
    """Every documented code (and an unknown one) of an upload answer becomes its problem."""
    artifi.tap.once(UPLOAD, Answer(200, error_envelope(code, "Artifi says no")))
    body = await problem_of(await artifi.upload("user-1", image()), status)
    assert body["type"] == problem
    assert body["upstreamErrorCodes"] == (code.split(",") if code else [])
    if locations is not None:
        assert [e["location"] for e in body["errors"]] == locations
        assert "Artifi says no" in body["detail"]
    rejected = gateway_logs.events("artifi.credentials_rejected")
    if problem == CREDENTIALS_PROBLEM:
        assert "credentials" in body["detail"]
        [line] = rejected
        assert line["level"] == "error"
        assert (line["tenant"], line["backend"]) == ("tenant-a", "artifi")
        assert line["codes"] == body["upstreamErrorCodes"]
    else:
        assert rejected == []
    assert artifi.sandbox.uploads_received == 1  # never retried


async def test_wrong_client_key_is_502_and_never_shown(
    make_artifi: MakeArtifi, gateway_logs: GatewayLogs
) -> None:
    """A wrong key: 502 naming the gateway's credentials; the key is in no log, body or metric."""
    artifi = await make_artifi(tenant_a={"client_key": "env:TEST_ARTIFI_WRONG_KEY"})
    answers = [
        await artifi.upload("user-1", image()),
        await artifi.photos("user-1"),
        await artifi.client.get("/v1/photo-settings", headers=artifi.auth()),
        await artifi.merge("user-1", "guest-1"),
        await artifi.delete("user-1", "5101329"),
    ]
    for response in answers:
        body = await problem_of(response, 502)
        assert body["type"] == CREDENTIALS_PROBLEM
        assert body["upstreamErrorCodes"] == ["226"]
        raw = (await response.read()).decode() + str(dict(response.headers))
        assert WRONG_KEY not in raw
    # The key did go upstream (so there was something to leak), where it belongs.
    assert {r.query["webApiClientKey"] for r in artifi.sandbox.requests} == {WRONG_KEY}

    calls = gateway_logs.events("upstream.call")
    assert calls, "no upstream.call lines"
    assert all("webApiClientKey=[REDACTED]" in line["url"] for line in calls)
    rejected = gateway_logs.events("artifi.credentials_rejected")
    assert {(line["tenant"], line["level"]) for line in rejected} == {("tenant-a", "error")}
    metrics = await artifi.client.get("/metrics")
    assert metrics.status == 200
    metrics_text = await metrics.text()
    assert 'backend="artifi"' in metrics_text
    assert WRONG_KEY not in metrics_text
    assert WRONG_KEY not in gateway_logs.text()


async def test_wrong_website_id_is_221(make_artifi: MakeArtifi) -> None:
    """A website id Artifi does not know: 502, with both codes when Artifi lists two."""
    artifi = await make_artifi(tenant_a={"website_id": 999})
    body = await problem_of(await artifi.photos("user-1"), 502)
    assert (body["type"], body["upstreamErrorCodes"]) == (CREDENTIALS_PROBLEM, ["221"])
    artifi.sandbox.faults.multi_error_codes = True
    body = await problem_of(await artifi.photos("user-1"), 502)
    assert body["upstreamErrorCodes"] == ["221", "234"]


async def test_missing_website_id_is_372(artifi: ArtifiGateway) -> None:
    """Artifi's 372 (no websiteId reached it) is the gateway's configuration problem: 502."""
    artifi.tap.once(LIST, Rewrite({"websiteId": None}))
    body = await problem_of(await artifi.photos("user-1"), 502)
    assert (body["type"], body["upstreamErrorCodes"]) == (CREDENTIALS_PROBLEM, ["372"])


async def test_sandbox_validation_codes(artifi: ArtifiGateway) -> None:
    """The sandbox's own 261 and 265 answers name the caller's userId and dpi."""
    artifi.tap.once(UPLOAD, Rewrite({"frontAppUserId": ""}))
    body = await problem_of(await artifi.upload("user-1", image()), 422)
    assert [(e["location"], body["upstreamErrorCodes"]) for e in body["errors"]] == [
        ("userId", ["261"])
    ]
    artifi.tap.once(UPLOAD, Rewrite({"dpi": "0"}))
    body = await problem_of(await artifi.upload("user-1", image()), 422)
    assert [e["location"] for e in body["errors"]] == ["/dpi"]
    assert body["upstreamErrorCodes"] == ["265"]


async def test_bare_problem_details_400(artifi: ArtifiGateway) -> None:
    """A validation failure as a bare HTTP 400 ProblemDetails maps like its code would."""
    artifi.sandbox.faults.problem_details_400 = True
    artifi.tap.once(UPLOAD, Rewrite({"dpi": "0"}))
    body = await problem_of(await artifi.upload("user-1", image()), 422)
    assert [e["location"] for e in body["errors"]] == ["/dpi"]
    assert body["upstreamErrorCodes"] == ["265"]
    assert "Invalid DPI" in body["errors"][0]["message"]
    assert artifi.sandbox.faults.problem_details_400 is False  # the sandbox did answer it


async def test_server_error_500_is_502_and_not_retried(artifi: ArtifiGateway) -> None:
    """Artifi's documented 500 envelope is a 502; the upload is not sent again."""
    settings = await artifi.client.get("/v1/photo-settings", headers=artifi.auth())
    assert settings.status == 200  # cached: only the upload meets the error
    artifi.sandbox.faults.error_rate = 1.0
    body = await problem_of(await artifi.upload("user-1", image()), 502)
    assert body["type"] == UPSTREAM_PROBLEM
    assert SERVER_ERROR_MESSAGE in body["detail"]
    assert artifi.sandbox.uploads_received == 1


async def test_rules_changed_upstream_refresh_the_cache(artifi: ArtifiGateway) -> None:
    """Artifi's 262 for a file our cached rules allowed is a 422, and the rules are re-read."""
    assert (await artifi.upload("user-1", image("JPEG"))).status == 201
    state = artifi.sandbox
    state.websites[WEBSITE_A.website_id] = attrs.evolve(WEBSITE_A, image_extensions="PNG")
    body = await problem_of(await artifi.upload("user-1", image("JPEG")), 422)
    assert [e["location"] for e in body["errors"]] == ["/file"]
    assert body["upstreamErrorCodes"] == ["262"]
    assert "not allowed" in body["detail"]
    refused = await artifi.upload("user-1", image("JPEG"))
    assert refused.status == 415
    assert state.uploads_received == 2
    assert len(artifi.requests_to(SETTINGS)) == 2


async def test_quirky_envelopes_read_the_same(artifi: ArtifiGateway) -> None:
    """Lower-case keys and Data as a JSON string change nothing the caller sees."""
    plain = await artifi.upload("user-1", image("JPEG", (300, 200)))
    assert plain.status == 201
    expected = await plain.json()
    artifi.sandbox.faults.lowercase_keys = True
    artifi.sandbox.faults.data_as_string = True
    quirky = await artifi.upload("user-2", image("JPEG", (300, 200)))
    assert quirky.status == 201, await quirky.text()
    photo = await quirky.json()
    assert {k: v for k, v in photo.items() if k not in {"id", "code", "uniqueImageName"}} == {
        k: v for k, v in expected.items() if k not in {"id", "code", "uniqueImageName"}
    }
    page = await (await artifi.photos("user-2")).json()
    assert page["items"] == [photo]
    assert page["total"] == 1
    assert (await artifi.merge("user-3", "user-2")).status == 200
    assert (await artifi.delete("user-3", photo["id"])).status == 204
    settings = await artifi.client.get("/v1/photo-settings", headers=artifi.auth())
    assert (await settings.json())["maxWidth"] == 3000


async def test_non_envelope_answer_is_502(artifi: ArtifiGateway) -> None:
    """A 200 that is not an envelope is the upstream's fault: 502."""
    artifi.tap.once(LIST, Answer(200, ["not", "an", "envelope"]))
    body = await problem_of(await artifi.photos("user-1"), 502)
    assert body["type"] == UPSTREAM_PROBLEM


async def test_delete_of_unknown_photo_is_404(artifi: ArtifiGateway) -> None:
    """Artifi's 'no such photo for this user' is a 404; a non-numeric id never goes upstream."""
    body = await problem_of(await artifi.delete("user-1", "5101329"), 404)
    assert "5101329" in body["detail"]
    await problem_of(await artifi.delete("user-1", "not-a-number"), 404)
    assert len(artifi.requests_to(DELETE)) == 1


async def test_merging_a_guest_artifi_does_not_know_is_404(artifi: ArtifiGateway) -> None:
    """A guest with nothing at Artifi (a wrong id): 404, no UpdateUserId call and no
    user.merged event; Artifi itself would answer success for moving nothing."""
    body = await problem_of(await artifi.merge("user-1", "nobody"), 404)
    assert "nobody" in body["detail"]
    assert artifi.requests_to(UPDATE_USER) == []
    assert await artifi.events("user.merged") == []


async def test_merge_errors(artifi: ArtifiGateway) -> None:
    """Merging a user into itself is a 422 without a call; Artifi's 261 names both user ids."""
    body = await problem_of(await artifi.merge("user-1", "user-1"), 422)
    assert [e["location"] for e in body["errors"]] == ["/guestUserId"]
    assert artifi.requests_to(UPDATE_USER) == []
    assert (await artifi.upload("guest-1", image(), guest="true")).status == 201  # known to Artifi
    artifi.tap.once(UPDATE_USER, Rewrite({"oldUserId": ""}))
    body = await problem_of(await artifi.merge("user-1", "guest-1"), 422)
    assert [e["location"] for e in body["errors"]] == ["userId", "/guestUserId"]
    artifi.sandbox.faults.problem_details_400 = True
    artifi.tap.once(UPDATE_USER, Rewrite({"oldUserId": ""}))
    body = await problem_of(await artifi.merge("user-1", "guest-1"), 422)
    assert [e["location"] for e in body["errors"]] == ["/guestUserId"]
