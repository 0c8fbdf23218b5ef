"""Run the real gateway, with the Acme test backend plugged in, as its own process.

`python -m tests.gateway_process CONFIG PORT`: the same factory and settings as `gateway serve`,
so tests can kill it with SIGKILL and start it again on the same database.
"""

from __future__ import annotations

import sys

from aiohttp import web

from gateway.app import create_app
from gateway.config_loading import read_settings
from gateway.logs import configure_logging
from tests.acme_backend import AcmePlugin


def main() -> None:
    config, port = sys.argv[1], int(sys.argv[2])
    settings = read_settings(config)
    configure_logging("json", "warning")
    app = create_app(settings, extra_plugins=[AcmePlugin()])
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
