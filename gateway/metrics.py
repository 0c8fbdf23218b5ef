"""Prometheus metrics, in a registry of the app's own (tests build many apps in one process).

Labels are route names (operationIds), methods, statuses and backend names: never ids, paths or
anything a caller controls, so no secret or unbounded value can become a label.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "StoreMetrics", "UpstreamMetrics"]

MetricT = TypeVar("MetricT", Counter, Gauge, Histogram)


def labelled(metric: MetricT) -> Callable[..., MetricT]:
    """`metric.labels`, remembered per tuple of label values (positional): looking a child up
    takes a lock and a validation each time, twice per request and per upstream call. Label
    values are bounded by design (operationIds, statuses, backends), and so is the cache."""
    return functools.lru_cache(maxsize=4096)(metric.labels)


class UpstreamMetrics:
    """The upstream metrics, registered in the app's own registry (never the global one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "gateway_upstream_calls_total",
            "Upstream calls (attempts), by upstream status or failure kind.",
            ["backend", "operation", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "gateway_upstream_call_duration_seconds",
            "Duration of one upstream attempt, until its body was read.",
            ["backend", "operation"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.breaker = Gauge(
            "gateway_upstream_breaker_state",
            "Circuit breaker state per backend: 0 closed, 1 half-open, 2 open.",
            ["backend"],
            registry=registry,
        )
        self.calls_by = labelled(self.calls)  # (backend, operation, status)
        self.latency_by = labelled(self.latency)  # (backend, operation)


class StoreMetrics:
    """What the store's retention purge did (`gateway.store.retention.Purger`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "gateway_store_purged_rows_total",
            "Rows the retention purge deleted, by table.",
            ["table"],
            registry=registry,
        )
        self.oldest = Gauge(
            "gateway_store_oldest_event_age_seconds",
            "Age of the oldest event the store keeps (0 without events), at the last purge.",
            registry=registry,
        )

    def purged(self, table: str, rows: int) -> None:
        self.rows.labels(table).inc(rows)

    def oldest_event_age(self, seconds: float) -> None:
        self.oldest.set(seconds)


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
        self.store = StoreMetrics(self.registry)
        self._requests = labelled(self.requests)
        self._latency = labelled(self.latency)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self._requests(route, method, str(status)).inc()
        self._latency(route, method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
