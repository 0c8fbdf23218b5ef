"""The integration gateway core."""

from importlib import metadata

from gateway import compiled

# Written once, in pyproject.toml: the installed distribution says it.
__version__ = metadata.version("integration-gateway")

compiled.check()  # before any compiled module is imported
