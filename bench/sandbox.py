"""Run an installed backend's sandbox as its own process: `python -m bench.sandbox NAME PORT`."""

from __future__ import annotations

import sys

from aiohttp import web

from gateway.plugins import PluginHost


def main() -> None:
    name, port = sys.argv[1], int(sys.argv[2])
    [sandbox] = [s for s in PluginHost.build().sandboxes() if s.backend == name]
    web.run_app(sandbox.make_app(), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
