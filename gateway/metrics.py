"""Prometheus metrics, in a registry of the app's own (tests build many apps in one process).

Labels are route names (operationIds), methods, statuses and backend names: never ids, paths or
anything a caller controls, so no secret or unbounded value can become a label.
"""

from __future__ import annotations

import bisect
import math
import os
import time
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

__all__ = [
    "CONTENT_TYPE_LATEST",
    "HotCounter",
    "HotHistogram",
    "Metrics",
    "StoreMetrics",
    "UpstreamMetrics",
]

# As prometheus_client decides whether counters and histograms show `_created` samples.
_CREATED = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in {
    "true",
    "1",
    "t",
}


class HotCounter:
    """A counter of the request path, exposed as prometheus_client's `Counter` would expose it.

    Counted as plain numbers per tuple of label values, and made into samples when the registry
    is collected: a `Counter` child's `inc()` takes a lock and two checks, twice per request and
    per upstream attempt. Only the event loop's thread counts and collects.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self._name = name.removesuffix("_total")
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._values: dict[tuple[str, ...], list[float]] = {}  # labels -> [value, created]
        registry.register(self)

    def inc(self, labels: tuple[str, ...]) -> None:
        found = self._values.get(labels)
        if found is None:
            self._values[labels] = [1.0, time.time()]
        else:
            found[0] += 1.0

    def describe(self) -> Iterable[Metric]:
        return [Metric(self._name, self._documentation, "counter")]

    def collect(self) -> Iterable[Metric]:
        metric = Metric(self._name, self._documentation, "counter")
        for labels, (value, created) in list(self._values.items()):
            names = dict(zip(self._labelnames, labels, strict=True))
            metric.add_sample(self._name + "_total", names, value)
            if _CREATED:
                metric.add_sample(self._name + "_created", names, created)
        return [metric]


class HotHistogram:
    """A histogram of the request path, exposed as prometheus_client's `Histogram` would expose
    it (buckets, count, sum, created), observed as plain numbers (see `HotCounter`)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = tuple(bounds)
        self._le = tuple(floatToGoString(b) for b in bounds)  # type: ignore[no-untyped-call]
        # labels -> [per-bucket counts (not cumulative)..., sum, created]
        self._values: dict[tuple[str, ...], list[float]] = {}
        registry.register(self)

    def observe(self, labels: tuple[str, ...], amount: float) -> None:
        found = self._values.get(labels)
        if found is None:
            found = self._values[labels] = [0.0] * len(self._bounds) + [0.0, time.time()]
        found[bisect.bisect_left(self._bounds, amount)] += 1.0  # the first bound >= amount
        found[-2] += amount

    def describe(self) -> Iterable[Metric]:
        return [Metric(self._name, self._documentation, "histogram")]

    def collect(self) -> Iterable[Metric]:
        metric = Metric(self._name, self._documentation, "histogram")
        buckets = len(self._bounds)
        for labels, values in list(self._values.items()):
            names = dict(zip(self._labelnames, labels, strict=True))
            total = 0.0
            for le, count in zip(self._le, values[:buckets], strict=True):
                total += count
                metric.add_sample(self._name + "_bucket", {**names, "le": le}, total)
            metric.add_sample(self._name + "_count", names, total)
            if self._bounds[0] >= 0:
                metric.add_sample(self._name + "_sum", names, values[-2])
            if _CREATED:
                metric.add_sample(self._name + "_created", names, values[-1])
        return [metric]


class UpstreamMetrics:
    """The upstream metrics, registered in the app's own registry (never the global one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = HotCounter(
            "gateway_upstream_calls_total",
            "Upstream calls (attempts), by upstream status or failure kind.",
            ["backend", "operation", "status"],
            registry,
        )
        self.latency = HotHistogram(
            "gateway_upstream_call_duration_seconds",
            "Duration of one upstream attempt, until its body was read.",
            ["backend", "operation"],
            registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.breaker = Gauge(
            "gateway_upstream_breaker_state",
            "Circuit breaker state per backend: 0 closed, 1 half-open, 2 open.",
            ["backend"],
            registry=registry,
        )


class StoreMetrics:
    """What the store's retention purge did (`gateway.store.retention.Purger`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "gateway_store_purged_rows_total",
            "Rows the retention purge deleted, by table (payloads: events it took the payload of).",
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
        self.requests = HotCounter(
            "gateway_http_requests_total",
            "Requests answered, by route (operationId), method and status.",
            ["route", "method", "status"],
            self.registry,
        )
        self.latency = HotHistogram(
            "gateway_http_request_duration_seconds",
            "Time to answer a request, by route (operationId) and method.",
            ["route", "method"],
            self.registry,
        )
        self.upstream = UpstreamMetrics(self.registry)
        self.store = StoreMetrics(self.registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.inc((route, method, str(status)))
        self.latency.observe((route, method), seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
