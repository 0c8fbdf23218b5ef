"""The plugin API: everything a backend or sink plugin may use of the core, and nothing else.

A backend or sink plugin imports from this module only, its tests included (a test holds every
plugin to it), so `__all__` below is the whole contract with third-party plugins and a change to
it is a change to that contract. It gathers, from the modules that define them:

- the backend object and what the core hands it (`gateway.backend`, `gateway.calls`): `Backend`,
  `OperationCall`, `CallbackCall`, `CallbackRegistration`, `Sandbox`, `hookimpl`, ...;
- the sink object and what the core hands it (`gateway.sink`): `Sink`, `SinkContext`,
  `SendOutcome`, and the `ConnectionPool` a sink keeps its broker connections in;
- values and errors: `Reply`, `Credentials`, `Secret`, `Event`, `ProblemError` and its helpers;
  replies' and events' bodies may be frozen attrs values, written in camelCase by the one
  converter (`gateway.wire`), `omit_if_none()` marking a field left out while None
  (`unstructure` gives that plain form, e.g. to store);
- the upstream client's types (`BoundUpstream`, `UpstreamResponse`, the `Upstream*` errors),
  and a cache for what a backend fetches from its upstream and reuses (`TtlCache`);
- the kit a backend's simulator is built with (`gateway.sandbox_kit`: request recording, fault
  knobs, the `/_sandbox` control endpoints);
- the kit a backend's tests are built with (`gateway.testing`: a gateway in front of the
  backend's sandbox, a contract check of every answer, a webhook subscriber, the gateway's log
  lines). Its pytest
  fixtures are in `gateway.pytest_plugin`, which pytest loads by itself; pytest is never imported
  from here, so production code does not need it.
"""

from __future__ import annotations

from gateway.backend import (
    Backend,
    BackendContext,
    CallbackCall,
    CallbackRegistration,
    Sandbox,
    hookimpl,
)
from gateway.caching import TtlCache
from gateway.calls import GatewayServices, OperationCall, Recorded, ResourceBook, UrlTemplate
from gateway.forms import Form, UploadedFile
from gateway.problems import (
    FieldError,
    ProblemError,
    bad_request,
    invalid_input,
    not_found,
    not_implemented,
    payload_too_large,
    unauthorized,
    unsupported_media_type,
)
from gateway.redaction import REDACTED, strip_url_queries
from gateway.sandbox_kit import (
    CONTROL_SEGMENT,
    JSON,
    FaultAnswers,
    FaultKnobs,
    RecordedRequest,
    SandboxProblem,
    SimulatorState,
    count_knob,
    is_control,
    json_error,
    json_object,
    rate_knob,
    seconds_knob,
    simulator_app,
    switch_knob,
    update_faults,
)
from gateway.sink import ConnectionPool, SendOutcome, Sink, SinkContext
from gateway.store.records import ResourceRecord
from gateway.testing import (
    ContractCheck,
    Delivery,
    GatewayLogs,
    SandboxGateway,
    StartGateway,
    TenantTable,
    WebhookSubscriber,
    assert_conforms,
    eventually,
    sandbox_gateway,
    verify_webhook,
    webhook_subscriber,
)
from gateway.upstream import (
    BodyFactory,
    BoundUpstream,
    CredentialsRequest,
    UpstreamCredentialsRejected,
    UpstreamError,
    UpstreamRejected,
    UpstreamResponse,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.values import Credentials, Event, Reply, Secret
from gateway.wire import omit_if_none, unstructure

__all__ = [
    "CONTROL_SEGMENT",
    "JSON",
    "REDACTED",
    "Backend",
    "BackendContext",
    "BodyFactory",
    "BoundUpstream",
    "CallbackCall",
    "CallbackRegistration",
    "ConnectionPool",
    "ContractCheck",
    "Credentials",
    "CredentialsRequest",
    "Delivery",
    "Event",
    "FaultAnswers",
    "FaultKnobs",
    "FieldError",
    "Form",
    "GatewayLogs",
    "GatewayServices",
    "OperationCall",
    "ProblemError",
    "Recorded",
    "RecordedRequest",
    "Reply",
    "ResourceBook",
    "ResourceRecord",
    "Sandbox",
    "SandboxGateway",
    "SandboxProblem",
    "Secret",
    "SendOutcome",
    "SimulatorState",
    "Sink",
    "SinkContext",
    "StartGateway",
    "TenantTable",
    "TtlCache",
    "UploadedFile",
    "UpstreamCredentialsRejected",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamResponse",
    "UpstreamServerError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "UrlTemplate",
    "WebhookSubscriber",
    "assert_conforms",
    "bad_request",
    "count_knob",
    "eventually",
    "hookimpl",
    "invalid_input",
    "is_control",
    "json_error",
    "json_object",
    "not_found",
    "not_implemented",
    "omit_if_none",
    "payload_too_large",
    "rate_knob",
    "sandbox_gateway",
    "seconds_knob",
    "simulator_app",
    "strip_url_queries",
    "switch_knob",
    "unauthorized",
    "unstructure",
    "unsupported_media_type",
    "update_faults",
    "verify_webhook",
    "webhook_subscriber",
]
