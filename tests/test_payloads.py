"""The core's answers as the wire writes them: camelCase names, optional properties left out
when absent (`wire.omit_if_none`), null where the contract says null, and the signed event body
stable."""

from __future__ import annotations

import orjson

from gateway import payloads, wire
from gateway.values import Event
from gateway.webhooks.delivery import event_payload


def test_omit_none_fields_are_left_out_and_other_nones_are_null() -> None:
    """`ReadinessCheck.detail` is optional (absent, never null); `EventType.backend` is nullable."""
    checks = {
        "store": payloads.ReadinessCheck(ok=True),
        "tenants": payloads.ReadinessCheck(False, "none"),
    }
    readiness = orjson.loads(wire.dumps(payloads.Readiness("not_ready", checks)))
    assert readiness["checks"] == {
        "store": {"ok": True},
        "tenants": {"ok": False, "detail": "none"},
    }
    assert orjson.loads(wire.dumps(payloads.EventType("a.b", "text", None))) == {
        "type": "a.b",
        "description": "text",
        "backend": None,
    }


def test_event_payload_is_the_contract_event_in_a_stable_order() -> None:
    """Subscribers verify a signature over these bytes: the event's fields in the contract's
    order, `data` as given, and no field of the store's (the dedupe key)."""
    data = {"z": 1, "a": [1, {"y": None}]}
    event = Event("evt_1", "x.y", "t", None, "2024-01-01T00:00:00.000+00:00", data, "key")
    assert event_payload(event) == (
        b'{"id":"evt_1","type":"x.y","tenant":"t","backend":null,'
        b'"occurredAt":"2024-01-01T00:00:00.000+00:00","data":{"z":1,"a":[1,{"y":null}]}}'
    )


def test_request_bodies_are_read_from_camel_case() -> None:
    """The converter reads a validated body by the contract's names; absent optionals are None."""
    given = wire.structure(
        {"url": "https://a.test/h", "eventTypes": ["*"]}, payloads.SubscriptionInput
    )
    assert given == payloads.SubscriptionInput("https://a.test/h", ["*"], None)
    assert wire.structure({}, payloads.SecretRotationInput).grace_seconds is None
    assert wire.structure({"graceSeconds": 0}, payloads.SecretRotationInput).grace_seconds == 0
