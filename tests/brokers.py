"""Real message brokers of the tests' own, for the sink plugins: NATS with JetStream and RabbitMQ.

Debian's `nats-server` and `rabbitmq-server` packages (`make brokers` installs them as root, as
`make postgres` does PostgreSQL). Each server runs from a temporary folder on free ports, can be
stopped and started again on the same ports with the same data (a broker restart mid-burst), and
is removed at the end. Without the binaries the fixtures fail in CI (`CI=true`) and skip
elsewhere.

RabbitMQ is an Erlang node: it gets a private node name, distribution port, Erlang cookie (a
`.erlang.cookie` in its own HOME) and an `epmd` of its own on a free port, so it touches nothing of
a system RabbitMQ or of another test run's.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
from aiohttp.test_utils import unused_port

NATS_SERVER = "nats-server"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's, without the su wrapper
EPMD = "epmd"
START_TIMEOUT = 90.0  # seconds: RabbitMQ's boot on a busy two-core machine


def require(program: str, package: str) -> str:
    """The program's path, or the test fails in CI and is skipped elsewhere."""
    found = shutil.which(program) or (program if os.access(program, os.X_OK) else None)
    if found is None:
        message = f"{program} not found (apt-get install {package}, or make brokers)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message + ": the sink tests must run in CI")
        pytest.skip(message)
    return found


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the broker exited ({process.returncode}):\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the broker did not listen on {port} in {START_TIMEOUT} s")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # both shut down cleanly on it
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class NatsServer:
    """`nats-server -js` with its JetStream store in a temporary folder, a user and password."""

    def __init__(self, program: str) -> None:
        self.program = program
        self.root = Path(tempfile.mkdtemp(prefix="gateway-nats-"))
        self.port = unused_port()
        self.user = "gateway"
        self.password = "nats-pw-" + secrets.token_hex(8)
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, subject: str, *, credentials: bool = True) -> str:
        auth = f"{self.user}:{self.password}@" if credentials else ""
        return f"nats://{auth}127.0.0.1:{self.port}/{subject}"

    @property
    def client_url(self) -> str:
        return f"nats://{self.user}:{self.password}@127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.root / "server.log"
        self._process = subprocess.Popen(
            [self.program, "-js", "-sd", str(self.root / "jetstream"), "-a", "127.0.0.1",
             "-p", str(self.port), "--user", self.user, "--pass", self.password,
             "-l", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        log.touch()
        _wait_for_port(self.port, self._process, log)

    def stop(self) -> None:
        _stop(self._process)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RabbitServer:
    """A private RabbitMQ node: its own name, ports, cookie, epmd, data and logs."""

    def __init__(self, program: str, epmd: str) -> None:
        self.program, self.epmd = program, epmd
        self.root = Path(tempfile.mkdtemp(prefix="gateway-rabbitmq-"))
        self.port = unused_port()
        self.user = "gateway"
        self.password = "amqp-pw-" + secrets.token_hex(8)
        self.node = f"gwtest{os.getpid()}{self.port}@localhost"
        self.epmd_port = unused_port()
        (self.root / "home").mkdir()
        cookie = self.root / "home" / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"default_user = {self.user}\ndefault_pass = {self.password}\n"
            "loopback_users = none\n"
        )
        self._epmd: subprocess.Popen[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, exchange: str, routing_key: str, *, credentials: bool = True) -> str:
        auth = f"{self.user}:{self.password}@" if credentials else ""
        return f"amqp://{auth}127.0.0.1:{self.port}/{exchange}/{routing_key}"

    @property
    def client_url(self) -> str:
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.root / "home"),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(unused_port()),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbitmq.pid"),
        }

    def start(self) -> None:
        if self._epmd is None:
            self._epmd = subprocess.Popen(
                [self.epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        log = self.root / "server.log"
        with log.open("ab") as out:
            self._process = subprocess.Popen(
                [self.program], env=self._env(), stdout=out, stderr=subprocess.STDOUT,
                cwd=self.root, start_new_session=True,
            )  # fmt: skip
        _wait_for_port(self.port, self._process, log)

    def stop(self) -> None:
        _stop(self._process)

    def remove(self) -> None:
        self.stop()
        _stop(self._epmd)
        shutil.rmtree(self.root, ignore_errors=True)


class Startable(Protocol):
    def start(self) -> None: ...

    def remove(self) -> None: ...


Server = TypeVar("Server", bound=Startable)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """The server started, and stopped and removed (its folder too) when the block ends."""
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """One NATS server with JetStream for the session (a test that restarts it starts it again)."""
    with running(NatsServer(require(NATS_SERVER, "nats-server"))) as server:
        yield server


@pytest.fixture(scope="session")
def rabbit_server() -> Iterator[RabbitServer]:
    """One RabbitMQ node for the session (a test that restarts it starts it again)."""
    node = RabbitServer(require(RABBITMQ_SERVER, "rabbitmq-server"), require(EPMD, "erlang"))
    with running(node) as server:
        yield server
