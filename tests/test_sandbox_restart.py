"""`gateway serve --sandbox` restarted: the demo key is the same, and the simulators remember what
the gateway's store still points at, for exactly as long as that store lasts (one folder)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from aiohttp.test_utils import unused_port

GATEWAY = str(Path(sys.executable).parent / "gateway")
PRODUCT = "/v1/products/3f1c2a4e-8b7d-4c1e-9a2b-5d6e7f809a1b"


class Sandbox:
    """One `gateway serve --sandbox` process in `folder`, until `stop()`."""

    def __init__(self, folder: Path, port: int) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        self.process = subprocess.Popen(
            [GATEWAY, "serve", "--sandbox", "--port", str(port)],
            cwd=folder,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        banner, deadline = "", time.monotonic() + 30
        while "caller key" not in banner and time.monotonic() < deadline:
            banner += self.process.stdout.readline()
        found = re.search(r"caller key[^:]*: (gwk_\S+)", banner)
        assert found, banner
        self.key = found.group(1)
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10,
        )

    def stop(self) -> None:
        self.http.close()
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0


def test_a_restarted_sandbox_keeps_its_key_and_its_simulators_records(tmp_path: Path) -> None:
    """A product made through the sandbox is still there after a restart, with the same key (it
    was a new key, and a simulator that had forgotten the product the store remembered); once
    the data folder is removed, both start afresh together."""
    port = unused_port()
    first = Sandbox(tmp_path, port)
    try:
        made = first.http.put(PRODUCT, json={"name": "Demo shirt", "type": "GARMENT_2D"})
        assert made.status_code in {200, 201}, made.text
    finally:
        first.stop()
    key_file = tmp_path / ".gateway-data" / "sandbox-key"
    assert key_file.stat().st_mode & 0o077 == 0

    second = Sandbox(tmp_path, port)
    try:
        assert second.key == first.key
        found = second.http.get(PRODUCT)
        assert found.status_code == 200, found.text
        assert found.json()["name"] == "Demo shirt"
    finally:
        second.stop()

    shutil.rmtree(tmp_path / ".gateway-data")
    third = Sandbox(tmp_path, port)
    try:
        assert third.key != first.key
        assert third.http.get(PRODUCT).status_code == 404
    finally:
        third.stop()
