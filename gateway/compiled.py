"""The guard against stale compiled modules.

`make compile` (`tools/compile.py`, run by `make run`, `make test` and `make bench`) compiles the
request path's hot modules with mypyc into C extensions beside their sources: the same code, a
tenth fewer instructions a proxied call (README, "Performance"). Python imports an extension
before a source of the same name, so an edited source would silently not run: the build writes
each compiled source's digest to `MANIFEST`, and importing `gateway` checks them (a millisecond)
and refuses to run a stale extension, naming the remedy. A checkout never compiled has no
manifest and runs its sources.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

__all__ = ["MANIFEST", "StaleCompiledModule", "check", "digest"]

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "gateway" / "compiled.json"
"""Written by tools/compile.py: `sources`, {path relative to ROOT: sha256 of the source compiled},
and `extensions`, the files the build put in the tree."""


class StaleCompiledModule(ImportError):
    """A source changed since its extension was built."""


def digest(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def check(root: Path = ROOT, manifest: Path = MANIFEST) -> Mapping[str, str]:
    """The compiled sources, after making sure each is the source its extension was built from."""
    try:
        compiled: dict[str, str] = json.loads(manifest.read_text())["sources"]
    except FileNotFoundError:
        return {}
    for relative, built_from in compiled.items():
        source = root / relative
        if not source.exists() or digest(source) != built_from:
            raise StaleCompiledModule(
                f"{relative} changed since `make compile` built it into a C extension, which"
                " Python would run instead: run `make compile` again (or `make clean-compiled`"
                " to run the sources)"
            )
    return compiled
