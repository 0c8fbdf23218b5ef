"""Delivering the gateway's events to NATS JetStream: `nats://host:port/subject` subscriptions."""
