"""The one route table: every operationId of the contract and the handler that answers it.

Paths and methods come from the contract, so a route cannot drift from it. The core's own
operations are listed here; the contract marks those a backend serves (`x-gateway-backend`), so a
backend bringing an operation edits no core code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from gateway import dispatch, handlers
from gateway.contract import Contract
from gateway.middleware import UNMATCHED, at_edge, edge_of, unmatched
from gateway.webhooks import api as webhooks, recovery_api as recovery

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CORE_HANDLERS: Mapping[str, Handler] = {
    "getHealth": handlers.get_health,
    "getReadiness": handlers.get_readiness,
    "getMetrics": handlers.get_metrics,
    "getContractJson": handlers.get_contract_json,
    "getContractYaml": handlers.get_contract_yaml,
    "getDocs": handlers.get_docs,
    "getDocsAsset": handlers.get_docs_asset,
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
    "listSubscriptionDeliveries": recovery.list_subscription_deliveries,
    "recoverSubscription": recovery.recover_subscription,
    "getRecovery": recovery.get_recovery,
    "receiveBackendCallback": dispatch.receive_callback,
}


def route_table(contract: Contract) -> Mapping[str, Handler]:
    """Each operation's handler: the core's own, or dispatch to a backend (`x-gateway-backend`)."""
    backend = {
        name: dispatch.handler_for(contract.operations[name])
        for name in contract.backend_operations
    }
    both = set(backend) & set(CORE_HANDLERS)
    if both:
        raise RuntimeError(f"operations both the core's and a backend's: {', '.join(sorted(both))}")
    return {**CORE_HANDLERS, **backend}


def add_routes(app: web.Application, contract: Contract) -> None:
    """Register a route per contract operation, named by its operationId, each behind the edge;
    then the `UNMATCHED` route, for any other path or method. Call when the app's state is set."""
    table = route_table(contract)
    missing = set(contract.operations) - set(table)
    if missing:
        raise RuntimeError(f"operations without a handler: {', '.join(sorted(missing))}")
    edge = edge_of(app)
    for operation in contract.operations.values():
        app.router.add_route(
            operation.method,
            operation.route_path,
            at_edge(edge, operation, table[operation.operation_id]),
            name=operation.operation_id,
        )
    # Last: aiohttp's router tries it only when nothing else has the path and method. Any
    # character: a decoded path may hold a line break, which `.` does not match.
    anything = r"/{path:[\s\S]*}"
    app.router.add_route("*", anything, at_edge(edge, None, unmatched), name=UNMATCHED)
