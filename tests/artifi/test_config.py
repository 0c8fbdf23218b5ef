"""The core's configuration loading through the Artifi backend: a tenant table the backend's config
class refuses stops the gateway with the core's `ConfigError`, naming where. (Artifi's own
behaviour is tested in plugins/artifi/tests.)"""

from __future__ import annotations

import pytest

from gateway.config_converter import ConfigError
from gateway.testing import StartGateway


async def test_invalid_configuration_is_refused(start_gateway: StartGateway) -> None:
    """A table the config class refuses stops the gateway, naming the backend's table."""
    with pytest.raises(ConfigError) as caught:
        await start_gateway(
            "artifi",
            tenants={"tenant-a": None, "tenant-b": {"assumptions": {"file_part": "x", "typo": 1}}},
        )
    (problem,) = caught.value.problems
    assert problem.startswith("tenants[1].backends.artifi.assumptions.typo: unknown setting")
