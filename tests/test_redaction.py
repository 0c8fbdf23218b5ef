"""Redaction: sensitive query names and values, a URL's password and known secrets are hidden, and
the upstream client redacts a URL again once a secret it holds becomes known."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from yarl import URL

from gateway.metrics import UpstreamMetrics
from gateway.redaction import REDACTED, SENSITIVE_QUERY_NAMES, SecretRegistry, redact_url
from gateway.upstream import UpstreamClient
from tests.upstream_clients import FAST, Provider
from tests.upstream_fakes import serve

__all__ = ["serve"]  # the fixture, for this module's tests


# --- redaction --------------------------------------------------------------------------------


def test_sensitive_query_names() -> None:
    """The name pattern catches key/token/secret/password anywhere, sig/auth as whole words."""
    for name in ("key", "apikey", "api_key", "webApiClientKey", "token", "access_token",
                 "secret", "client_secret", "password", "signature", "sig", "auth",
                 "authorization", "X-Amz-Signature"):  # fmt: skip
        assert SENSITIVE_QUERY_NAMES.search(name), name
    for name in ("q", "page", "design", "author", "size"):
        assert not SENSITIVE_QUERY_NAMES.search(name), name


def test_redact_url_hides_names_values_and_password() -> None:
    """Sensitive query values, the userinfo password and known secrets (even encoded) vanish."""
    url = "https://user:pw@api.example/v1/a+b%2Fc/x?apikey=k1&q=hello&note=a%2Bb/c&p=1#f"
    out = redact_url(url, ["a+b/c"])
    assert "apikey=[REDACTED]" in out
    assert "q=hello" in out
    assert "p=1" in out
    assert "pw" not in out
    assert "k1" not in out
    assert "a+b/c" not in out
    assert "a%2Bb" not in out
    assert "b%2Fc" not in out
    assert out.startswith("https://user@api.example/v1/")


def test_secret_registry_scrubs_and_ignores_short_values() -> None:
    """Values shorter than 4 characters are not registered; known ones are scrubbed."""
    registry = SecretRegistry()
    registry.add("", "abc", "s3cr3t-value")
    assert len(registry) == 1
    assert "s3cr3t-value" in registry
    assert "abc" not in registry
    assert registry.scrub("x s3cr3t-value y abc") == f"x {REDACTED} y abc"


async def test_remembered_redaction_redone_when_secrets_change(serve: Any) -> None:
    """The same URL object, redacted again after a secret it holds became known, hides it."""
    secrets = SecretRegistry()
    client = UpstreamClient(
        "acme",
        policy=FAST,
        credentials=Provider(),
        metrics=UpstreamMetrics(CollectorRegistry()),
        secrets=secrets,
    )
    url = URL("https://api.example/items/ITEM-SECRET-42")
    assert client.attempt_log.redacted(url) == str(url)
    assert client.attempt_log.redacted(url) == str(url)
    secrets.add("ITEM-SECRET-42")
    assert client.attempt_log.redacted(url) == f"https://api.example/items/{REDACTED}"
    assert client.attempt_log.redacted(URL(str(url))) == f"https://api.example/items/{REDACTED}"
