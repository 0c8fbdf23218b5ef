"""The webhook delivery metrics: attempts by outcome, delivery latency and queue depth."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Outcome labels of the attempts metric.
SUCCEEDED, RETRYING, FAILED, DISABLED = "succeeded", "retrying", "failed", "disabled"


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "gateway_webhook_attempts_total",
            "Delivery attempts, by outcome (succeeded, retrying, failed, disabled).",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "gateway_webhook_delivery_latency_seconds",
            "From the event's commit to the end of a successful attempt.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600, 36000),
            registry=registry,
        )
        self.queue_depth = Gauge(
            "gateway_webhook_queue_depth",
            "Deliveries not yet final (pending or being delivered).",
            registry=registry,
        )
