"""Secrets that cannot be read at run time: a variable removed after start, a file rotated away.

`gateway check` and `serve` refuse such a configuration at start; once running, a secret is read
each time it is used, so it can still disappear. The call that needs it then answers a 503 problem
naming the tenant and the setting (never a value, nor the reference: callers need not know where
operators keep secrets), operators get one log line with the reference, and `/readyz` fails its
`secrets` check until the secret is back.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.problems import ProblemError
from gateway.secret_refs import secret_settings, unreadable_secrets
from gateway.tenants import Tenant

RETRY_AFTER = 60  # seconds: an operator has to put the secret back


def setting_of(tenant: Tenant | None, ref: str) -> str | None:
    """Which of the tenant's settings holds the reference `ref` (`backends.pictofit.api_key`)."""
    for name, config in tenant.configs.items() if tenant else ():
        for where, secret in secret_settings(config, f"backends.{name}"):
            if secret.ref == ref:
                return where
    return None


def secret_unavailable(tenant: Tenant | None, setting: str | None) -> ProblemError:
    whose = f"tenant {tenant.id!r}'s" if tenant else "a"
    what = f"{whose} setting {setting}" if setting else f"{whose} secret"
    return ProblemError(
        503,
        "secret-unavailable",
        "Service unavailable",
        f"the gateway cannot read {what}; nothing was sent upstream: its operators must restore it",
        headers={"Retry-After": str(RETRY_AFTER)},
    )


def unreadable_settings(tenants: Iterable[Tenant]) -> list[str]:
    """The settings (`backends.pictofit.api_key`) whose secret cannot be read now, each once;
    tenants are not named (anyone may read `/readyz`)."""
    found = (
        problem.partition(":")[0]
        for tenant in tenants
        for name, config in tenant.configs.items()
        for problem in unreadable_secrets(config, f"backends.{name}")
    )
    return sorted(set(found))
