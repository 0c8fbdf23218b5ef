"""A real PostgreSQL server of the tests' own: `initdb` into a temporary folder, a free port.

The binaries come from Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`, the
newest found at run time) or from PATH. PostgreSQL refuses to run as root: as root, the server runs
as the `postgres` system user (created if missing) and its folder is owned by that user. Without
the binaries the fixtures fail in CI (`CI=true`) and skip elsewhere (`make test` installs them as
root). `bench/` uses the same class.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import unused_port

from tests.brokers import running

SERVER_USER = "postgres"


def find_binaries() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: Debian's newest version, else PATH."""

    def version(folder: str) -> tuple[int, ...]:
        name = Path(folder).parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for folder in debian:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


class PostgresServer:
    """One server: `start()`, `stop()` (fast shutdown, as an operator would), `start()` again."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data = self.root / "data"
        self.port = unused_port()
        self._as_root = os.geteuid() == 0
        self._databases = itertools.count(1)
        if self._as_root:
            _ensure_user(SERVER_USER)
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, *, durable: bool = False) -> None:
        """Start it; not `durable`, it skips fsync: the tests stop the server cleanly (a shutdown
        checkpoint), never the machine. Benchmarks run it durable, as in production."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c max_connections=200 -c shared_buffers=64MB"
        )
        if not durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "start", "-D", str(self.data), "-w", "-t", "60",
                  "-l", str(self.root / "server.log"), "-o", options)  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    async def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"test_{os.getpid()}_{next(self._databases)}"
        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        finally:
            await admin.close()
        return self.url(name)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.binaries / program), *args]
        if self._as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)


def require_binaries() -> Path:
    """The binaries, or the test fails in CI and is skipped elsewhere."""
    found = find_binaries()
    if found is None:
        message = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message + ": the PostgreSQL tests must run in CI")
        pytest.skip(message)
    return found


def running_server() -> contextlib.AbstractContextManager[PostgresServer]:
    """A server started, and removed when the block ends."""
    return running(PostgresServer(require_binaries()))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; tests take a database each (`pg_url`)."""
    with running_server() as server:
        yield server


@pytest.fixture
async def pg_url(pg_server: PostgresServer) -> str:
    """A fresh database on the session's server, for one test."""
    return await pg_server.create_database()
