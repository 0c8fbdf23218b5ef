"""Generate the Python client internal teams use, from the contract, failing on any warning.

    python openapi/generate_client.py [OUTPUT_DIR]      (default: build/client)

Writes the package `gateway_client` under OUTPUT_DIR (import it with OUTPUT_DIR on sys.path),
with openapi-python-client and openapi/client-config.yaml, from the contract the gateway serves:
`gateway spec`'s, the core contract with the installed backends' fragments merged in (kept as
OUTPUT_DIR/openapi.yaml). A warning means the generator dropped
or degraded part of the contract (an operation, a body, a response), so any warning, or any line
of output other than the one naming what it generates, is a failure. `make client` runs this;
so does tests/test_generated_client.py, into a temporary directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "client-config.yaml"
PACKAGE = "gateway_client"


class GenerationFailed(RuntimeError):
    pass


def merged_spec(output: Path) -> Path:
    """`gateway spec` written to OUTPUT_DIR/openapi.yaml: what the installed gateway serves."""
    spec = output / "openapi.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "spec", "--format", "yaml"],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise GenerationFailed(
            f"gateway spec (exit {result.returncode}):\n{result.stderr.decode()}"
        )
    spec.write_bytes(result.stdout)
    return spec


def generate(output: Path, spec: Path | None = None) -> Path:
    """The generated package's directory; raises GenerationFailed with the generator's output.
    `spec` is the contract to generate from (default: `gateway spec`'s)."""
    target = output / PACKAGE
    shutil.rmtree(target, ignore_errors=True)
    output.mkdir(parents=True, exist_ok=True)
    spec = spec or merged_spec(output)
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(spec),
            "--config",
            str(CONFIG),
            "--meta",
            "none",
            "--output-path",
            str(target),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    text = (result.stdout + result.stderr).strip()
    unexpected = [line for line in text.splitlines() if not line.startswith("Generating ")]
    if result.returncode != 0 or unexpected or not (target / "__init__.py").is_file():
        raise GenerationFailed(f"openapi-python-client (exit {result.returncode}):\n{text}")
    return target


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build/client")
    try:
        package = generate(output)
    except GenerationFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"generated {package} (import {PACKAGE} with {output} on sys.path)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
