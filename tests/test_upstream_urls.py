"""The URLs a backend's client is asked to call are parsed and checked against the key's origin
once, and remembered by that client (per app and backend), not in module state shared by every
app of the process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from yarl import URL

from gateway.plugin_api import CredentialsRequest
from gateway.upstream import UpstreamClient
from tests.upstream_clients import bound, make_client

__all__ = ["make_client"]  # the fixture, for this module's tests

MakeClient = Callable[..., Awaitable[UpstreamClient]]


async def test_each_client_remembers_its_own_urls(make_client: MakeClient) -> None:
    """Each client (an app's, for one backend) holds its memo, gone with it; a URL text is parsed
    once (the same object again, which the client's redaction memo recognises)."""
    one, other = await make_client(), await make_client()
    assert one.urls is not other.urls
    url = one.urls.absolute("https://api.example/items/1")
    assert one.urls.absolute("https://api.example/items/1") is url
    assert other.urls.absolute("https://api.example/items/1") == url


async def test_a_key_goes_only_to_its_origin(make_client: MakeClient) -> None:
    """`goes_to` answers for the origin, whatever the path, and again from memory: the same."""
    client = await make_client()
    upstream = bound(client)
    for text, same in [
        ("https://api.example/items/1", True),
        ("https://api.example/other?page=2", True),
        ("http://api.example/items/1", False),
        ("https://api.example.evil/items/1", False),
        ("https://cdn.example/result.glb", False),
    ]:
        request: CredentialsRequest[None] = CredentialsRequest(
            "t1", None, "GET", client.urls.absolute(text), upstream
        )
        assert request.goes_to("https://api.example/v1") is same, text
        assert request.goes_to("https://api.example/v1") is same, text
    assert isinstance(client.urls.absolute("https://api.example/"), URL)
