"""The `gateway` command: serve, keys new, spec, check, callbacks sync, new-backend."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson
import structlog
from aiohttp import web

from gateway import __version__
from gateway.app import create_app
from gateway.logs import configure_logging
from gateway.plugins import PluginError, PluginHost
from gateway.sandbox_kit import keep_state
from gateway.scaffold import ScaffoldError, new_backend
from gateway.server import EdgeSite, reserve_descriptors
from gateway.settings import (
    ConfigError,
    Settings,
    StoreSettings,
    TenantSettings,
    check_config,
    config_path,
    read_raw,
    read_settings,
)
from gateway.state import CALLBACKS, PLUGINS
from gateway.tenants import digest_key, new_key

SANDBOX_DATA = Path(".gateway-data")
# `serve --workers N`: how the supervisor watches, restarts and stops its worker processes.
SUPERVISE_INTERVAL = 0.2
QUICK_DEATH = 5.0  # a worker that exits sooner than this after starting failed to start
GIVE_UP_AFTER = 5  # quick deaths in a row of one worker stop them all (exit 1)
RESTART_BACKOFF_CAP = 10.0
STOP_GRACE = 30.0  # seconds the workers get to finish after SIGTERM
ORPHAN_CHECK = 1.0
SANDBOX_KEY_ENV = "GATEWAY_SANDBOX_KEY"
HOST_ENV = "GATEWAY_HOST"
PORT_ENV = "GATEWAY_PORT"
SANDBOX_TENANT = "demo"


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
        settings = Settings(store=StoreSettings(url=f"sqlite:///{SANDBOX_DATA}/gateway.db"))
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
        return _supervise(args, settings)
    asyncio.run(
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
            settings, demo_key = await stack.enter_async_context(_sandbox(settings))
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
            _print_sandbox_banner(base, demo_key)
        if parent is not None:
            stack.enter_context(_stop_when_orphaned(parent, stop))
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


def _supervise(args: argparse.Namespace, settings: Settings) -> int:
    """Start `--workers` processes on one port (SO_REUSEPORT), restart any that dies, and stop
    them all on SIGTERM or SIGINT. Each opens the store and runs its own delivery workers."""
    log = structlog.get_logger("gateway.workers")
    command = [sys.executable, "-m", "gateway.cli", "serve", "--worker-of", str(os.getpid())]
    command += ["--workers-total", str(args.workers)]
    command += ["--host", settings.server.host, "--port", str(settings.server.port)]
    if args.config:
        command += ["--config", args.config]
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _: stopping.append(signum))

    def start() -> subprocess.Popen[bytes]:
        child = subprocess.Popen(command)
        log.info("workers.started", pid=child.pid)
        return child

    children = [start() for _ in range(args.workers)]
    started = [time.monotonic()] * args.workers
    restart_at: list[float | None] = [None] * args.workers
    quick_deaths = [0] * args.workers
    code = 0
    while not stopping:
        time.sleep(SUPERVISE_INTERVAL)
        now = time.monotonic()
        for i, child in enumerate(children):
            if stopping or child.poll() is None:
                continue
            if restart_at[i] is None:  # just exited
                lived = now - started[i]
                quick_deaths[i] = quick_deaths[i] + 1 if lived < QUICK_DEATH else 0
                log.warning(
                    "workers.exited", pid=child.pid, code=child.returncode, lived_s=round(lived, 1)
                )
                if quick_deaths[i] >= GIVE_UP_AFTER:
                    log.error("workers.giving_up", reason="a worker keeps exiting as it starts")
                    stopping.append(0)
                    code = 1
                    break
                backoff = 0.5 * 2 ** quick_deaths[i] if quick_deaths[i] else 0.0
                restart_at[i] = now + min(RESTART_BACKOFF_CAP, backoff)
            if now >= (restart_at[i] or 0.0):
                children[i], started[i], restart_at[i] = start(), now, None
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    log.info("workers.stopped", workers=len(children))
    return code


@contextlib.asynccontextmanager
async def _sandbox(settings: Settings) -> AsyncIterator[tuple[Settings, str]]:
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


def _print_sandbox_banner(base: str, key: str) -> None:
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


if __name__ == "__main__":
    raise SystemExit(main())
