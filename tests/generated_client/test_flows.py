"""The generated client drives the backends' flows end to end, through typed calls only: the whole
PICTOFiT flow and the Artifi photo flow against the sandbox gateway, and Acme's widgets (its
fragment's operations) against a test gateway with Acme plugged in."""

from __future__ import annotations

import io
import uuid
from types import ModuleType
from typing import Any

from PIL import Image

from gateway_pictofit.sandbox import sandbox_result_bytes
from tests.conftest import CALLER_KEY_A, Gateway
from tests.generated_client.conftest import Generated, until


def picture(fmt: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 90, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


async def test_pictofit_flow_through_the_generated_client(
    client_package: ModuleType, api: Any
) -> None:
    """Product, configuration, FRONTAL image, submit, finished, download: all typed calls."""
    g = Generated(client_package)
    product_id, configuration_id = uuid.uuid4(), uuid.uuid4()
    types = await g.op("catalog", "list_product_types").asyncio(client=api)
    assert "GARMENT_2D" in {t.name for t in types.items}

    created = await g.op("products", "put_product").asyncio_detailed(
        product_id, client=api, body=g.models.ProductInput(name="Silk shirt", type_="GARMENT_2D")
    )
    assert created.status_code == 201
    assert created.parsed.id == product_id
    assert created.parsed.backend == "pictofit"

    configuration = await g.op("products", "put_configuration").asyncio_detailed(
        product_id,
        configuration_id,
        client=api,
        body=g.models.ConfigurationInput(name="Blue, M", sku="shirt-blue-m"),
    )
    assert configuration.status_code == 201
    assert configuration.parsed.state == g.models.ConfigurationState.DRAFT

    upload = g.models.ProductImageUpload(
        file=g.types.File(
            payload=io.BytesIO(picture("PNG", (1200, 900))),
            file_name="front.png",
            mime_type="image/png",
        ),
        kind="FRONTAL",
    )
    image = await g.op("products", "upload_product_image").asyncio_detailed(
        product_id, configuration_id, client=api, body=upload
    )
    assert image.status_code == 201, image.content
    assert (image.parsed.kind, image.parsed.width, image.parsed.height) == ("FRONTAL", 1200, 900)

    submitted = await g.op("products", "submit_configuration").asyncio_detailed(
        product_id, configuration_id, client=api
    )
    assert submitted.status_code == 202
    assert submitted.parsed.state in {
        g.models.ConfigurationState.SUBMITTED,
        g.models.ConfigurationState.PROCESSING,
    }

    async def finished() -> Any:
        product = await g.op("products", "get_product").asyncio(product_id, client=api)
        [only] = product.configurations
        return only if only.state == g.models.ConfigurationState.FINISHED else None

    done = await until(finished)
    assert done.results, "a finished configuration has results"
    result = done.results[0]
    download = await g.op("products", "download_result").asyncio_detailed(
        product_id, configuration_id, result.format_, client=api, compressed=result.compressed
    )
    assert download.status_code == 200
    expected = sandbox_result_bytes(str(configuration_id), result.format_, result.compressed)
    assert download.content == expected

    async def completed() -> Any:
        page = await g.op("events", "list_events").asyncio(client=api, type_="product.completed")
        return [e for e in page.items if e.data["productId"] == str(product_id)]

    [event] = await until(completed)
    assert event.backend == "pictofit"


async def test_artifi_photo_flow_through_the_generated_client(
    client_package: ModuleType, api: Any
) -> None:
    """A guest's upload is listed, merged into a registered user, then deleted."""
    g = Generated(client_package)
    guest, user = f"guest-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    settings = await g.op("photos", "get_photo_settings").asyncio(client=api)
    assert "JPEG" in settings.allowed_types

    upload = g.models.UserPhotoUpload(
        file=g.types.File(
            payload=io.BytesIO(picture("JPEG", (640, 480))),
            file_name="holiday.jpg",
            mime_type="image/jpeg",
        ),
        guest=True,
    )
    stored = await g.op("photos", "upload_user_photo").asyncio_detailed(
        guest, client=api, body=upload, idempotency_key=str(uuid.uuid4())
    )
    assert stored.status_code == 201, stored.content
    photo = stored.parsed
    assert (photo.width, photo.height) == (640, 480)

    listed = await g.op("photos", "list_user_photos").asyncio(guest, client=api)
    assert [p.id for p in listed.items] == [photo.id]

    merged = await g.op("photos", "merge_user").asyncio_detailed(
        user, client=api, body=g.models.MergeUserInput(guest_user_id=guest)
    )
    assert merged.status_code == 200
    assert (merged.parsed.user_id, merged.parsed.guest_user_id) == (user, guest)
    moved = await g.op("photos", "list_user_photos").asyncio(user, client=api)
    assert [p.id for p in moved.items] == [photo.id]

    deleted = await g.op("photos", "delete_user_photo").asyncio_detailed(user, photo.id, client=api)
    assert deleted.status_code == 204
    after = await g.op("photos", "list_user_photos").asyncio(user, client=api)
    assert after.items == []
    assert after.total == 0


async def test_fragment_operations_through_the_generated_client(
    client_package: ModuleType, gateway: Gateway
) -> None:
    """Acme's own operations, from its fragment, are generated under its tag with its schemas:
    a typed put and get through a test gateway with Acme plugged in, and a body the fragment's
    schema refuses answered 422 before Acme sees it."""
    g = Generated(client_package)
    base_url = str(gateway.client.make_url("")).rstrip("/")
    async with client_package.AuthenticatedClient(base_url=base_url, token=CALLER_KEY_A) as api:
        widget_id = uuid.uuid4()
        body = g.models.AcmeWidgetInput(name="Sprocket", size_mm=12)
        put = await g.op("acme", "put_acme_widget").asyncio_detailed(
            widget_id, client=api, body=body
        )
        assert put.status_code == 201, put.content
        assert isinstance(put.parsed, g.models.AcmeWidget)
        got = await g.op("acme", "get_acme_widget").asyncio(widget_id, client=api)
        assert (got.id, got.name, got.size_mm) == (widget_id, "Sprocket", 12)

        seen = len(gateway.upstream.requests)
        refused = await g.op("acme", "put_acme_widget").asyncio_detailed(
            widget_id, client=api, body=g.models.AcmeWidgetInput(name="Sprocket", size_mm=0)
        )
        assert refused.status_code == 422
        assert [e.location for e in refused.parsed.errors] == ["/sizeMm"]
        assert len(gateway.upstream.requests) == seen

        # The event the put emitted, read through the client, parses as its webhook's model.
        page = await g.op("events", "list_events").asyncio(client=api, type_="acme.widget_ready")
        [event] = page.items
        ready = g.models.AcmeWidgetReadyEvent.from_dict(event.to_dict())
        assert ready.data.id == widget_id
