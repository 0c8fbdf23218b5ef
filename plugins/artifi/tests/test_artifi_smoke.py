"""The Artifi plugin through the backend authors' test kit: the gateway starts in front of the
installed plugin's sandbox, lists the backend, carries a photo upload there and back (every answer
checked against the contract), and delivers the event it emits to a subscriber, signed. (The
plugin's full behaviour is tested by the test_artifi_* modules beside this one.)"""

from __future__ import annotations

import io

from aiohttp import FormData
from PIL import Image

from gateway.plugin_api import StartGateway, WebhookSubscriber
from gateway_artifi.sandbox import SANDBOX_STATE, UPLOAD_PATH, ArtifiSandboxSettings


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (20, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def test_artifi_uploads_a_photo_to_its_sandbox(
    start_gateway: StartGateway, subscriber: WebhookSubscriber
) -> None:
    """Installed through its entry point, Artifi is listed as configured; uploadUserPhoto reaches
    the sandbox with the website's client key, the photo is listed back, and `photo.uploaded`
    reaches a subscriber with a signature that verifies."""
    gateway = await start_gateway("artifi")
    listed = await gateway.listing()
    assert listed["configured"] is True
    assert {"uploadUserPhoto", "listUserPhotos"} <= set(listed["capabilities"])
    await gateway.subscribe(subscriber, ["photo.uploaded"])

    form = FormData()
    form.add_field("file", jpeg(), filename="holiday.jpg", content_type="image/jpeg")
    uploaded = await gateway.client.post(
        "/v1/users/user-1/photos", data=form, headers=gateway.auth()
    )
    assert uploaded.status == 201, await uploaded.text()
    photo = await uploaded.json()

    listed_photos = await gateway.client.get("/v1/users/user-1/photos", headers=gateway.auth())
    assert listed_photos.status == 200
    assert [p["id"] for p in (await listed_photos.json())["items"]] == [photo["id"]]

    [seen] = [r for r in gateway.sandbox_app[SANDBOX_STATE].requests if r.path == UPLOAD_PATH]
    website = ArtifiSandboxSettings().websites[0]
    assert website.client_key in seen.query.values()

    [event] = await subscriber.wait_for("photo.uploaded")
    assert event["backend"] == "artifi"
    assert event["tenant"] == gateway.tenant
    assert event["data"] == {"userId": "user-1", "photo": photo}
    assert len(subscriber.deliveries) == 1
