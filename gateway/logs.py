"""structlog, configured once: JSON lines or console, contextvars, ISO UTC times, no secrets.

aiohttp's and every other library's stdlib logging goes through the same processors and renderer,
so an operator reads one format. Every secret the process learns (upstream keys, webhook secrets) is
added to `SECRETS`, and the last processor before rendering scrubs them from every value as a final
guard: code should not log secrets in the first place, this makes a slip harmless.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import IO, Any

import orjson
import structlog

from gateway.redaction import SecretRegistry

SECRETS = SecretRegistry()
"""Every secret value this process has resolved; scrubbed from all log output."""

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return SECRETS.scrub(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def scrub_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if len(SECRETS):
        for key, value in event_dict.items():
            event_dict[key] = _scrub(value)
    return event_dict


def _render_json(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
    return orjson.dumps(event_dict, default=repr).decode()


def configure_logging(
    format: str = "json", level: str = "info", *, stream: IO[str] | None = None, cache: bool = True
) -> None:
    """Configure structlog and the stdlib root logger; safe to call again.

    `cache=False` keeps loggers re-configurable (tests capture logs per test).
    """
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub_secrets,
    ]
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if format == "console"
        else _render_json
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=cache,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # aiohttp's own access log would duplicate ours.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiosqlite logs every statement with its parameters at debug level: data, never for logs.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
