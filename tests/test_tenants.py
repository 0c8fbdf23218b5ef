"""`TenantDirectory.authenticate`: a caller key's tenant, its digest computed once per key."""

from __future__ import annotations

from gateway.settings import Settings, TenantSettings
from gateway.tenants import TenantDirectory, digest_key

KEY_A, KEY_B, OLD_KEY_B = "gwk_" + "a" * 43, "gwk_" + "b" * 43, "gwk_" + "o" * 43


def _directory() -> TenantDirectory:
    settings = Settings(
        tenants=(
            TenantSettings(id="shop-a", keys=(digest_key(KEY_A),)),
            TenantSettings(id="shop-b", keys=(digest_key(KEY_B), digest_key(OLD_KEY_B))),
        )
    )
    return TenantDirectory(settings, {})


def test_each_key_finds_its_tenant_every_time() -> None:
    """The first answer (from the digests) and the remembered ones agree, for every key of every
    tenant, and a key that did not match is refused however often it is tried."""
    tenants = _directory()
    for _ in range(3):
        assert [tenants.authenticate(k) for k in (KEY_A, KEY_B, OLD_KEY_B)] == [
            tenants.get("shop-a"),
            tenants.get("shop-b"),
            tenants.get("shop-b"),
        ]
        for wrong in (
            "gwk_" + "a" * 42,
            KEY_A + "a",
            KEY_A.upper(),
            "",
            "gwk_ä",
            digest_key(KEY_A),
        ):
            assert tenants.authenticate(wrong) is None


def test_only_keys_that_matched_are_remembered() -> None:
    """What is remembered is bounded by the configured keys: a flood of wrong keys adds nothing."""
    tenants = _directory()
    for n in range(1000):
        assert tenants.authenticate(f"gwk_{n}") is None
    assert tenants._known == {}
    tenants.authenticate(KEY_A)
    tenants.authenticate(KEY_A)
    assert list(tenants._known) == [KEY_A]
