"""The one route table: every operationId of the contract and the handler that answers it.

Paths and methods come from the contract, so a route cannot drift from it; a test checks that this
table and the contract name the same operations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from gateway import dispatch, handlers
from gateway.contract import Contract

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BACKEND_OPERATIONS = frozenset(
    {
        "listProductTypes",
        "listImageTypes",
        "putProduct",
        "getProduct",
        "putConfiguration",
        "listConfigurations",
        "uploadProductImage",
        "submitConfiguration",
        "downloadResult",
        "uploadUserPhoto",
        "listUserPhotos",
        "deleteUserPhoto",
        "mergeUser",
        "getPhotoSettings",
    }
)

CORE_HANDLERS: Mapping[str, Handler] = {
    "getHealth": handlers.get_health,
    "getReadiness": handlers.get_readiness,
    "getMetrics": handlers.get_metrics,
    "getContractJson": handlers.get_contract_json,
    "getContractYaml": handlers.get_contract_yaml,
    "listBackends": handlers.list_backends,
    "listEventTypes": handlers.list_event_types,
    "listEvents": handlers.list_events,
    "getEvent": handlers.get_event,
    "createSubscription": handlers.subscriptions_pending,
    "listSubscriptions": handlers.subscriptions_pending,
    "getSubscription": handlers.subscriptions_pending,
    "updateSubscription": handlers.subscriptions_pending,
    "deleteSubscription": handlers.subscriptions_pending,
    "rotateSubscriptionSecret": handlers.subscriptions_pending,
    "sendTestEvent": handlers.subscriptions_pending,
    "listEventDeliveries": handlers.subscriptions_pending,
    "redeliverEvent": handlers.subscriptions_pending,
    "receiveBackendCallback": dispatch.receive_callback,
}

HANDLERS: Mapping[str, Handler] = {
    **CORE_HANDLERS,
    **dict.fromkeys(BACKEND_OPERATIONS, dispatch.backend_operation),
}


def add_routes(app: web.Application, contract: Contract) -> None:
    """Register a route per contract operation, named by its operationId."""
    missing = set(contract.operations) - set(HANDLERS)
    if missing:
        raise RuntimeError(f"operations without a handler: {', '.join(sorted(missing))}")
    for operation in contract.operations.values():
        app.router.add_route(
            operation.method,
            operation.route_path,
            HANDLERS[operation.operation_id],
            name=operation.operation_id,
        )
