"""The integration gateway core."""

from importlib import metadata

# Written once, in pyproject.toml: the installed distribution says it.
__version__ = metadata.version("integration-gateway")
