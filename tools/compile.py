"""`make compile`: the hot modules compiled with mypyc into C extensions beside their sources.

Which modules: `[tool.gateway] compiled` in pyproject.toml (the core's) and in each plugin's
pyproject.toml given as an argument (paths relative to that folder), so a plugin lists its own
and the core names none. Each folder is one source root (its packages are compiled where they
are): each module's extension beside its source, and the folder's shared library (mypyc's C for
all of them) in its first package.

Afterwards `gateway/compiled.json` holds the digest of every source compiled, which
`gateway.compiled.check` holds the sources to at every start; nothing is built when it already
matches. This script never imports `gateway` (whose import is what refuses stale extensions).

    python tools/compile.py [PLUGIN_FOLDER ...]   # build, or say it is up to date
    python tools/compile.py --clean               # remove the extensions and the manifest
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "gateway" / "compiled.json"  # as gateway.compiled.MANIFEST
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
# The name of a folder's shared library, in its first package: compiled_modules__mypyc.*.so.
GROUP = "compiled_modules"


def listed(folder: Path) -> list[Path]:
    """The sources `folder`'s pyproject.toml asks to compile."""
    with (folder / "pyproject.toml").open("rb") as file:
        config = tomllib.load(file)
    paths = config.get("tool", {}).get("gateway", {}).get("compiled", [])
    return [folder / path for path in paths]


def digest(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def clean() -> None:
    try:
        built = json.loads(MANIFEST.read_text())["extensions"]
    except FileNotFoundError:
        built = []
    MANIFEST.unlink(missing_ok=True)  # first: a half-cleaned tree runs its sources
    for relative in built:
        (ROOT / relative).unlink(missing_ok=True)


def build(folder: Path, sources: list[Path]) -> list[Path]:
    """Compile `sources`, under the source root `folder`, and put each extension beside its
    source, their shared library in their first package; the files put."""
    from mypyc.build import mypycify  # the dev extra's: only a build needs it
    from setuptools import setup

    work = ROOT / "build" / "mypyc" / ("_".join(folder.relative_to(ROOT).parts) or "core")
    shutil.rmtree(work / "lib", ignore_errors=True)  # what it holds is copied into the tree
    work.mkdir(parents=True, exist_ok=True)
    package = sources[0].relative_to(folder).parts[0]
    # In a folder of its own: setuptools would read (and reject) the project's pyproject.toml.
    os.chdir(work)
    try:
        setup(
            name="gateway-compiled",
            packages=[],
            ext_modules=mypycify(
                [str(source) for source in sources], group_name=f"{package}.{GROUP}"
            ),
            script_args=["--quiet", "build_ext", "--build-temp", "temp", "--build-lib", "lib"],
        )
    finally:
        os.chdir(ROOT)
    put = []
    for built in (work / "lib").rglob(f"*{SUFFIX}"):
        put.append(folder / built.relative_to(work / "lib"))
        shutil.copy2(built, put[-1])
    return put


def main(args: list[str]) -> int:
    if args == ["--clean"]:
        clean()
        return 0
    folders = [ROOT, *(ROOT / arg for arg in args)]
    wanted = {folder: listed(folder) for folder in folders}
    sources = {
        source.relative_to(ROOT).as_posix(): digest(source)
        for listed_sources in wanted.values()
        for source in listed_sources
    }
    try:
        built = json.loads(MANIFEST.read_text())
    except FileNotFoundError:
        built = {}
    if built.get("sources") == sources and all(
        (ROOT / relative).exists() for relative in built["extensions"]
    ):
        print(f"compiled: {len(sources)} modules, up to date")
        return 0
    clean()
    extensions = [
        put.relative_to(ROOT).as_posix()
        for folder, listed_sources in wanted.items()
        if listed_sources
        for put in build(folder, listed_sources)
    ]
    MANIFEST.write_text(
        json.dumps({"sources": sources, "extensions": sorted(extensions)}, indent=1) + "\n"
    )
    print(f"compiled: {len(sources)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
