"""The scaffolding every backend's sandbox simulator shares (pure aiohttp and attrs helpers).

A backend plugin ships a simulator of its vendor's API: a real aiohttp application that the tests,
``gateway serve --sandbox`` and client authors run against instead of the vendor. What each
simulator needs besides its vendor's routes is here, once:

- Request recording: each request is appended to ``state.requests`` as a ``RecordedRequest``
  (method, path, query, headers; the first value of a repeated name) before any fault, control
  requests only when the simulator asks for them.
- Fault knobs: a simulator's ``Faults`` class declares its knobs with ``seconds_knob``,
  ``rate_knob``, ``count_knob`` and ``switch_knob``, validated on every assignment. The fault
  middleware applies them to every request but the control ones, in this order: ``latency_s``
  sleep, ``drop_rate`` (close the connection without an answer), the simulator's own extra
  faults, ``fail_next`` (the next N requests), ``error_rate``; the simulator says what the last
  two answer. Random draws come from ``state.rng`` and are taken only when the rate is above zero.
- Control endpoints (no auth, never faulted): ``POST /_sandbox/faults`` takes a JSON object with
  any subset of the knobs, changes those (all or none) and answers every knob; an unknown knob, a
  wrong JSON type or an out-of-range value is a 400. ``GET /_sandbox/state`` answers
  ``state.summary()``. A request is a control request when a segment of its path is ``_sandbox``,
  so a simulator mounted under a prefix keeps them.
- JSON helpers: ``json_error`` (the body ``{"message", "errors"?}``), ``json_object`` (the body
  as a JSON object, else a 400 ``SandboxProblem``).
- ``simulator_app``: the application with its state under an ``AppKey``, the recording and fault
  middlewares outermost, then the simulator's own middlewares, its routes and the control routes.
- ``keep_state``: what a state's class lists in ``durable`` (its records: products, photos, the
  random generator its ids come from) kept in a file, so that a simulator restarted with the
  gateway (``gateway serve --sandbox``) remembers what the gateway's store still points at.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

__all__ = [
    "CONTROL_SEGMENT",
    "JSON",
    "FaultAnswers",
    "FaultKnobs",
    "RecordedRequest",
    "SandboxProblem",
    "SimulatorState",
    "count_knob",
    "is_control",
    "json_error",
    "json_object",
    "keep_state",
    "rate_knob",
    "seconds_knob",
    "simulator_app",
    "switch_knob",
    "update_faults",
]

JSON = dict[str, Any]

CONTROL_SEGMENT: Final = "_sandbox"
# Field metadata: the JSON types POST /_sandbox/faults accepts for a knob.
_KNOB_TYPES: Final = "sandbox_kit.knob_types"


@attrs.frozen
class RecordedRequest:
    """One request as received, before any fault: lets tests check what a client sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]

    @classmethod
    def of(cls, request: web.BaseRequest) -> RecordedRequest:
        return cls(request.method, request.path, dict(request.query), dict(request.headers))


# --- fault knobs -------------------------------------------------------------------------------


def _rate(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1]")


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative")


def seconds_knob(default: float = 0.0) -> float:
    """A duration in seconds, never negative."""
    return attrs.field(
        default=default, validator=_non_negative, metadata={_KNOB_TYPES: (int, float)}
    )


def rate_knob(default: float = 0.0) -> float:
    """A probability, within [0, 1]."""
    return attrs.field(default=default, validator=_rate, metadata={_KNOB_TYPES: (int, float)})


def count_knob(default: int = 0) -> int:
    """A whole number, never negative."""
    return attrs.field(default=default, validator=_non_negative, metadata={_KNOB_TYPES: (int,)})


def switch_knob(default: bool = False) -> bool:
    """On or off."""
    return attrs.field(default=default, metadata={_KNOB_TYPES: (bool,)})


class FaultKnobs(attrs.AttrsInstance, Protocol):
    """The knobs the fault middleware reads; a simulator's ``Faults`` may declare more."""

    latency_s: float
    error_rate: float
    drop_rate: float
    fail_next: int


class SimulatorState(Protocol):
    """What the scaffolding needs of a simulator's state."""

    @property
    def requests(self) -> list[RecordedRequest]: ...

    @property
    def faults(self) -> FaultKnobs: ...

    @property
    def rng(self) -> random.Random: ...

    def summary(self) -> Mapping[str, Any]:
        """The JSON answered by ``GET /_sandbox/state``."""
        ...


def _accepts(types: tuple[type, ...], value: object) -> bool:
    # JSON true and false are Python bools, which are ints too: only a switch takes them.
    return isinstance(value, types) and isinstance(value, bool) == (bool in types)


def update_faults(faults: FaultKnobs, changes: Mapping[str, object]) -> JSON:
    """Apply ``changes`` to ``faults`` in place, all or none; answers every knob."""
    knobs: tuple[attrs.Attribute[Any], ...] = attrs.fields(type(faults))
    knob_types = {knob.name: knob.metadata.get(_KNOB_TYPES) for knob in knobs}
    errors: dict[str, list[str]] = {}
    for key, value in changes.items():
        types = knob_types.get(key)
        if types is None:
            errors[key] = ["unknown fault knob"]
        elif not _accepts(types, value):
            errors[key] = [f"must be of type {' or '.join(t.__name__ for t in types)}"]
    if errors:
        raise SandboxProblem(400, "invalid faults", errors)
    # Every value is checked (in field order) before any is set.
    for knob in knobs:
        if knob.name in changes and knob.validator is not None:
            try:
                knob.validator(faults, knob, changes[knob.name])
            except ValueError as exc:
                raise SandboxProblem(400, str(exc)) from None
    # Update in place: tests may hold a reference to state.faults.
    for key, value in changes.items():
        setattr(faults, key, value)
    return attrs.asdict(faults)


