"""Prometheus metrics, in a registry of the app's own (tests build many apps in one process).

Labels are route names (operationIds), methods, statuses and backend names: never ids, paths or
anything a caller controls, so no secret or unbounded value can become a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.upstream import UpstreamMetrics

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_http_requests_total",
            "Requests answered, by route (operationId), method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer a request, by route (operationId) and method.",
            ["route", "method"],
            registry=self.registry,
        )
        self.upstream = UpstreamMetrics(self.registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
