"""`gateway serve --sandbox`: every installed backend's simulator on a local port, and one demo
tenant using them, with what must outlast a restart kept beside the gateway's store."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import orjson
from aiohttp import web

from gateway.plugins import PluginHost
from gateway.sandbox_kit import keep_state
from gateway.settings import Settings, TenantSettings
from gateway.tenants import digest_key, new_key

SANDBOX_DATA = Path(".gateway-data")
SANDBOX_KEY_ENV = "GATEWAY_SANDBOX_KEY"
SANDBOX_TENANT = "demo"


@contextlib.asynccontextmanager
async def sandbox(settings: Settings) -> AsyncIterator[tuple[Settings, str]]:
    """Start every installed backend's simulator on a local port; one demo tenant uses them.

    What lasts across restarts is kept in the sandbox data folder beside the gateway's store, so
    it lasts exactly as long as the store does: the demo key, each simulator's records
    (`keep_state`), and its port (the answers it gave, result URLs, name it)."""
    plugins = PluginHost.build(blocked=settings.plugins.blocked)
    key = os.environ.get(SANDBOX_KEY_ENV) or _sandbox_key(SANDBOX_DATA / "sandbox-key")
    ports_file = SANDBOX_DATA / "simulators" / "ports.json"
    try:
        ports = orjson.loads(ports_file.read_bytes())
    except (OSError, ValueError):
        ports = {}
    runners: list[web.AppRunner] = []
    backends = {}
    try:
        for sandbox in plugins.sandboxes():
            app = sandbox.make_app()
            keep_state(app, SANDBOX_DATA / "simulators" / f"{sandbox.backend}.state")
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            try:
                await web.TCPSite(runner, "127.0.0.1", int(ports.get(sandbox.backend, 0))).start()
            except OSError:  # the last port is taken now: any other
                await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = ports[sandbox.backend] = runner.addresses[-1][1]
            backends[sandbox.backend] = sandbox.tenant_config(f"http://127.0.0.1:{port}")
        ports_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        ports_file.write_bytes(orjson.dumps(ports))
        public_url = f"http://{settings.server.host}:{settings.server.port}"
        tenant = TenantSettings(id=SANDBOX_TENANT, keys=(digest_key(key),), backends=backends)
        server = attrs.evolve(settings.server, public_url=settings.server.public_url or public_url)
        yield attrs.evolve(settings, server=server, tenants=(tenant,)), key
    finally:
        for runner in runners:
            await runner.cleanup()


def _sandbox_key(path: Path) -> str:
    """The demo tenant's caller key: made on the first start, then read from `path` (0600), so
    curl lines and clients keep working across restarts; a new one once the folder is gone."""
    with contextlib.suppress(FileNotFoundError):
        if key := path.read_text(encoding="utf-8").strip():
            return key
    key = new_key()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the store makes it: private
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key


def print_sandbox_banner(base: str, key: str) -> None:
    print(
        f"""
Gateway running in sandbox mode at {base}  (Ctrl-C stops it)
Every backend is its simulator; data is kept in {SANDBOX_DATA}/ (remove it to start afresh).
Demo tenant {SANDBOX_TENANT!r}, caller key (the same at every start): {key}

  export KEY={key}
  curl -s {base}/healthz
  curl -s -H "Authorization: Bearer $KEY" {base}/v1/backends
  curl -s -H "Authorization: Bearer $KEY" {base}/v1/product-types
  curl -s -X PUT -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
       -d '{{"name": "Demo shirt", "type": "GARMENT_2D"}}' \\
       {base}/v1/products/3f1c2a4e-8b7d-4c1e-9a2b-5d6e7f809a1b
  curl -s {base}/openapi.yaml | head
""",
        flush=True,
    )