@attrs.frozen
class FaultAnswers:
    """What a simulator answers when a fault strikes (a dropped connection answers nothing)."""

    unavailable: Callable[[], web.StreamResponse]  # fail_next
    server_error: Callable[[], web.StreamResponse]  # error_rate
    # The simulator's own faults, after the drop and before fail_next: an answer, or None.
    extra: Callable[[], web.StreamResponse | None] | None = None


# --- JSON helpers ------------------------------------------------------------------------------


class SandboxProblem(Exception):
    """An error answer ``{"message", "errors"?}``, raised in a handler."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers

    def response(self) -> web.Response:
        return json_error(self.status, self.message, self.errors, self.headers)


def json_error(
    status: int,
    message: str,
    errors: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body: JSON = {"message": message}
    if errors:
        body["errors"] = dict(errors)
    return web.json_response(body, status=status, headers=headers)


async def json_object(request: web.Request) -> JSON:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        raise SandboxProblem(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise SandboxProblem(400, "the body must be a JSON object")
    return body


# --- middlewares and control endpoints -----------------------------------------------------------


def is_control(request: web.BaseRequest) -> bool:
    return CONTROL_SEGMENT in request.path.split("/")


def _record(state: SimulatorState, *, control: bool) -> Middleware:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if control or not is_control(request):
            state.requests.append(RecordedRequest.of(request))
        return await handler(request)

    return record


def _inject_faults(state: SimulatorState, answers: FaultAnswers) -> Middleware:
    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_control(request):
            return await handler(request)
        knobs, rng = state.faults, state.rng
        if knobs.latency_s > 0:
            await asyncio.sleep(knobs.latency_s)
        if knobs.drop_rate > 0 and rng.random() < knobs.drop_rate:
            if request.transport is not None:
                request.transport.close()
            # Never reaches the client: writing to the closed transport is a no-op.
            return web.Response(status=500)
        if answers.extra is not None and (answer := answers.extra()) is not None:
            return answer
        if knobs.fail_next > 0:
            knobs.fail_next -= 1
            return answers.unavailable()
        if knobs.error_rate > 0 and rng.random() < knobs.error_rate:
            return answers.server_error()
        return await handler(request)

    return faults


def _control_routes(state: SimulatorState) -> list[web.RouteDef]:
    async def post_faults(request: web.Request) -> web.Response:
        try:
            return web.json_response(update_faults(state.faults, await json_object(request)))
        except SandboxProblem as problem:
            return problem.response()

    async def get_state(request: web.Request) -> web.Response:
        return web.json_response(state.summary())

    return [
        web.post(f"/{CONTROL_SEGMENT}/faults", post_faults, name="sandbox-faults"),
        web.get(f"/{CONTROL_SEGMENT}/state", get_state, name="sandbox-state"),
    ]


_State = TypeVar("_State", bound=SimulatorState)


def simulator_app(
    key: web.AppKey[_State],
    state: _State,
    routes: Iterable[web.AbstractRouteDef],
    *,
    answers: FaultAnswers,
    middlewares: Sequence[Middleware] = (),
    record_control: bool = False,
) -> web.Application:
    """The simulator's application: ``app[key]`` is its state."""
    app = web.Application(
        middlewares=[
            _record(state, control=record_control),
            _inject_faults(state, answers),
            *middlewares,
        ]
    )
    app[key] = state
    simulator: SimulatorState = state
    app[SIMULATOR_STATE] = simulator  # for keep_state, whatever the simulator's own key
    app.add_routes(routes)
    app.add_routes(_control_routes(state))
    return app


# --- state kept across restarts ------------------------------------------------------------------

SIMULATOR_STATE: Final = web.AppKey("sandbox_kit.simulator_state", SimulatorState)
SAVE_INTERVAL = 1.0  # seconds: background work (a configuration processing) changes state too


def keep_state(app: web.Application, path: Path) -> None:
    """Restore the simulator's durable state from `path` now, and write it back after every
    request that may change it, every `SAVE_INTERVAL` when it changed, and when the app stops.

    Durable are the attributes the state's class names in `durable`; requests, faults and
    sessions are not. The file is the simulator's own, in the gateway's sandbox data folder, so it
    lasts exactly as long as the gateway's store beside it; one that cannot be read (written by
    another version) is set aside and the simulator starts empty.
    """
    state = app[SIMULATOR_STATE]
    names: tuple[str, ...] = getattr(state, "durable", ())
    if not names:
        return
    with contextlib.suppress(FileNotFoundError):
        try:
            # The gateway's own file, in its own data folder: nothing foreign is unpickled.
            saved = pickle.loads(path.read_bytes())  # noqa: S301
            for name in names:
                if name in saved:
                    setattr(state, name, saved[name])
        except Exception:  # an older layout: keep it for a look, start afresh
            path.replace(path.with_suffix(".unreadable"))
    last = b""

    def save() -> None:
        nonlocal last
        data = pickle.dumps({name: getattr(state, name) for name in names})
        if data != last:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_bytes(data)
            os.replace(partial, path)  # whole or not at all, even if killed while writing
            last = data

    @web.middleware
    async def save_after(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            if request.method not in {"GET", "HEAD", "OPTIONS"}:
                save()

    async def saving(app: web.Application) -> AsyncIterator[None]:
        async def every_interval() -> None:
            while True:
                await asyncio.sleep(SAVE_INTERVAL)
                save()

        task = asyncio.get_running_loop().create_task(every_interval())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        save()

    app.middlewares.append(save_after)
    app.cleanup_ctx.insert(0, saving)  # first in, last out: after the simulator's own clean-up
