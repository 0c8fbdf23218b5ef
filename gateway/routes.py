"""The one route table: every operationId of the contract and the handler that answers it.

Paths and methods come from the contract, so a route cannot drift from it; a test checks that this
table and the contract name the same operations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from gateway import dispatch, handlers
from gateway.contract import Contract
from gateway.webhooks import api as webhooks

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
    "getDocs": handlers.get_docs,
    "listBackends": handlers.list_backends,
    "listEventTypes": handlers.list_event_types,
    "listEvents": webhooks.list_events,
    "getEvent": webhooks.get_event,
    "listEventDeliveries": webhooks.list_event_deliveries,
    "redeliverEvent": webhooks.redeliver_event,
    "createSubscription": webhooks.create_subscription,
    "listSubscriptions": webhooks.list_subscriptions,
    "getSubscription": webhooks.get_subscription,
    "updateSubscription": webhooks.update_subscription,
    "deleteSubscription": webhooks.delete_subscription,
    "rotateSubscriptionSecret": webhooks.rotate_subscription_secret,
    "sendTestEvent": webhooks.send_test_event,
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
