"""Tenants: who a caller key belongs to, and which backend serves an operation for a tenant."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

import attrs

from gateway import problems
from gateway.problems import FieldError, ProblemError
from gateway.settings import Settings

KEY_PREFIX = "gwk_"


def digest_key(key: str) -> str:
    """The form caller keys are kept in: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh caller key: 32 random bytes, URL-safe, recognisable by its prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@attrs.frozen
class Tenant:
    id: str
    configs: Mapping[str, Any]  # backend name -> the backend's config object, in config order
    default_backend: str | None


class TenantDirectory:
    """Caller keys and backend configurations of every tenant, from the settings."""

    def __init__(self, settings: Settings, configs: Mapping[tuple[str, str], Any]) -> None:
        self.tenants: dict[str, Tenant] = {}
        self._digests: list[tuple[bytes, str]] = []
        # Keys that authenticated, and their tenant: at most one per configured digest.
        self._known: dict[str, Tenant] = {}
        for tenant in settings.tenants:
            self.tenants[tenant.id] = Tenant(
                id=tenant.id,
                configs={name: configs[(tenant.id, name)] for name in tenant.backends},
                default_backend=tenant.default_backend,
            )
            self._digests.extend((key.encode(), tenant.id) for key in tenant.keys)

    def authenticate(self, key: str) -> Tenant | None:
        """The tenant of a caller key; every stored digest is compared, in constant time each.

        A key that authenticated once is answered from memory afterwards: digesting it was ~7 k
        instructions of every request. Only keys that matched a digest are kept, so the memory
        is bounded by the configured keys, and holds what every request of theirs carries anyway;
        the settings (and this directory) are fixed for the app's life, so it never goes stale.
        A hit is quicker than a miss, which tells a caller only what the answer's status does.
        """
        known = self._known.get(key)
        if known is not None:
            return known
        if not key.isascii():
            # Bearer tokens are ASCII (RFC 6750), and header bytes that are not UTF-8 arrive as
            # surrogates that cannot be digested: either way, not a key.
            return None
        candidate = digest_key(key).encode()
        found: str | None = None
        for digest, tenant_id in self._digests:
            if hmac.compare_digest(candidate, digest):
                found = tenant_id
        if found is None:
            return None
        tenant = self._known[key] = self.tenants[found]
        return tenant

    def get(self, tenant_id: str) -> Tenant | None:
        return self.tenants.get(tenant_id)


def choose_backend(
    tenant: Tenant,
    operation_id: str,
    *,
    serves: Any,
    owner: str | None = None,
    requested: str | None = None,
    requested_at: str = "/backend",
) -> str:
    """The backend that serves `operation_id` for `tenant`.

    A resource's recorded backend wins, then the one the caller asked for, then the tenant's
    default, then the first configured backend that serves the operation.
    """
    if owner is not None:
        # The usual path (a resource's backend): the capable list is not needed to choose.
        if not serves(owner, operation_id):
            raise problems.not_implemented(f"backend {owner!r} does not serve {operation_id}")
        return owner
    capable = [name for name in tenant.configs if serves(name, operation_id)]
    if requested is not None:
        # The caller's choice is input: one that cannot serve the call is their mistake (422).
        if requested not in tenant.configs:
            configured = ", ".join(tenant.configs) or "none"
            raise _unusable_backend(
                f"backend {requested!r} is not configured for this tenant",
                FieldError(requested_at, f"not configured; configured backends: {configured}"),
                capable,
            )
        if requested not in capable:
            raise _unusable_backend(
                f"backend {requested!r} does not serve {operation_id}",
                FieldError(requested_at, f"does not serve {operation_id}"),
                capable,
            )
        chosen = requested
    elif tenant.default_backend in capable:
        chosen = tenant.default_backend
    elif capable:
        chosen = capable[0]
    else:
        raise problems.not_implemented(
            f"no backend configured for this tenant serves {operation_id}"
        )
    if not serves(chosen, operation_id):
        raise problems.not_implemented(f"backend {chosen!r} does not serve {operation_id}")
    return chosen


def _unusable_backend(detail: str, error: FieldError, capable: list[str]) -> ProblemError:
    """422 naming the backends that would serve the call (`validNames`)."""
    problem = problems.invalid_input(detail, [error])
    problem.extra["validNames"] = capable
    return problem
