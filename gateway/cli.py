"""The `gateway` command: serve, keys new, spec, check, callbacks sync, new-backend."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import signal
import sqlite3
import sys
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson
import structlog
from aiohttp import web

from gateway import __version__, sandbox_run
from gateway.app import create_app
from gateway.config_converter import ConfigError
from gateway.config_loading import check_config, config_path, read_raw, read_settings
from gateway.logs import configure_logging
from gateway.plugins import PluginError, PluginHost
from gateway.scaffold import ScaffoldError, new_backend
from gateway.server import EdgeSite, ServingLoop, reserve_descriptors, settle_heap
from gateway.settings import Settings, StoreSettings
from gateway.state import CALLBACKS, PLUGINS
from gateway.supervisor import supervise
from gateway.tenants import digest_key, new_key

ORPHAN_CHECK = 1.0
HOST_ENV = "GATEWAY_HOST"
PORT_ENV = "GATEWAY_PORT"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigError, PluginError, ScaffoldError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except StartError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1


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
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving one port, each with its own delivery workers (PostgreSQL only)",
    )
    serve.add_argument("--host", help=f"overrides server.host (default: ${HOST_ENV})")
    serve.add_argument("--port", type=int, help=f"overrides server.port (default: ${PORT_ENV})")
    # Set by `--workers N` on the processes it starts: share the port, stop when orphaned; and
    # how many there are, for the line each logs when it listens.
    serve.add_argument("--worker-of", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--workers-total", type=int, default=1, help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    keys = commands.add_parser("keys", help="caller keys").add_subparsers(required=True)
    new = keys.add_parser("new", help="print a fresh caller key and its configuration line")
    new.add_argument("--tenant", required=True)
    new.set_defaults(run=_keys_new)

    spec = commands.add_parser(
        "spec", help="print the OpenAPI contract, with the installed backends' fragments"
    )
    spec.add_argument("--format", choices=["yaml", "json"], default="yaml")
    spec.add_argument("--config", help="leave out the plugins this configuration blocks")
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

    scaffold = commands.add_parser(
        "new-backend", help="write a new backend plugin of the standard shape into plugins/NAME"
    )
    scaffold.add_argument("name", metavar="NAME", help="the backend's name, e.g. shop_api")
    scaffold.add_argument(
        "--plugins-dir", type=Path, default=Path("plugins"), help="where (default: ./plugins)"
    )
    scaffold.set_defaults(run=_new_backend)
    return parser


def _new_backend(args: argparse.Namespace) -> int:
    written = new_backend(args.name, args.plugins_dir)
    root = args.plugins_dir / args.name
    for path in written:
        print(root / path)
    print(
        f"""
