"""`gateway new-backend`: the plugin it writes installs with pip, passes its own tests and the
repository's lint, and is served by the gateway through its entry point."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import unused_port

from gateway.cli import main

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KEY = "gwk_new-backend-test-key"


def run(*command: str | Path, cwd: Path, timeout: float = 120) -> str:
    """Run a command to completion; its output, or a failure showing all of it."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def generate(name: str, root: Path) -> Path:
    """`gateway new-backend NAME` into root/plugins, root holding the repository's pyproject.toml
    (so ruff and mypy read the repository's configuration, as they do under its plugins/)."""
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    assert main(["new-backend", name, "--plugins-dir", str(root / "plugins")]) == 0
    return root / "plugins" / name


def test_new_backend_refuses_names_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed names, a folder that exists and an installed backend's name are refused (exit 2,
    saying why) and nothing is written."""
    plugins = tmp_path / "plugins"
    (plugins / "taken").mkdir(parents=True)
    refused = {
        "Demo": "not a backend name",
        "d": "not a backend name",
        "9lives": "not a backend name",
        "shop-api": "not a backend name",
        "a" * 32: "not a backend name",
        "taken": "exists already",
        "pictofit": "installed already",
    }
    for name, reason in refused.items():
        assert main(["new-backend", name, "--plugins-dir", str(plugins)]) == 2, name
        assert reason in capsys.readouterr().err, name
    assert [p.name for p in plugins.iterdir()] == ["taken"]


def test_new_backend_refuses_a_name_whose_own_operation_would_clash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name whose generated fragment would clash with the contract (`products`: its tag, and
    `/v1/products/status` against getProduct's path) is refused before anything is written, the
    clash named: the plugin would stop every start-up of the gateway."""
    plugins = tmp_path / "plugins"
    assert main(["new-backend", "products", "--plugins-dir", str(plugins)]) == 2
    err = capsys.readouterr().err
    assert "tag 'products' is already declared by the core contract" in err
    assert "getProduct" in err
    assert not plugins.exists()


def test_new_backend_output_lints_clean_for_short_and_long_names(tmp_path: Path) -> None:
    """The templates keep to the line length and import order whatever the name's length: ruff
    check and ruff format find nothing for a 2- and a 31-character name."""
    generate("ab", tmp_path)
    longest = generate("z" + "y_" * 15, tmp_path)
    assert (longest / f"gateway_{longest.name}" / "backend.py").is_file()
    run(BIN / "ruff", "check", "plugins", cwd=tmp_path)
    run(BIN / "ruff", "format", "--check", "plugins", cwd=tmp_path)


def venv_seeing_ours(where: Path) -> Path:
    """A venv of its own that sees this one's packages (a .pth adds our site-packages), its
    python. Installing there leaves the test venv unchanged: an install left behind by an
    interrupted run would point at a deleted folder and break every later start of the gateway."""
    run(sys.executable, "-m", "venv", "--without-pip", where, cwd=where.parent)
    python = where / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=where)
    ours = sysconfig.get_paths()["purelib"]
    (Path(site.strip()) / "_test_venv.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def get_json(port: int, path: str, key: str | None = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


@pytest.mark.timeout(240)
def test_new_backend_installs_passes_its_tests_and_is_served(tmp_path: Path) -> None:
    """`demo` generated into a temporary folder passes mypy --strict; `pip install -e` installs
    it; its generated tests pass with pytest; and `gateway serve --sandbox` loads it through its
    entry point: /v1/backends lists it configured, its operations answer from its simulator, and
    the one it declares in its own fragment is in /openapi.json."""
    plugin = generate("demo", tmp_path)
    run(BIN / "mypy", "--strict", plugin / "gateway_demo", plugin / "tests", cwd=tmp_path)

    python = venv_seeing_ours(tmp_path / "venv")
    run(
        sys.executable,
        *("-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index"),
        *("--no-build-isolation", "-e", plugin),
        cwd=tmp_path,
    )
    tests = run(
        python, "-m", "pytest", "-q", "-p", "no:cacheprovider", plugin / "tests", cwd=tmp_path
    )
    assert "5 passed" in tests, tests

    port = unused_port()
    serve = [python, "-m", "gateway.cli", "serve", "--sandbox", "--port", str(port)]
    env = {**os.environ, "GATEWAY_SANDBOX_KEY": KEY}
    server = subprocess.Popen(serve, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, "gateway serve --sandbox exited"
            try:
                get_json(port, "/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, "gateway serve --sandbox did not start"
                time.sleep(0.1)
        status, backends = get_json(port, "/v1/backends", KEY)
        assert status == 200
        [demo] = [b for b in backends["items"] if b["name"] == "demo"]
        assert demo["configured"] is True
        assert demo["capabilities"] == ["getDemoStatus", "listProductTypes"]
        status, types = get_json(port, "/v1/product-types?backend=demo", KEY)
        assert status == 200
        assert types == {"backend": "demo", "items": [{"name": "SHIRT"}, {"name": "TROUSERS"}]}
        status, contract = get_json(port, "/openapi.json")
        assert contract["paths"]["/v1/demo/status"]["get"]["operationId"] == "getDemoStatus"
        status, own = get_json(port, "/v1/demo/status", KEY)
        assert (status, own) == (200, {"backend": "demo", "state": "operational"})
    finally:
        server.terminate()
        server.wait(timeout=30)
