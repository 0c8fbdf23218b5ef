"""Delivering the gateway's events to RabbitMQ: `amqp://host:port/exchange/routing-key`
subscriptions."""