Backend {args.name!r} written to {root}/. Next:
  pip install -e {root}      (make does it by itself for every folder under plugins/)
  pytest {root}/tests
  gateway serve --sandbox    (its simulator among the others; GET /v1/backends lists it)"""
    )
    return 0


def _keys_new(args: argparse.Namespace) -> int:
    key = new_key()
    print(f"caller key (give it to the caller; it is not stored): {key}")
    print(f"configuration line for tenant {args.tenant!r}:")
    print(f'keys = ["{digest_key(key)}"]')
    return 0


def _spec(args: argparse.Namespace) -> int:
    blocked = read_settings(args.config).plugins.blocked if args.config else ()
    contract = PluginHost.build(blocked=blocked).contract()
    if args.format == "json":
        sys.stdout.write(orjson.dumps(contract.document, option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(contract.yaml_bytes.decode())
    return 0


def _check(args: argparse.Namespace) -> int:
    settings, plugins = _checked_config(args.config)
    backends = ", ".join(sorted(plugins.backends)) or "none"
    print(f"configuration is valid: {len(settings.tenants)} tenant(s); backends: {backends}")
    return 0


def _checked_config(path: str | None) -> tuple[Settings, PluginHost]:
    """The configuration `check` and `serve` accept: every mistake in it reported at once."""
    raw = read_raw(config_path(path))
    built: list[PluginHost] = []

    def config_types(blocked: tuple[str, ...]) -> Mapping[str, type[Any]]:
        built.append(PluginHost.build(blocked=blocked))
        built[-1].contract()  # the backends' fragments merge, and they serve what they bring
        return built[-1].config_types

    settings, _ = check_config(raw, config_types)
    return settings, built[-1]


def _callbacks_sync(args: argparse.Namespace) -> int:
    settings, _ = _checked_config(args.config)
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


class StartError(Exception):
    """The gateway cannot start for a reason outside its configuration (a busy port, a store it
    cannot open): one line, exit code 1."""


def _serve(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ConfigError(["--workers: at least 1"])
    # The image sets these (Dockerfile): `docker run IMAGE --sandbox` keeps its host, and the
    # HEALTHCHECK knows the port.
    args.host = args.host or os.environ.get(HOST_ENV) or None
    if args.port is None and os.environ.get(PORT_ENV):
        try:
            args.port = int(os.environ[PORT_ENV])
        except ValueError:
            raise ConfigError([f"${PORT_ENV}: must be a whole number"]) from None
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ConfigError(["--port: must be a port number, 0 to 65535 (0: any free port)"])
    if args.sandbox:
        settings = Settings(
            store=StoreSettings(url=f"sqlite:///{sandbox_run.SANDBOX_DATA}/gateway.db")
        )
    else:  # the checks `gateway check` makes, every one: none is found by the first call
        settings, _ = _checked_config(args.config)
    server = settings.server
    port = server.port if args.port is None else args.port
    server = attrs.evolve(server, host=args.host or server.host, port=port)
    settings = attrs.evolve(settings, server=server)
    if args.workers > 1 and (args.sandbox or _store_scheme(settings) == "sqlite"):
        raise ConfigError(
            [
                "--workers: the SQLite store serves one process; run one worker per database"
                ' file, or use PostgreSQL (store.url = "postgresql://...") for several'
            ]
        )
    configure_logging(settings.log.format, settings.log.level)
    if args.workers > 1:
        return supervise(settings, workers=args.workers, config=args.config)
    with asyncio.Runner(loop_factory=ServingLoop) as runner:
        runner.run(
            _run(settings, sandbox=args.sandbox, parent=args.worker_of, workers=args.workers_total)
        )
    return 0


def _store_scheme(settings: Settings) -> str:
    try:
        return settings.store.scheme()
    except (LookupError, OSError) as exc:  # the URL's secret reference cannot be read
        raise ConfigError([f"store.url: {exc}"]) from None


def _store_label(store: StoreSettings) -> str:
    """The store as an operator recognises it, without a password: a SQLite file's absolute path,
    a PostgreSQL URL's host and database, or the reference the URL is read from."""
    if store.url.startswith(("env:", "file:")):
        return f"{_store_scheme(Settings(store=store))} (url from {store.url})"
    scheme, _, rest = store.url.partition("://")
    if scheme == "sqlite":
        return f"sqlite:{Path(rest[1:]).absolute()}"
    parts = urllib.parse.urlsplit(store.url)
    return f"{scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


async def _run(
    settings: Settings, *, sandbox: bool, parent: int | None = None, workers: int = 1
) -> None:
    log = structlog.get_logger("gateway.serve")
    async with contextlib.AsyncExitStack() as stack:
        demo_key = None
        if sandbox:
            settings, demo_key = await stack.enter_async_context(sandbox_run.sandbox(settings))
        reserve_descriptors(settings.server.max_connections)
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        try:
            await runner.setup()
        except (OSError, sqlite3.Error) as exc:
            # The store opens first thing: a folder it cannot make, a file it cannot write.
            reason = getattr(exc, "strerror", None) or str(exc)
            raise StartError(
                f"cannot open the store {_store_label(settings.store)}: {reason}"
                " (store.url names a file this user can create and write)"
            ) from None
        stack.push_async_callback(runner.cleanup)
        # One of several processes on the port: the kernel spreads connections among them.
        site = EdgeSite(runner, settings.server, reuse_port=parent is not None)
        where = f"{settings.server.host}:{settings.server.port}"
        try:
            await site.start()
        except OSError as exc:
            hint = " (another process holds it: stop it, or choose another with --port)"
            busy = exc.errno == errno.EADDRINUSE
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartError(f"cannot listen on {where}: {reason}{hint if busy else ''}") from None
        base = site.name
        # Before the line that says it listens: a SIGTERM sent on reading it stops it cleanly.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "server.listening",
            url=base,
            store=_store_label(settings.store),
            tenants=len(settings.tenants),
            backends=sorted(app[PLUGINS].backends),
            workers=workers,
            pid=os.getpid(),
        )
        stack.callback(lambda: log.info("server.stopped", url=base, pid=os.getpid()))
        if demo_key:
            sandbox_run.print_sandbox_banner(base, demo_key)
        if parent is not None:
            stack.enter_context(_stop_when_orphaned(parent, stop))
        settle_heap()
        await stop.wait()


@contextlib.contextmanager
def _stop_when_orphaned(parent: int, stop: asyncio.Event) -> Iterator[None]:
    """A worker whose supervisor died (even by SIGKILL) stops rather than hold the port."""

    async def watch() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 - no event says the parent died
            await asyncio.sleep(ORPHAN_CHECK)
        stop.set()

    task = asyncio.get_running_loop().create_task(watch())
    try:
        yield
    finally:
        task.cancel()


if __name__ == "__main__":
    raise SystemExit(main())
