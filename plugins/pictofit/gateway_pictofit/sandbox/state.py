"""Everything the PICTOFiT sandbox knows, in one object reachable as ``app[SANDBOX_STATE]``.

All keys and tokens belong to the single customer ``settings.customer_id``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Coroutine
from typing import Any, ClassVar, Final

import aiohttp
import attrs
from aiohttp import web

from gateway.plugin_api import JSON, RecordedRequest
from gateway_pictofit.sandbox.records import (
    CallbackRegistration,
    IssuedToken,
    ResultFile,
    SandboxConfiguration,
    SandboxProduct,
    SentCallback,
    StateTransition,
    StoredFile,
)
from gateway_pictofit.sandbox.settings import Faults, PictofitSandboxSettings
from gateway_pictofit.sandbox.types import canonical_uuid

__all__ = ["SANDBOX_STATE", "PictofitSandboxState"]


class PictofitSandboxState:
    """Everything the simulator knows; tests read and steer it through ``app[SANDBOX_STATE]``."""

    # What a sandbox restart keeps (gateway.sandbox_kit.keep_state); tokens expire by the clock.
    durable: ClassVar = ("products", "configurations", "files", "callbacks", "result_files", "rng")

    def __init__(self, settings: PictofitSandboxSettings) -> None:
        self.settings = settings
        self.customer_id = canonical_uuid(settings.customer_id) or settings.customer_id.lower()
        self.products: dict[str, SandboxProduct] = {}
        self.configurations: dict[str, SandboxConfiguration] = {}
        self.files: dict[str, StoredFile] = {}
        # (customer_id, callback type name) -> registration
        self.callbacks: dict[tuple[str, str], CallbackRegistration] = {}
        self.requests: list[RecordedRequest] = []
        self.callbacks_sent: list[SentCallback] = []
        self.tokens: dict[str, IssuedToken] = {}
        self.result_files: dict[str, ResultFile] = {}
        self.transitions: list[StateTransition] = []
        self.faults = Faults()
        self.rng = random.Random(settings.seed)
        self.tasks: set[asyncio.Task[None]] = set()
        self.http: aiohttp.ClientSession | None = None

    def expire_token(self, access_token: str) -> None:
        """Make an issued token expired now (for tests of refresh logic)."""
        self.tokens[access_token] = attrs.evolve(self.tokens[access_token], expires_at=0.0)

    def configurations_of(self, product_id: str) -> list[SandboxConfiguration]:
        return [c for c in self.configurations.values() if c.product_id == product_id]

    def set_state(self, configuration: SandboxConfiguration, state_id: int) -> SandboxConfiguration:
        updated = attrs.evolve(configuration, state_id=state_id, modified_at=time.time())
        self.configurations[updated.id] = updated
        self.transitions.append(StateTransition(updated.id, state_id, updated.modified_at))
        return updated

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a background job that app cleanup cancels."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def summary(self) -> JSON:
        now = time.monotonic()
        return {
            "customerId": self.customer_id,
            "products": {
                p.id: {"name": p.name, "typeId": p.type_id} for p in self.products.values()
            },
            "configurations": {
                c.id: {"productId": c.product_id, "stateId": c.state_id}
                for c in self.configurations.values()
            },
            "files": len(self.files),
            "callbacks": {name: reg.url for (_, name), reg in self.callbacks.items()},
            "callbacksSent": [c.to_json() for c in self.callbacks_sent],
            "requests": len(self.requests),
            "liveTokens": sum(1 for t in self.tokens.values() if t.expires_at > now),
            "pendingTasks": len(self.tasks),
            "faults": attrs.asdict(self.faults),
        }


SANDBOX_STATE: Final = web.AppKey("pictofit_sandbox_state", PictofitSandboxState)
