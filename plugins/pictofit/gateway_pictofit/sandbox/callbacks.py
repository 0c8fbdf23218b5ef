"""The PICTOFiT sandbox's callbacks: registration, the trigger call, and delivery.

Callbacks
- Registration (``PUT /customers/{customerId}/callbacks/{callbackTypeId}``) takes the numeric id or
  the name, answers 200 with ``{customerId, callbackTypeId, name, url, registered}`` (never the
  authorization value); an empty ``url`` unregisters.
- When every configuration of a product is 4 or 5 (so each was flagged ready), the product's
  callback fires once: PRODUCT_COMPLETED if at least one configuration finished, else
  PRODUCT_REJECTED. Reprocessing a rejected configuration fires again when it completes.
- Delivery: ``POST url + objectId`` (the product id), empty body, ``Authorization:
  <authorizationHeaderValue>`` only when that value is non-empty, ``callback_timeout_s`` total
  timeout, one attempt, no retries; each attempt is recorded in ``state.callbacks_sent``.
- ``POST .../trigger/{id}`` delivers at once and answers 200 ``{callbackType, objectId, sent}``,
  ``sent`` being the recorded attempt or null when nothing is registered.
"""

from __future__ import annotations

import aiohttp
from aiohttp import hdrs, web
from yarl import URL

from gateway.plugin_api import SandboxProblem, json_object
from gateway_pictofit.sandbox.errors import optional_str
from gateway_pictofit.sandbox.records import CallbackRegistration, SentCallback
from gateway_pictofit.sandbox.state import SANDBOX_STATE, PictofitSandboxState
from gateway_pictofit.sandbox.types import CALLBACK_TYPES, canonical_uuid

__all__ = ["deliver", "put_callback", "trigger_callback"]


async def deliver(
    state: PictofitSandboxState, callback_type: str, object_id: str, source: str
) -> SentCallback | None:
    """POST the registered callback of this type for object_id; None when unregistered."""
    registration = state.callbacks.get((state.customer_id, callback_type))
    if registration is None:
        return None
    if state.http is None:
        raise RuntimeError("the sandbox app is not running (no callback session)")
    url = registration.url + object_id
    authorization = registration.authorization_header_value or None
    headers = {hdrs.AUTHORIZATION: authorization} if authorization else {}
    status: int | None = None
    error: str | None = None
    try:
        async with state.http.post(
            url,
            data=b"",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=state.settings.callback_timeout_s),
        ) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    sent = SentCallback(callback_type, object_id, url, authorization, status, error, source)
    state.callbacks_sent.append(sent)
    return sent


def _own_customer(request: web.Request) -> str:
    customer = canonical_uuid(request.match_info["customer_id"])
    if customer != request.app[SANDBOX_STATE].customer_id:
        raise SandboxProblem(403, "the customer id is not the caller's")
    return customer


def _callback_name(raw: str) -> tuple[int, str]:
    for type_id, name in CALLBACK_TYPES.items():
        if raw == str(type_id) or raw.upper() == name:
            return type_id, name
    raise SandboxProblem(404, f"unknown callback type {raw!r}")


async def put_callback(request: web.Request) -> web.Response:
    customer = _own_customer(request)
    type_id, name = _callback_name(request.match_info["callback_type"])
    body = await json_object(request)
    errors: dict[str, list[str]] = {}
    url = body.get("url")
    if url is None:
        url = ""
    if not isinstance(url, str):
        errors["url"] = ["url must be a string"]
    elif url and (URL(url).scheme not in ("http", "https") or not URL(url).host):
        errors["url"] = ["url must be an absolute http(s) URL or empty"]
    authorization = optional_str(body, "authorizationHeaderValue", errors) or ""
    if errors or not isinstance(url, str):
        raise SandboxProblem(400, "the callback is invalid", errors)
    callbacks = request.app[SANDBOX_STATE].callbacks
    if url:
        callbacks[(customer, name)] = CallbackRegistration(url, authorization)
    else:
        callbacks.pop((customer, name), None)
    return web.json_response(
        {
            "customerId": customer,
            "callbackTypeId": type_id,
            "name": name,
            "url": url,
            "registered": bool(url),
        }
    )


async def trigger_callback(request: web.Request) -> web.Response:
    _own_customer(request)
    _, name = _callback_name(request.match_info["callback_type"])
    object_id = request.match_info["object_id"]
    sent = await deliver(request.app[SANDBOX_STATE], name, object_id, "trigger")
    return web.json_response(
        {"callbackType": name, "objectId": object_id, "sent": sent.to_json() if sent else None}
    )
