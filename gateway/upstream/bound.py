"""`BoundUpstream`: the upstream client as a backend plugin sees it while it handles one caller
request (the tenant, the request id and the caller's deadline are known)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Generic, Protocol, TypeVar

import aiohttp
import orjson
from yarl import URL

from gateway.upstream.urls import UpstreamUrls
from gateway.upstream.values import BodyFactory, UpstreamCall, UpstreamResponse
from gateway.values import Credentials, value_repr

__all__ = ["IDEMPOTENT_METHODS", "BoundUpstream", "CredentialsProvider", "CredentialsRequest"]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Headers a caller (or a plugin passing the caller's headers on) may never set upstream: the
# gateway authenticates with its own credentials, from the credentials provider only.
_CALLER_FORBIDDEN_HEADERS: Final = frozenset({"authorization", "proxy-authorization"})
_NO_STATUSES: Final[frozenset[int]] = frozenset()

C = TypeVar("C")  # the backend's configuration type (`Backend.config_type`)


class Sender(Protocol):
    """What a `BoundUpstream` needs of its client (the backend's `UpstreamClient`), named here
    so that the bound view does not import the client that imports it."""

    @property
    def urls(self) -> UpstreamUrls: ...

    async def run(self, bound: BoundUpstream[Any], call: UpstreamCall) -> UpstreamResponse: ...

    def open_stream(
        self, bound: BoundUpstream[Any], call: UpstreamCall
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]: ...


class BoundUpstream(Generic[C]):
    """What a backend plugin uses while it handles one caller request; `config` is the tenant's
    configuration for the backend."""

    def __init__(
        self,
        client: Sender,
        *,
        tenant: str,
        config: C,
        request_id: str,
        operation: str,
        deadline: float,
    ) -> None:
        self.client = client
        self.tenant = tenant
        self.config = config
        self.request_id = request_id
        self.operation = operation
        self.deadline = deadline

    async def request(
        self,
        method: str,
        url: str,
        *,
        operation: str | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | BodyFactory | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        expect: Collection[int] = (),
    ) -> UpstreamResponse:
        """Send, retrying as the policy allows; return a 2xx or `expect`ed answer, else raise.

        `data` as a zero-argument callable builds a fresh body (an `aiohttp.FormData`, say) for
        each attempt, so that a multipart upload can be retried when the plugin passes
        `idempotent=True`.
        """
        call = self._prepare(
            method, url, operation, params, json, data, headers, idempotent, expect
        )
        return await self.client.run(self, call)

    def stream(
        self,
        method: str,
        url: str,
        *,
        operation: str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """A 2xx response whose body the plugin reads as it likes (`response.content`).

        Retries and the breaker apply until 2xx headers arrive; the attempt's log line is written
        when the context exits. Reading is bounded by the attempt's timeout (and the deadline).
        """
        call = self._prepare(method, url, operation, params, None, None, headers, idempotent, ())
        return self.client.open_stream(self, call)

    def _prepare(
        self,
        method: str,
        url: str,
        operation: str | None,
        params: Mapping[str, str] | None,
        json: Any,
        data: bytes | BodyFactory | None,
        headers: Mapping[str, str] | None,
        idempotent: bool | None,
        expect: Collection[int],
    ) -> UpstreamCall:
        method = method.upper()
        target = self.client.urls.absolute(url)
        if params:
            target = target.extend_query(params)
        # Most calls pass no headers (and no `expect`): nothing to filter or convert then.
        clean = (
            {k: v for k, v in headers.items() if k.lower() not in _CALLER_FORBIDDEN_HEADERS}
            if headers
            else {}
        )
        body: bytes | BodyFactory | None = data
        if json is not None:
            if data is not None:
                raise ValueError("pass either json or data, not both")
            body = orjson.dumps(json)
            if not any(k.lower() == "content-type" for k in clean):
                clean["Content-Type"] = "application/json"
        return UpstreamCall(
            method=method,
            url=target,
            operation=operation or self.operation,
            headers=clean,
            body=body,
            idempotent=method in IDEMPOTENT_METHODS if idempotent is None else idempotent,
            expect=frozenset(expect) if expect else _NO_STATUSES,
        )


class CredentialsRequest(Generic[C]):
    """What a backend is asked for credentials with, before every attempt: the request they are
    for (so that a key never goes to a host it does not belong to), the caller request's bound
    client (to fetch a token with), and the credentials the upstream has just refused with a 401
    (drop that token, not one another request fetched meanwhile).

    A plain class with `Final` fields, as `gateway.values.Reply` and for the same reason."""

    def __init__(
        self,
        tenant: str,
        config: C,
        method: str,
        url: URL,
        upstream: BoundUpstream[C],
        refused: Credentials | None = None,
    ) -> None:
        self.tenant: Final = tenant
        self.config: Final = config
        self.method: Final = method
        self.url: Final = url
        self.upstream: Final = upstream
        self.refused: Final = refused

    def __repr__(self) -> str:
        return value_repr(self, ("tenant", "method", "url"))  # no credentials, not even refused

    def goes_to(self, base_url: str) -> bool:
        """Whether the request is for `base_url`'s origin: the only place a key for it may go
        (not a redirect's target, nor a link an answer named on another host)."""
        return self.upstream.client.urls.same_origin(self.url, base_url)


# The core's side: one provider per backend, whatever its configuration type.
CredentialsProvider = Callable[[CredentialsRequest[Any]], Awaitable[Credentials]]
