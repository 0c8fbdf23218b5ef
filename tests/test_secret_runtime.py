"""A secret that disappears while the gateway runs (an env var removed, a file rotated away):
the calls that need it answer a 503 problem naming the tenant and the setting, operators get one
log line, and `/readyz` says which check fails; it all recovers once the secret is back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.testing import GatewayLogs
from gateway.values import Secret, SecretUnavailable
from tests.conftest import ACME_KEY_A, CALLER_KEY_B, Gateway


async def test_a_secret_removed_after_start_is_a_503_naming_tenant_and_setting(
    gateway: Gateway, logs: GatewayLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tenant A's upstream key variable is unset after start: its call answers 503
    `secret-unavailable` naming tenant-a and backends.acme.api_key (it was a 500 and a
    40-line traceback), tenant B is unaffected, and the key comes back without a restart."""
    monkeypatch.delenv("TEST_ACME_KEY_A")
    response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert response.status == 503
    body = await response.json()
    assert body["type"] == "urn:gateway:problem:secret-unavailable"
    assert "'tenant-a'" in body["detail"]
    assert "backends.acme.api_key" in body["detail"]
    assert "TEST_ACME_KEY_A" not in body["detail"]  # where operators keep it is theirs
    [line] = logs.events("http.secret_unavailable")
    assert line["tenant"] == "tenant-a"
    assert line["setting"] == "backends.acme.api_key"
    assert "TEST_ACME_KEY_A" in line["error"]
    assert "Traceback" not in logs.text()
    assert not logs.events("http.unhandled_error")

    other = await gateway.client.get("/v1/product-types", headers=gateway.auth(CALLER_KEY_B))
    assert other.status == 200
    monkeypatch.setenv("TEST_ACME_KEY_A", ACME_KEY_A)
    again = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert again.status == 200


async def test_readyz_names_the_unreadable_setting(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`/readyz` fails its `secrets` check with the settings that cannot be read (tenants are
    not named: anyone may read it), and passes it again once the secret is back."""
    response = await gateway.client.get("/readyz")
    assert (await response.json())["checks"]["secrets"] == {"ok": True}
    monkeypatch.delenv("TEST_ACME_KEY_B")
    response = await gateway.client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["checks"]["secrets"] == {
        "ok": False,
        "detail": "cannot be read: backends.acme.api_key",
    }
    assert "tenant-b" not in str(body)


def test_a_rotated_away_file_is_an_unavailable_secret(tmp_path: Path) -> None:
    """A `file:` secret whose file is gone raises `SecretUnavailable` (a LookupError, as an unset
    variable always was), naming the reference and why, never a value."""
    path = tmp_path / "key"
    path.write_text("s3cr3t-value\n")
    secret = Secret(f"file:{path}")
    assert secret.reveal() == "s3cr3t-value"
    path.unlink()
    with pytest.raises(SecretUnavailable) as caught:
        secret.reveal()
    assert str(caught.value) == f"file:{path}: cannot be read (no such file or directory)"
    assert isinstance(caught.value, LookupError)


def test_an_env_secret_sees_every_change_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """An `env:` secret reads the variable as it is now, whichever way it changed: set anew,
    written through `os.environb`, set back to a value read before, unset (`SecretUnavailable`,
    naming the reference only), and set again."""
    name = "TEST_ROTATING_SECRET"
    secret = Secret(f"env:{name}")
    monkeypatch.setenv(name, "first-value")
    assert secret.reveal() == "first-value"
    assert secret.reveal() == "first-value"
    monkeypatch.setenv(name, "second-value")
    assert secret.reveal() == "second-value"
    monkeypatch.setitem(os.environb, name.encode(), "thïrd-välue".encode())
    assert secret.reveal() == "thïrd-välue"
    assert Secret(f"env:{name}").reveal() == "thïrd-välue"
    monkeypatch.setenv(name, "first-value")
    assert secret.reveal() == "first-value"
    monkeypatch.delenv(name)
    with pytest.raises(SecretUnavailable) as caught:
        secret.reveal()
    assert str(caught.value) == f"env:{name}: environment variable is not set"
    monkeypatch.setenv(name, "fourth-value")
    assert secret.reveal() == "fourth-value"
