"""Internal teams' view: a client generated from the contract drives a sandbox gateway, end to end
(the tests in this folder).

The client is generated once per session by openapi/generate_client.py (what `make client` runs,
failing on any generator warning) into a temporary directory and imported from there, from the
contract the tests' gateways serve: the installed backends' fragments and Acme's merged in (a
superset of what the sandbox serves, so that Acme's own operations are in it too). The gateway
runs as `gateway serve --sandbox` in a process of its own, one for this folder's tests. Every
call the tests make goes through the generated client only, and the generated models parse every
answer, so an answer that breaks the contract fails there too.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import unused_port

from tests.conftest import gateway_contract

ROOT = Path(__file__).resolve().parent.parent.parent
SANDBOX_KEY = "gwk_generated-client-e2e-key"
PACKAGE = "gateway_client"


def generator() -> ModuleType:
    """openapi/generate_client.py, what `make client` runs."""
    sys.path.insert(0, str(ROOT / "openapi"))
    try:
        return importlib.import_module("generate_client")
    finally:
        sys.path.remove(str(ROOT / "openapi"))


@pytest.fixture(scope="session")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, imported from where the generator wrote it."""
    output = tmp_path_factory.mktemp("client")
    spec = output / "openapi.yaml"
    spec.write_bytes(gateway_contract().yaml_bytes)
    generator().generate(output, spec)  # raises, with the generator's output, on any warning
    sys.path.insert(0, str(output))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(output))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="package")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`gateway serve --sandbox` as its own process, in a fresh directory (its SQLite file)."""
    workdir = tmp_path_factory.mktemp("sandbox")
    port = unused_port()
    env = {**os.environ, "GATEWAY_SANDBOX_KEY": SANDBOX_KEY}
    env.pop("GATEWAY_CONFIG", None)
    with (workdir / "gateway.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--sandbox", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process)
        yield url
    finally:
        process.terminate()
        assert process.wait(10) == 0


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, "the sandbox gateway exited during start-up"
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the sandbox gateway did not answer within {within} s")


class Generated:
    """The generated package as teams use it: `g.op("products", "put_product")`, `g.models`."""

    def __init__(self, package: ModuleType) -> None:
        self.models = importlib.import_module(f"{package.__name__}.models")
        self.types = importlib.import_module(f"{package.__name__}.types")
        self.name = package.__name__

    def op(self, tag: str, operation: str) -> Any:
        return importlib.import_module(f"{self.name}.api.{tag}.{operation}")


@pytest.fixture
async def api(client_package: ModuleType, sandbox_url: str) -> AsyncIterator[Any]:
    """An authenticated generated client (one per test: it binds to the test's event loop)."""
    client = client_package.AuthenticatedClient(base_url=sandbox_url, token=SANDBOX_KEY)
    async with client as session:
        yield session


async def until(probe: Callable[[], Awaitable[Any]], within: float = 15.0) -> Any:
    """Poll `probe` (through the client) until it returns something truthy."""
    async with asyncio.timeout(within):
        while not (found := await probe()):  # noqa: ASYNC110 - polling the gateway's own API
            await asyncio.sleep(0.05)
    return found
