"""The NATS sink plugin: registers its sink with the gateway (entry point group `gateway.sinks`)."""

from __future__ import annotations

from collections.abc import Callable

from gateway.plugin_api import Sink, hookimpl
from gateway_nats_sink.sink import NatsSink


@hookimpl
def gateway_register_sinks(register: Callable[[type[Sink]], None]) -> None:
    register(NatsSink)
