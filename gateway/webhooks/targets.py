"""Where webhooks may go: http(s) URLs whose host is allowed by `[events] allowed_targets`."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from yarl import URL


class TargetNotAllowed(ValueError):
    pass


class AllowedTargets:
    """Entries are CIDR ranges (`10.0.0.0/8`), exact host names, or `*.suffix` wildcards."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        self.suffixes: list[str] = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            entry = entry.lower().rstrip(".")
            if entry.startswith("*."):
                self.suffixes.append(entry[1:])
            else:
                self.hosts.add(entry)

    def check(self, url: str) -> str:
        """The URL, normalised, or TargetNotAllowed saying why."""
        try:
            parsed = URL(url)
        except ValueError:
            raise TargetNotAllowed("not a valid URL") from None
        if parsed.scheme not in {"http", "https"} or not parsed.host:
            raise TargetNotAllowed("must be an absolute http or https URL")
        if parsed.user or parsed.password:
            raise TargetNotAllowed("must not carry credentials")
        host = parsed.host.lower().rstrip(".")
        if not self._allowed(host):
            raise TargetNotAllowed(f"host {host!r} is not in [events] allowed_targets")
        return str(parsed)

    def _allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return host in self.hosts or any(host.endswith(s) for s in self.suffixes)
        return any(address in network for network in self.networks)
