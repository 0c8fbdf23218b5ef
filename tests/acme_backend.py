"""A third backend that lives in the tests, plugged in exactly as an installed one would be.

It proves a new backend needs no change to `gateway/`: the plugin below, its upstream simulator
and its OpenAPI fragment (acme_openapi.yaml: widgets, an operation set of its own) are all there
is. The simulator records every request (with headers) so tests can see what went
upstream, and can be told to fail, hang or refuse.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs
from aiohttp import FormData, web

from gateway.plugin_api import (
    Backend,
    CallbackCall,
    CallbackRegistration,
    Credentials,
    CredentialsRequest,
    OperationCall,
    ProblemError,
    Reply,
    Sandbox,
    Secret,
    bad_request,
    hookimpl,
    not_found,
)
from tests.acme_values import Done, Image, Photo, Product, TypeList, TypeName, Widget

NAME = "acme"


@attrs.frozen
class AcmeConfig:
    base_url: str
    api_key: Secret
    callback_secret: Secret | None = None
    # The Acme account the key belongs to, when several tenants share one: Acme keeps one
    # callback registration per account, so theirs is made once (`callback_account`).
    account: str | None = None


@attrs.define
class AcmeUpstreamState:
    """What the simulator saw and how it should misbehave next."""

    requests: list[dict[str, Any]] = attrs.field(factory=list)
    products: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    widgets: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    accepted_keys: set[str] = attrs.field(factory=set)
    fail_next: int = 0
    fail_status: int = 503
    hang_seconds: float = 0.0
    retry_after: str | None = None
    callbacks: dict[str, str] = attrs.field(factory=dict)  # url -> authorization
    photos_uploaded: int = 0
    photo_delay: float = 0.0


ACME_STATE = web.AppKey("acme_state", AcmeUpstreamState)
RESULT_BYTES = bytes(range(256)) * 4096  # 1 MiB, recognisable byte for byte


def make_acme_upstream(*accepted_keys: str) -> web.Application:
    """The simulator: a real aiohttp app speaking the made-up Acme API."""
    state = AcmeUpstreamState(accepted_keys=set(accepted_keys))

    @web.middleware
    async def record_and_misbehave(request: web.Request, handler: Any) -> web.StreamResponse:
        state.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": dict(request.headers),
                "query": dict(request.query),
            }
        )
        if state.hang_seconds:
            await asyncio.sleep(state.hang_seconds)
        if state.fail_next:
            state.fail_next -= 1
            headers = {"Retry-After": state.retry_after} if state.retry_after else None
            return web.json_response(
                {"message": "simulated failure"}, status=state.fail_status, headers=headers
            )
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in (
            state.accepted_keys
        ):
            return web.json_response({"message": "unknown api key"}, status=401)
        return await handler(request)

    async def types(_: web.Request) -> web.Response:
        return web.json_response([{"id": 1, "name": "SHIRT"}, {"id": 2, "name": "TROUSERS"}])

    async def put_product(request: web.Request) -> web.Response:
        product_id = request.match_info["id"]
        created = product_id not in state.products
        body = await request.json()
        if body.get("name") == "reject-me":
            return web.json_response({"message": "name is reserved"}, status=409)
        state.products[product_id] = {"id": product_id, **body}
        return web.json_response(state.products[product_id], status=201 if created else 200)

    def reader(records: dict[str, dict[str, Any]], kind: str) -> Any:
        async def read(request: web.Request) -> web.Response:
            record = records.get(request.match_info["id"])
            if record is None:
                return web.json_response({"message": f"no such {kind}"}, status=404)
            return web.json_response(record)

        return read

    async def upload(request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        # The made-up API does not decode images: it reports every one as 1x1.
        size = len(upload.file.read())
        answer = {"id": form["id"], "bytes": size, "width": 1, "height": 1}
        return web.json_response(answer, status=201)

    async def upload_photo(request: web.Request) -> web.Response:
        form = await request.post()
        if state.photo_delay:
            await asyncio.sleep(state.photo_delay)
        state.photos_uploaded += 1
        upload = form["photo"]
        assert isinstance(upload, web.FileField)
        size = len(upload.file.read())
        return web.json_response({"id": state.photos_uploaded, "bytes": size}, status=201)

    async def register_callback(request: web.Request) -> web.Response:
        body = await request.json()
        state.callbacks[body["url"]] = body["authorization"]
        return web.json_response(body)

    async def put_widget(request: web.Request) -> web.Response:
        widget_id = request.match_info["id"]
        created = widget_id not in state.widgets
        state.widgets[widget_id] = {"id": widget_id, **await request.json()}
        return web.json_response(state.widgets[widget_id], status=201 if created else 200)

    async def result(_: web.Request) -> web.Response:
        return web.Response(body=RESULT_BYTES, content_type="application/octet-stream")

    # Uploads as large as the gateway takes (20 MB by default), not aiohttp's 1 MiB.
    app = web.Application(middlewares=[record_and_misbehave], client_max_size=64 * 1024 * 1024)
    app[ACME_STATE] = state
    app.router.add_get("/types", types)
    app.router.add_put("/products/{id}", put_product)
    app.router.add_get("/products/{id}", reader(state.products, "product"))
    app.router.add_post("/files", upload)
    app.router.add_get("/results/{id}", result)
    app.router.add_put("/callbacks", register_callback)
    app.router.add_post("/photos", upload_photo)
    app.router.add_put("/widgets/{id}", put_widget)
    app.router.add_get("/widgets/{id}", reader(state.widgets, "widget"))
    return app


def _product(body: dict[str, Any]) -> Product:
    return Product(
        str(body["id"]), body["name"], body["type"], body.get("sku"), NAME, "2026-01-01T00:00:00Z"
    )


def _widget(body: dict[str, Any]) -> Widget:
    return Widget(str(body["id"]), body["name"], body["sizeMm"])


class AcmeBackend(Backend[AcmeConfig]):
    """The backend object: declares itself, injects its credential, serves a few operations."""

    name = NAME
    version = "0.0.1"
    capabilities = frozenset(
        {
            "listProductTypes",
            "putProduct",
            "getProduct",
            "uploadProductImage",
            "downloadResult",
            "uploadUserPhoto",
            # Its own, from its fragment:
            "putAcmeWidget",
            "getAcmeWidget",
        }
    )
    config_type = AcmeConfig
    description = "A test backend living in tests/."
    event_types: ClassVar[Mapping[str, str]] = {
        "acme.done": "Acme finished something.",
        "acme.widget_ready": "Acme stored a widget (putAcmeWidget); data: the widget.",
    }
    openapi = "tests:acme_openapi.yaml"

    async def credentials(self, request: CredentialsRequest[AcmeConfig]) -> Credentials:
        config = request.config
        # The key is Acme's: a URL on any other origin (a redirect, a link in an answer) gets none.
        if not request.goes_to(config.base_url):
            return Credentials()
        key = config.api_key.reveal()
        return Credentials(headers={"Authorization": f"Bearer {key}"}, secrets=frozenset({key}))

    async def operation(self, call: OperationCall[AcmeConfig]) -> Reply | web.StreamResponse:
        base = call.config.base_url
        if call.operation == "listProductTypes":
            answer = await call.upstream.request("GET", f"{base}/types", operation="getTypes")
            items = tuple(TypeName(t["name"]) for t in answer.json())
            return Reply(200, TypeList(NAME, items))
        if call.operation == "putProduct":
            product_id = str(call.path["productId"])
            body = {"name": call.body["name"], "type": call.body["type"]}
            answer = await call.upstream.request(
                "PUT", f"{base}/products/{product_id}", json=body, operation="putProduct"
            )
            return Reply(answer.status, _product(answer.json()))
        if call.operation == "getProduct":
            product_id = str(call.path["productId"])
            answer = await call.upstream.request("GET", f"{base}/products/{product_id}")
            return Reply(200, _product(answer.json()))
        if call.operation == "uploadProductImage":
            assert call.form is not None
            upload = call.form.files["file"]
            image_id = str(uuid.uuid4())  # chosen by the gateway, as the contract says

            def form() -> FormData:
                data = FormData()
                data.add_field("id", image_id)
                data.add_field("file", upload.open(), filename="image.png")
                return data

            retryable = call.body.get("name") == "retryable"
            answer = await call.upstream.request(
                "POST", f"{base}/files", data=form, idempotent=retryable
            )
            stored = answer.json()
            image = Image(
                id=stored["id"],
                kind=call.body["kind"],
                name=call.body.get("name") or upload.filename or "image",
                content_type=upload.content_type or "application/octet-stream",
                width=stored["width"],
                height=stored["height"],
                bytes=stored["bytes"],
            )
            return Reply(201, image)
        if call.operation == "downloadResult":
            async with call.upstream.stream("GET", f"{base}/results/1") as upstream:
                response = await call.services.start_stream(
                    content_type="application/octet-stream",
                    content_length=upstream.content_length,
                )
                async for chunk in upstream.content.iter_chunked(64 * 1024):
                    await response.write(chunk)
                await response.write_eof()
                return response
        if call.operation == "uploadUserPhoto":
            assert call.form is not None
            photo = call.form.files["file"]

            def photo_form() -> FormData:
                data = FormData()
                data.add_field("photo", photo.open(), filename="photo.jpg")
                return data

            answer = await call.upstream.request("POST", f"{base}/photos", data=photo_form)
            uploaded = Photo(str(answer.json()["id"]), dpi=call.body.get("dpi"))
            await call.services.emit("acme.done", Done(photo=uploaded.id))
            return Reply(201, uploaded)
        if call.operation == "putAcmeWidget":
            widget_id = str(call.path["widgetId"])
            answer = await call.upstream.request(
                "PUT", f"{base}/widgets/{widget_id}", json=call.body, operation="putWidget"
            )
            widget = _widget(answer.json())
            await call.services.emit("acme.widget_ready", widget)
            return Reply(answer.status, widget)
        if call.operation == "getAcmeWidget":
            widget_id = str(call.path["widgetId"])
            answer = await call.upstream.request("GET", f"{base}/widgets/{widget_id}")
            return Reply(200, _widget(answer.json()))
        raise ProblemError(501, "not-implemented", "Not implemented")

    def callback_account(self, config: AcmeConfig) -> str | None:
        return config.account

    async def callback(self, call: CallbackCall[AcmeConfig]) -> Reply:
        expected = call.config.callback_secret.reveal() if call.config else None
        given = call.headers.get("Authorization", "")
        given_bytes = given.encode("utf-8", "surrogateescape")  # as sent, UTF-8 or not
        if expected is None or not hmac.compare_digest(given_bytes, expected.encode()):
            raise ProblemError(401, "unauthorized", "Unauthorized", "bad callback secret")
        if call.account is not None:
            return await self._account_callback(call)
        # 204 whether new or a duplicate: the upstream only needs to know it was taken.
        await call.services.emit(
            "acme.done", Done(path=call.callback_path), dedupe_key=call.callback_path
        )
        return Reply(204)

    async def _account_callback(self, call: CallbackCall[AcmeConfig]) -> Reply:
        """The account's one webhook serves all its tenants: the payload names the widget, and
        the tenant that created it through the gateway is the one told."""
        try:
            widget_id = str(json.loads(call.body)["widgetId"])
        except (ValueError, KeyError, TypeError):
            raise bad_request("the body names no widgetId") from None
        owner = await call.owner("acme-widget", widget_id)
        if owner is None:  # unknown, or another account's: no tenant of this one is told
            raise not_found(f"acme-widget {widget_id} does not exist")
        data = Done(path=call.callback_path, widget_id=widget_id)
        dedupe = f"{call.callback_path}:{widget_id}"
        await call.services_for(owner).emit("acme.done", data, dedupe_key=dedupe)
        return Reply(204)

    async def register_callbacks(self, registration: CallbackRegistration[AcmeConfig]) -> None:
        config = registration.config
        if config.callback_secret is None:
            return
        body = {
            "url": registration.callback_url + "done/",
            "authorization": config.callback_secret.reveal(),
        }
        await registration.upstream.request("PUT", f"{config.base_url}/callbacks", json=body)


class AcmePlugin:
    """The plugin: registers the backend and offers its simulator."""

    @hookimpl
    def gateway_register_backends(self, register: Callable[[type[Backend[Any]]], None]) -> None:
        register(AcmeBackend)

    @hookimpl
    def gateway_sandbox(self) -> Sandbox:
        return Sandbox(
            backend=NAME,
            make_app=lambda: make_acme_upstream("sandbox-acme-key"),
            tenant_config=lambda url: {
                "base_url": url,
                "api_key": Secret.literal("sandbox-acme-key"),
            },
        )
