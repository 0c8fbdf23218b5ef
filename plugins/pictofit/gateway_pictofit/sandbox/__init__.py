"""A sandbox simulator of the PICTOFiT Content Service (API v1.5), as an aiohttp application.

The app root plays the role of the base URL (``https://api.cs.pictofit.com/v1.5``). It follows
``/work/shared/upstreams/PICTOFIT.md``: the documented calls, plus this project's assumed choices,
which are listed in the docstring of the module that simulates them:

- ``auth``: Bearer keys and tokens, ``POST /connect/token``.
- ``errors``: the error format (undocumented), and which error answers what.
- ``types``: the ids and names of types and states, and the calls that list the types.
- ``products``, ``configurations``, ``files``: the upserts, their ids, and processing.
- ``results``: a finished configuration's results and their downloads.
- ``callbacks``: registration, when a callback fires, and its delivery.
- ``settings``: the settings, and the fault knobs of the ``/_sandbox/*`` control endpoints.
- ``app``: routing (case-insensitive literal segments) and assembly.

The recording of requests, the fault middleware and the control endpoints are the simulators'
shared scaffolding, ``gateway.sandbox_kit``.
"""

from gateway.plugin_api import RecordedRequest
from gateway_pictofit.sandbox.app import create_sandbox_app
from gateway_pictofit.sandbox.records import (
    CallbackRegistration,
    IssuedToken,
    ResultEntry,
    ResultFile,
    SandboxConfiguration,
    SandboxProduct,
    SentCallback,
    StateTransition,
    StoredFile,
)
from gateway_pictofit.sandbox.results import RESULT_FORMATS, sandbox_result_bytes
from gateway_pictofit.sandbox.settings import Faults, PictofitSandboxSettings
from gateway_pictofit.sandbox.state import SANDBOX_STATE, PictofitSandboxState
from gateway_pictofit.sandbox.types import (
    CALLBACK_TYPES,
    FILE_TYPES,
    PRODUCT_TYPES,
    STATE_CREATED,
    STATE_FINISHED,
    STATE_IN_PROGRESS,
    STATE_READY,
    STATE_REJECTED,
)

__all__ = [
    "CALLBACK_TYPES",
    "FILE_TYPES",
    "PRODUCT_TYPES",
    "RESULT_FORMATS",
    "SANDBOX_STATE",
    "STATE_CREATED",
    "STATE_FINISHED",
    "STATE_IN_PROGRESS",
    "STATE_READY",
    "STATE_REJECTED",
    "CallbackRegistration",
    "Faults",
    "IssuedToken",
    "PictofitSandboxSettings",
    "PictofitSandboxState",
    "RecordedRequest",
    "ResultEntry",
    "ResultFile",
    "SandboxConfiguration",
    "SandboxProduct",
    "SentCallback",
    "StateTransition",
    "StoredFile",
    "create_sandbox_app",
    "sandbox_result_bytes",
]
