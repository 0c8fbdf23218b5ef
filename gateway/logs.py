"""structlog, configured once: JSON lines or console, contextvars, ISO UTC times, no secrets.

aiohttp's and every other library's stdlib logging goes through the same processors and renderer,
so an operator reads one format. Every secret the process learns (upstream keys, webhook secrets) is
added to `SECRETS`, and every rendered line is scrubbed of them (in the forms a JSON string or a
repr gives them) as it is written: a final guard, since code should not log secrets in the first
place; this makes a slip harmless, in keys and nested values alike.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import os
import sys
import time
import weakref
from collections.abc import MutableMapping
from typing import IO, Any, cast

import orjson
import structlog

from gateway.redaction import SecretRegistry, redact_credentials

SECRETS = SecretRegistry()
"""Every secret value this process has resolved; scrubbed from all log output."""

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR


class _UtcTimestamp:
    """`timestamp`: ISO 8601 UTC with microseconds, as structlog's `TimeStamper(fmt="iso",
    utc=True)` writes it, at a fifth of its cost: the part up to the second is formatted once a
    second. Two lines a request made that cost show in a profile."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")  # one tuple: threads log too

    def __call__(
        self, _: Any, __: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict["timestamp"] = self.now()
        return event_dict

    def now(self) -> str:
        now = time.time()
        second, prefix = self._second
        if int(now) != second:
            second = int(now)
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        return f"{prefix}.{int((now - second) * 1_000_000):06d}Z"


_UTC = datetime.UTC
_now = datetime.datetime.now

_REQUEST_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "gateway_request_context", default=None
)


def bind_request_context(**values: Any) -> dict[str, Any]:
    """Start the current request's log context (its id, later its tenant): every line logged while
    it runs, by the core or a plugin, carries these values. The dict is returned to add to.

    One context variable holding a dict: structlog's contextvars take a variable per key, and
    merging them walks a copy of the whole context for every line.
    """
    context = dict(values)
    _REQUEST_CONTEXT.set(context)
    return context


_LEVEL_NAMES = {"warn": "warning", "exception": "error"}  # as structlog's map_method_name


def _annotate(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The request's context, `level` and `logger`, as `merge_contextvars`, `add_log_level` and
    `add_logger_name` would add them, in one processor call instead of three."""
    context = _REQUEST_CONTEXT.get()
    if context:
        for key, value in context.items():
            event_dict.setdefault(key, value)
    event_dict["level"] = _LEVEL_NAMES.get(method_name, method_name)
    record = event_dict.get("_record")
    event_dict["logger"] = logger.name if record is None else record.name
    return event_dict


def _exc_info(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """`format_exc_info`, run only for the lines that carry an exception."""
    if "exc_info" in event_dict:
        return structlog.processors.format_exc_info(logger, method_name, event_dict)
    return event_dict


def _render_json(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
    return orjson.dumps(event_dict, default=repr).decode()


def _json_line(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
    """The JSON format's whole chain (`_annotate`, the timestamp, `_exc_info`, `_render_json`)
    as one processor: structlog calls each processor of its chain in a loop, and two lines a
    request made those calls show in a profile. The same fields, in the same order. A function,
    not an object with `__call__`: calling an instance's `__call__` costs twice a function's."""
    # The request's context first, then the line's own values (which win, as with setdefault).
    context = _REQUEST_CONTEXT.get()
    line = {**context, **event_dict} if context else event_dict
    line["level"] = _LEVEL_NAMES.get(method_name, method_name)
    line["logger"] = logger.name  # always a `_Sink`: the stdlib's records take the long chain
    # orjson writes the time as `_UtcTimestamp` does, for a third of the cost of formatting it.
    line["timestamp"] = _now(_UTC)
    if "exc_info" in line:
        structlog.processors.format_exc_info(logger, method_name, line)
    return orjson.dumps(line, default=repr, option=orjson.OPT_UTC_Z).decode()


_TEXT = (str, bytes, bytearray)


def _lean_method(name: str) -> Any:
    """A level's method: the line's keywords (a fresh dict already) go to the chain as they are,
    where structlog's own unpacks and packs them twice more on the way."""

    def method(self: Any, event: str | None = None, *args: Any, **line: Any) -> Any:
        return self._line(name, event % args if args and event else event, line)

    method.__name__ = method.__qualname__ = name
    return method


def _lean_wrapper(level: int) -> type[structlog.typing.FilteringBoundLogger]:
    """structlog's filtering bound logger for `level`, with its chain run in one call.

    structlog's own goes method -> `_proxy_to_logger` -> `_process_event`, copying the bound
    context into a new dict and then the line's values into it; here the line's values (a fresh
    dict already) are the event dict when nothing is bound, and the chain's string goes straight
    to the sink. Anything else a chain may end with takes structlog's own path.
    """
    base: Any = structlog.make_filtering_bound_logger(level)

    class LeanBoundLogger(base):  # type: ignore[misc]
        def _proxy_to_logger(
            self, method_name: str, event: str | None = None, **event_kw: Any
        ) -> Any:
            return self._line(method_name, event, event_kw)

        def _line(self, method_name: str, event: str | None, line: Any) -> Any:
            if self._context:
                line = {**self._context, **line}
            if event is not None:
                line["event"] = event
            try:
                for processor in self._processors:
                    line = processor(self._logger, method_name, line)
            except structlog.DropEvent:
                return None
            if isinstance(line, _TEXT):
                return getattr(self._logger, method_name)(line)
            if isinstance(line, tuple):
                args, kw = line
                return getattr(self._logger, method_name)(*args, **kw)
            if isinstance(line, dict):
                return getattr(self._logger, method_name)(**line)
            raise ValueError("the last processor returned neither a string, a tuple nor a dict")

    # The levels this wrapper logs at; structlog's own methods stay for the rest (no-ops).
    for name, number in _LEVELS.items():
        if number >= level:
            setattr(LeanBoundLogger, name, _lean_method(name))
    return LeanBoundLogger


_METHODS = ("debug", "info", "warning", "warn", "error", "exception", "critical", "log")
_MODULE_LOGGERS: weakref.WeakSet[ModuleLogger] = weakref.WeakSet()


class ModuleLogger:
    """A module's logger: structlog's bound logger for `name`, looked up again each time logging
    is configured. A module-level `structlog.get_logger()` is a lazy proxy that finds its logger
    on every line (an attribute miss, `__getattr__`, `bind()`): a sixth of what a line costs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._bound: Any = None
        self._resolve()
        _MODULE_LOGGERS.add(self)

    def _resolve(self) -> None:
        self._bound = structlog.get_logger(self.name).bind()
        for method in _METHODS:  # instance attributes: a line is one lookup and one call
            setattr(self, method, getattr(self._bound, method))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bound, name)  # bind(), new() ... : what a line does not need


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """The logger a module keeps for its lines (`structlog.get_logger(name)`, without the lazy
    lookup per line); lines go through structlog's configured chain as any other."""
    return cast(structlog.typing.FilteringBoundLogger, ModuleLogger(name))


class _Sink:
    """A structlog logger that writes each rendered line to a text stream.

    structlog's own loggers skip the stdlib's record and handler machinery (the cost of a log line
    halves); `name` feeds `add_logger_name` as a stdlib logger's would.
    """

    def __init__(self, name: str, stream: IO[str], fd: int | None) -> None:
        self.name = name
        self._stream = stream
        self._fd = fd
        self._encoding = getattr(stream, "encoding", None) or "utf-8"

    def msg(self, message: str) -> None:
        # One pass over the rendered line: cheaper than one per value, and keys are covered too.
        line = SECRETS.scrub(message) + "\n"
        if self._fd is None:
            self._stream.write(line)
            self._stream.flush()
            return
        # Straight to the file: half the cost of a text stream's write and flush, with the same
        # effect (every line leaves the process when it is logged). The stream itself is flushed
        # by whoever else writes to it (the stdlib's handler does after each record).
        data = line.encode(self._encoding, "backslashreplace")
        written = os.write(self._fd, data)
        while written < len(data):
            data = data[written:]
            written = os.write(self._fd, data)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _file_descriptor(stream: IO[str]) -> int | None:
    """The stream's file, when it is one (stderr, a log file); None for anything else."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None
    stream.flush()  # what was written through the stream goes first
    return fd


class _SinkFactory:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._fd = _file_descriptor(stream)

    def __call__(self, *args: Any) -> _Sink:
        return _Sink(str(args[0]) if args else "gateway", self._stream, self._fd)


class _ScrubbingFormatter(structlog.stdlib.ProcessorFormatter):
    """The stdlib's records (aiohttp, asyncpg ...), rendered as ours and scrubbed the same way,
    and of credentials by shape too: a library may quote a request, caller key included."""

    def format(self, record: logging.LogRecord) -> str:
        return SECRETS.scrub(redact_credentials(super().format(record)))


def configure_logging(
    format: str = "json", level: str = "info", *, stream: IO[str] | None = None, cache: bool = True
) -> None:
    """Configure structlog and the stdlib root logger (aiohttp's logs) alike; safe to call again.

    `cache=False` keeps loggers re-configurable (tests capture logs per test).
    """
    output = stream or sys.stderr
    timestamp = _UtcTimestamp()
    shared: list[structlog.types.Processor] = [_annotate, timestamp, _exc_info]
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=output.isatty())
        if format == "console"
        else _render_json
    )
    # The same chain, in one call for JSON (the stdlib's records below still take the long one).
    chain = [_json_line] if renderer is _render_json else [*shared, renderer]
    structlog.configure(
        processors=chain,
        logger_factory=_SinkFactory(output),
        wrapper_class=_lean_wrapper(_LEVELS[level]),
        cache_logger_on_first_use=cache,
    )
    formatter = _ScrubbingFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # aiohttp's own access log would duplicate ours.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # asyncpg's debug output can carry query arguments: data, never for logs.
    logging.getLogger("asyncpg").setLevel(logging.WARNING)
    for logger in list(_MODULE_LOGGERS):
        logger._resolve()


_ADDED: dict[Any, int] = {}  # processor -> apps that asked for it


def add_processor(processor: structlog.types.Processor) -> None:
    """Run `processor` on every line from now on, ours and the stdlib's, before it is rendered:
    for a feature the configuration turned on (`[telemetry]`'s trace ids). In place, so that
    loggers already cached see it; `remove_processor` undoes it once every caller has."""
    _ADDED[processor] = _ADDED.get(processor, 0) + 1
    if _ADDED[processor] > 1:
        return
    processors = structlog.get_config()["processors"]
    processors.insert(len(processors) - 1, processor)  # the renderer stays last
    for formatter in _formatters():
        formatter.foreign_pre_chain = [*(formatter.foreign_pre_chain or ()), processor]


def remove_processor(processor: structlog.types.Processor) -> None:
    _ADDED[processor] = _ADDED.get(processor, 1) - 1
    if _ADDED[processor] > 0:
        return
    del _ADDED[processor]
    processors = structlog.get_config()["processors"]
    if processor in processors:
        processors.remove(processor)
    for formatter in _formatters():
        chain = formatter.foreign_pre_chain or ()
        formatter.foreign_pre_chain = [p for p in chain if p is not processor]


def _formatters() -> list[_ScrubbingFormatter]:
    handlers = logging.getLogger().handlers
    return [h.formatter for h in handlers if isinstance(h.formatter, _ScrubbingFormatter)]
