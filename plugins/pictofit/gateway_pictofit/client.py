"""The PICTOFiT calls the plugin makes, through the gateway's upstream client.

Each method is one documented call. Answers the plugin must read (the type lists, a product's
configurations) become a 502 (`UpstreamServerError`) when they are not the expected shape, instead
of a KeyError deep in a handler; answers whose body is undocumented (PUTs, `ready`) are used when
they are a configuration and otherwise ignored. GETs and PUTs are retried by the
core; the file upload is retried too, because its id is chosen here and a repeat replaces the same
file; `ready` is a POST and is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import quote

import aiohttp
import orjson

from gateway.plugin_api import BoundUpstream, TtlCache, UpstreamServerError
from gateway_pictofit import NAME
from gateway_pictofit.auth import Auth
from gateway_pictofit.config import PictofitConfig

__all__ = ["JSON", "Kind", "PictofitClient", "TypeCache", "TypeEntry", "open_client"]

JSON = dict[str, Any]
TypeEntry = tuple[Any, str]  # (id as the service gives it, name)
Kind = Literal["product", "image"]
# A tenant's product and file type lists: (tenant, kind) -> entries.
TypeCache = TtlCache[tuple[str, Kind], tuple[TypeEntry, ...]]


def _unexpected(what: str, status: int) -> UpstreamServerError:
    return UpstreamServerError(NAME, status, f"unexpected answer: {what}")


def _object_or_none(body: bytes) -> JSON | None:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) and parsed.get("id") else None


class PictofitClient:
    """One tenant's view of the service, for the length of one gateway call; `types` is the
    backend object's cache of the type lists."""

    def __init__(self, upstream: BoundUpstream[PictofitConfig], types: TypeCache) -> None:
        self.upstream = upstream
        self.config = config = upstream.config
        self.assumptions = config.assumptions
        self._types_cache = types
        self._base_url = config.base_url

    def url(self, path: str) -> str:
        """The service's URL of `path`: `base_url` read once a call (the config's class is
        interpreted, its attributes a lookup each)."""
        return self._base_url + path

    async def _get_json(self, path: str, operation: str) -> tuple[int, Any]:
        answer = await self.upstream.request("GET", self.url(path), operation=operation)
        try:
            return answer.status, answer.json()
        except ValueError:
            raise _unexpected("not JSON", answer.status) from None

    # --- names ---------------------------------------------------------------------------------

    async def _types(self, path: str, operation: str) -> list[TypeEntry]:
        status, body = await self._get_json(path, operation)
        id_key, name_key = self.assumptions.type_id_key, self.assumptions.type_name_key
        if not isinstance(body, list):
            raise _unexpected(f"{path} is not a JSON array", status)
        entries = []
        for item in body:
            if not isinstance(item, dict) or not isinstance(item.get(name_key), str):
                raise _unexpected(f"an entry of {path} has no {name_key}", status)
            if item.get(id_key) is None:
                raise _unexpected(f"an entry of {path} has no {id_key}", status)
            entries.append((item[id_key], item[name_key]))
        return entries

    async def type_list(self, kind: Kind) -> tuple[TypeEntry, ...]:
        """The product or file (image) types, from the tenant's cache while fresh: the ids are
        never hard-coded, always the service's own."""

        async def fetch() -> tuple[TypeEntry, ...]:
            if kind == "product":
                return tuple(
                    await self._types(self.assumptions.product_types_path, "getProductTypes")
                )
            return tuple(await self._types(self.assumptions.file_types_path, "getFileTypes"))

        key = (self.upstream.tenant, kind)
        return await self._types_cache.get(key, self.config.types_ttl_s, fetch)

    async def callback_types(self) -> list[TypeEntry]:
        return await self._types(self.assumptions.callback_types_path, "getCallbackTypes")

    # --- products and configurations ----------------------------------------------------------

    async def put_product(self, product_id: str, body: Mapping[str, Any]) -> None:
        url = self.url(f"/products/{product_id}")
        await self.upstream.request("PUT", url, operation="putProduct", json=body)

    async def put_configuration(
        self, configuration_id: str, body: Mapping[str, Any]
    ) -> JSON | None:
        """The configuration as answered, or None when the answer is not one (undocumented)."""
        url = self.url(f"/configurations/{configuration_id}")
        answer = await self.upstream.request("PUT", url, operation="putConfiguration", json=body)
        return _object_or_none(answer.body)

    async def configurations(self, product_id: str) -> list[JSON]:
        path = f"/products/{product_id}/configurations"
        status, body = await self._get_json(path, "getConfigurations")
        if not isinstance(body, list) or not all(
            isinstance(c, dict) and isinstance(c.get("id"), str) for c in body
        ):
            raise _unexpected("expected an array of configurations with ids", status)
        return body

    async def ready(self, configuration_id: str) -> JSON | None:
        """Flag for processing; the configuration as answered, or None (the doc shows none)."""
        path = f"/configurations/{configuration_id}/ready"
        answer = await self.upstream.request(
            "POST", self.url(path), operation="postReady", data=b""
        )
        return _object_or_none(answer.body)

    async def upload_file(
        self,
        *,
        file_id: str,
        path: Path,
        filename: str,
        content_type: str,
        name: str,
        configuration_id: str,
        type_id: Any,
    ) -> None:
        handles: list[IO[bytes]] = []

        def form() -> aiohttp.FormData:
            # A fresh body per attempt, streamed from the spooled file: memory stays bounded.
            handle = path.open("rb")
            handles.append(handle)
            data = aiohttp.FormData()
            data.add_field("id", file_id)
            data.add_field("name", name)
            data.add_field("configurationId", configuration_id)
            data.add_field("typeId", str(type_id))
            data.add_field("file", handle, filename=filename, content_type=content_type)
            return data

        try:
            await self.upstream.request(
                "POST", self.url("/files"), operation="postFile", data=form, idempotent=True
            )
        finally:
            for handle in handles:
                handle.close()

    # --- callbacks ----------------------------------------------------------------------------

    async def register_callback(self, type_id: Any, url: str, authorization: str) -> None:
        customer = quote(self.config.customer_id, safe="")
        path = f"/customers/{customer}/callbacks/{quote(str(type_id), safe='')}"
        body = {"url": url, "authorizationHeaderValue": authorization}
        await self.upstream.request("PUT", self.url(path), operation="putCallback", json=body)

    # --- results ------------------------------------------------------------------------------

    def download(self, url: str) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """Stream a result file (from wherever the service keeps it: the tenant's credential goes
        only to the service's own origin, see `auth`)."""
        return self.upstream.stream("GET", url, operation="getResult")


async def open_client(
    auth: Auth, types: TypeCache, upstream: BoundUpstream[PictofitConfig]
) -> PictofitClient:
    """The tenant's client for one call, its token fetched first if one is due."""
    if upstream.config.token is not None:  # an API key needs nothing fetched: nothing to await
        await auth.prepare(upstream)
    return PictofitClient(upstream, types)
