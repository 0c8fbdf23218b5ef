"""The `gateway` command: serve, keys new, spec, check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import attrs
import orjson
from aiohttp import web

from gateway import __version__
from gateway.app import create_app
from gateway.contract import default_contract
from gateway.logs import configure_logging
from gateway.plugins import PluginError, PluginHost
from gateway.settings import (
    ConfigError,
    Settings,
    StoreSettings,
    TenantSettings,
    read_settings,
    structure_backend_configs,
)
from gateway.state import CALLBACKS
from gateway.tenants import digest_key, new_key

SANDBOX_DATA = Path(".gateway-data")
SANDBOX_KEY_ENV = "GATEWAY_SANDBOX_KEY"
SANDBOX_TENANT = "demo"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigError, PluginError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="The integration gateway.")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="TOML configuration (default: $GATEWAY_CONFIG)")
    serve.add_argument(
        "--sandbox",
        action="store_true",
        help="no configuration needed: every backend's simulator, SQLite, a demo tenant",
    )
    serve.add_argument("--workers", type=int, default=1, help="processes serving one port")
    serve.add_argument("--host", help="overrides server.host")
    serve.add_argument("--port", type=int, help="overrides server.port")
    serve.set_defaults(run=_serve)

    keys = commands.add_parser("keys", help="caller keys").add_subparsers(required=True)
    new = keys.add_parser("new", help="print a fresh caller key and its configuration line")
    new.add_argument("--tenant", required=True)
    new.set_defaults(run=_keys_new)

    spec = commands.add_parser("spec", help="print the OpenAPI contract")
    spec.add_argument("--format", choices=["yaml", "json"], default="yaml")
    spec.set_defaults(run=_spec)

    callbacks = commands.add_parser("callbacks", help="upstream callbacks").add_subparsers(
        required=True
    )
    sync = callbacks.add_parser("sync", help="register every tenant's callbacks now")
    sync.add_argument("--config", help="TOML configuration (default: $GATEWAY_CONFIG)")
    sync.set_defaults(run=_callbacks_sync)

    check = commands.add_parser("check", help="validate a configuration and say what is wrong")
    check.add_argument("--config", help="TOML configuration (default: $GATEWAY_CONFIG)")
    check.set_defaults(run=_check)
    return parser


def _keys_new(args: argparse.Namespace) -> int:
    key = new_key()
    print(f"caller key (give it to the caller; it is not stored): {key}")
    print(f"configuration line for tenant {args.tenant!r}:")
    print(f'keys = ["{digest_key(key)}"]')
    return 0


def _spec(args: argparse.Namespace) -> int:
    contract = default_contract()
    if args.format == "json":
        sys.stdout.write(orjson.dumps(contract.document, option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(contract.yaml_bytes.decode())
    return 0


def _check(args: argparse.Namespace) -> int:
    settings = read_settings(args.config)
    plugins = PluginHost.build(blocked=settings.plugins.blocked)
    structure_backend_configs(settings, plugins.config_types)
    backends = ", ".join(sorted(plugins.declarations)) or "none"
    print(f"configuration is valid: {len(settings.tenants)} tenant(s); backends: {backends}")
    return 0


def _callbacks_sync(args: argparse.Namespace) -> int:
    settings = read_settings(args.config)
    configure_logging(settings.log.format, "warning")
    return asyncio.run(_sync_callbacks(settings))


async def _sync_callbacks(settings: Settings) -> int:
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    try:
        states = await runner.app[CALLBACKS].sync_all()
    finally:
        await runner.cleanup()
    for (tenant, backend), state in sorted(states.items()):
        print(f"{tenant}\t{backend}\t{state.state}\t{state.detail or ''}")
    if not states:
        print("no tenant has a backend that registers callbacks")
    return 0 if all(s.state == "synced" for s in states.values()) else 1


def _serve(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ConfigError(["--workers: at least 1"])
    settings = Settings(store=StoreSettings(url=f"sqlite:///{SANDBOX_DATA}/gateway.db"))
    if not args.sandbox:
        settings = read_settings(args.config)
    server = settings.server
    server = attrs.evolve(server, host=args.host or server.host, port=args.port or server.port)
    settings = attrs.evolve(settings, server=server)
    if args.workers > 1:
        raise ConfigError(
            ["--workers: the SQLite store serves one process; run one worker per database file"]
        )
    configure_logging(settings.log.format, settings.log.level)
    asyncio.run(_run(settings, sandbox=args.sandbox))
    return 0


async def _run(settings: Settings, *, sandbox: bool) -> None:
    async with contextlib.AsyncExitStack() as stack:
        demo_key = None
        if sandbox:
            settings, demo_key = await stack.enter_async_context(_sandbox(settings))
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        base = f"http://{settings.server.host}:{settings.server.port}"
        if demo_key:
            _print_sandbox_banner(base, demo_key)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


@contextlib.asynccontextmanager
async def _sandbox(settings: Settings) -> AsyncIterator[tuple[Settings, str]]:
    """Start every installed backend's simulator on a free local port; one demo tenant uses them."""
    plugins = PluginHost.build(blocked=settings.plugins.blocked)
    key = os.environ.get(SANDBOX_KEY_ENV) or new_key()
    runners: list[web.AppRunner] = []
    backends = {}
    try:
        for sandbox in plugins.sandboxes():
            runner = web.AppRunner(sandbox.make_app(), access_log=None)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            backends[sandbox.backend] = sandbox.tenant_config(f"http://127.0.0.1:{port}")
        public_url = f"http://{settings.server.host}:{settings.server.port}"
        tenant = TenantSettings(id=SANDBOX_TENANT, keys=(digest_key(key),), backends=backends)
        server = attrs.evolve(settings.server, public_url=settings.server.public_url or public_url)
        yield attrs.evolve(settings, server=server, tenants=(tenant,)), key
    finally:
        for runner in runners:
            await runner.cleanup()


def _print_sandbox_banner(base: str, key: str) -> None:
    print(
        f"""
Gateway running in sandbox mode at {base}  (Ctrl-C stops it)
Every backend is its simulator; data is kept in {SANDBOX_DATA}/.
Demo tenant {SANDBOX_TENANT!r}, caller key: {key}

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


if __name__ == "__main__":
    raise SystemExit(main())
