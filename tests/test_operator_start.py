"""An operator's first hour: `gateway check` says every mistake at once, in words, and `serve`
refuses what check refuses, says when it listens and stops, and fails in one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import unused_port

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = str(Path(sys.executable).parent / "gateway")
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
CUSTOMER = "3f1c2a4e-8b7d-4c1e-9a2b-5d6e7f809a1b"
PASTED = "sk-live-do-not-print-me"


def gateway(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real `gateway` command, without an inherited $GATEWAY_CONFIG."""
    environ = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    return subprocess.run(
        [GATEWAY, *args],
        cwd=cwd,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MANY_MISTAKES = f"""
[srever]
port = 1

[server]
port = "8080"
headers_timeout = -1

[log]
format = "pretty"

[events]
tenant_share = 2.0

[[tenants]]
id = "shop-eu"
keys = ["{DIGEST}"]

[tenants.backends.pictofit]
customer_id = "{CUSTOMER}"
api_key = "env:GATEWAY_TEST_UNSET"
callback_secret = "{PASTED}"

[[tenants]]
id = "shop-us"
keys = ["{OTHER}", "{DIGEST}"]

[tenants.backends.artifi]
base_url = "https://artifi.example"
website_id = "12"
client_key = "file:/nonexistent/artifi-key"
clinet = 1
"""

EXPECTED = [
    "srever: unknown table; did you mean server?",
    "server.port: must be a whole number, not a string",
    "server.headers_timeout: must be more than 0",
    'log.format: must be "json" or "console"',
    "events.tenant_share: must be at most 1",
    "tenants[1].keys[1]: duplicate caller key (also tenants[0].keys[0])",
    "tenants[0].backends.pictofit.api_key: env:GATEWAY_TEST_UNSET: environment variable is not set",
    "tenants[0].backends.pictofit.callback_secret: must be a secret reference,"
    ' "env:NAME" or "file:PATH"',
    "tenants[1].backends.artifi.website_id: must be a whole number, not a string",
    "tenants[1].backends.artifi.clinet: unknown setting; did you mean client_key?",
    "tenants[1].backends.artifi.client_key: file:/nonexistent/artifi-key: cannot be read"
    " (no such file or directory)",
]


def test_check_reports_every_mistake_in_one_run(tmp_path: Path) -> None:
    """Eleven mistakes across the core's tables, two tenants and two backends: one run of
    `gateway check` names each at its path with a rule in words, exit code 2, no traceback, no
    Python type names, and not the secret pasted by mistake."""
    result = gateway("check", "--config", str(write(tmp_path, MANY_MISTAKES)), cwd=tmp_path)
    assert result.returncode == 2, result
    lines = [line.strip() for line in result.stderr.splitlines()]
    for expected in EXPECTED:
        assert expected in lines, (expected, result.stderr)
    assert len(lines) == len(EXPECTED) + 1, result.stderr  # and the headline
    for leak in ("Traceback", "typing.", "Literal", "<class", PASTED):
        assert leak not in result.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"8080"', "server.port: must be a whole number, not a string"),
        ("99999", "server.port: must be a port number, 0 to 65535 (0: any free port)"),
        ("-1", "server.port: must be a port number, 0 to 65535 (0: any free port)"),
        ("80.5", "server.port: must be a whole number, not a float"),
        ("true", "server.port: must be a whole number, not a boolean"),
    ],
)
def test_check_refuses_a_port_of_the_wrong_type_or_range(
    tmp_path: Path, value: str, expected: str
) -> None:
    """A port is a whole number from 0 to 65535; a string that looks like one is a mistake."""
    config = write(
        tmp_path, f'[server]\nport = {value}\n[[tenants]]\nid = "t"\nkeys = ["{DIGEST}"]\n'
    )
    result = gateway("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr.splitlines()[-1], result.stderr


def test_check_accepts_a_config_whose_secrets_are_readable(tmp_path: Path) -> None:
    """Secret references that resolve (an env var, a file) pass; their values are not printed."""
    key_file = tmp_path / "artifi-key"
    key_file.write_text("artifi-secret-value\n")
    config = write(
        tmp_path,
        f"""
[[tenants]]
id = "shop-eu"
keys = ["{DIGEST}"]
[tenants.backends.pictofit]
customer_id = "{CUSTOMER}"
api_key = "env:GATEWAY_TEST_PICTOFIT_KEY"
[tenants.backends.artifi]
base_url = "https://artifi.example"
website_id = 12
client_key = "file:{key_file}"
""",
    )
    env = {"GATEWAY_TEST_PICTOFIT_KEY": "pictofit-secret-value"}
    result = gateway("check", "--config", str(config), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "configuration is valid: 1 tenant(s)" in result.stdout
    assert "secret-value" not in result.stdout + result.stderr
    empty = gateway("check", "--config", str(config), cwd=tmp_path, env={k: "" for k in env})
    assert "api_key: env:GATEWAY_TEST_PICTOFIT_KEY is empty" in empty.stderr


def test_serve_refuses_what_check_refuses(tmp_path: Path) -> None:
    """`serve` runs the same check first: an unset secret reference stops it before it listens
    (it used to start, and the first call answered 500), exit code 2, no traceback."""
    port = unused_port()
    config = write(
        tmp_path,
        f"""
[server]
port = {port}
[[tenants]]
id = "shop-eu"
keys = ["{DIGEST}"]
[tenants.backends.pictofit]
customer_id = "{CUSTOMER}"
api_key = "env:GATEWAY_TEST_UNSET"
""",
    )
    result = gateway("serve", "--config", str(config), cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert "tenants[0].backends.pictofit.api_key: env:GATEWAY_TEST_UNSET" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_serve_without_a_configuration_says_how_to_give_one(tmp_path: Path) -> None:
    """No --config and no $GATEWAY_CONFIG: one line naming both and --sandbox, exit code 2, and
    nothing made in the working folder (it used to start with 0 tenants and make ./data/)."""
    result = gateway("serve", cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    for hint in ("--config", "$GATEWAY_CONFIG", "--sandbox", "gateway.example.toml"):
        assert hint in line
    assert list(tmp_path.iterdir()) == []


def good_config(tmp_path: Path, port: int, store: str | None = None) -> Path:
    store_table = f'[store]\nurl = "{store}"\n' if store else ""
    tenant = f'[[tenants]]\nid = "t"\nkeys = ["{DIGEST}"]\n'
    return write(tmp_path, f"[server]\nport = {port}\n{store_table}{tenant}")


def test_serve_on_a_busy_port_fails_in_one_line(tmp_path: Path) -> None:
    """A port another process holds: one line saying which and what to do, exit code 1."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = gateway("serve", "--config", str(good_config(tmp_path, port)), cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in line
    assert "--port" in line


@pytest.mark.parametrize("folder", ["/etc/hostname/store", "/proc/no-such-folder"])
def test_serve_with_a_store_it_cannot_open_names_the_path(tmp_path: Path, folder: str) -> None:
    """A SQLite path whose folder cannot be made (below a file, in /proc): one line naming the
    path, exit code 1 (it was a 45-line traceback ending `unable to open database file`)."""
    config = good_config(tmp_path, unused_port(), f"sqlite:///{folder}/gateway.db")
    result = gateway("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert f"cannot open the store sqlite:{folder}/gateway.db: " in line


def test_serve_says_when_it_listens_and_when_it_stopped(tmp_path: Path) -> None:
    """One line once the port is bound (URL, store, tenants, backends, workers), one when it has
    stopped on SIGTERM; exit code 0."""
    port = unused_port()
    config = good_config(tmp_path, port)
    environ = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    process = subprocess.Popen(
        [GATEWAY, "serve", "--config", str(config)],
        cwd=tmp_path,
        env=environ,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        deadline = time.monotonic() + 30
        line = ""
        while "server.listening" not in line and time.monotonic() < deadline:
            line = process.stderr.readline()
        assert f'"url":"http://127.0.0.1:{port}"' in line.replace(" ", ""), line
        assert '"tenants":1' in line.replace(" ", "")
        assert '"workers":1' in line.replace(" ", "")
        assert '"backends":["artifi","pictofit"]' in line.replace(" ", "")
        assert f"sqlite:{tmp_path}/data/gateway.db" in line
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # it does listen
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=30)[1]
    assert process.returncode == 0
    assert "server.stopped" in rest
    assert "Traceback" not in rest


def test_make_run_takes_a_port() -> None:
    """`make run PORT=9123` serves the sandbox on that port (the run target had no way to)."""
    result = subprocess.run(
        ["make", "-n", "run", "PORT=9123"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "serve --sandbox --port 9123" in result.stdout


def test_serve_takes_host_and_port_from_the_environment(tmp_path: Path) -> None:
    """$GATEWAY_HOST and $GATEWAY_PORT are --host's and --port's defaults (the image sets them,
    and its HEALTHCHECK reads the port): they win over the file, and --port over them."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        config = str(good_config(tmp_path, unused_port()))
        env = {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(busy)}
        result = gateway("serve", "--config", config, cwd=tmp_path, env=env)
        assert f"cannot listen on 127.0.0.1:{busy}:" in result.stderr
        wrong = gateway("serve", "--config", config, cwd=tmp_path, env={"GATEWAY_PORT": "x"})
    assert wrong.returncode == 2
    assert "$GATEWAY_PORT: must be a whole number" in wrong.stderr
