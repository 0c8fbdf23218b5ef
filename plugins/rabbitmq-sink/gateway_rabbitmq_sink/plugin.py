"""The RabbitMQ sink plugin: registers its sink with the gateway (entry point group
`gateway.sinks`)."""

from __future__ import annotations

from collections.abc import Callable

from gateway.plugin_api import Sink, hookimpl
from gateway_rabbitmq_sink.sink import RabbitSink


@hookimpl
def gateway_register_sinks(register: Callable[[type[Sink]], None]) -> None:
    register(RabbitSink)
