"""Where webhooks may go: http(s) URLs, or URLs of an installed sink (`gateway.sink`: `nats://`,
`amqp://` ...), whose host is allowed by `[events] allowed_targets`.

The policy is checked when a subscription is created or changed, and again at every attempt (the
list may have been narrowed since, and a name may resolve elsewhere by now):

- The URL's host must be allowed by an entry: an IP literal by a CIDR entry, a name by an exact
  name or a `*.suffix` entry. A name entry trusts the name: it may resolve to any address, private
  ones included, except those below.
- Some addresses are refused whatever lets the host in (`ALWAYS_REFUSED`: link-local, where cloud
  metadata services answer, other metadata addresses, "this host", multicast, broadcast). Only a
  CIDR entry inside one of these ranges opens (that part of) it: `169.254.10.0/24` does,
  `0.0.0.0/0` does not. IPv4-mapped and NAT64 IPv6 addresses are judged as the IPv4 they carry.
- A name is resolved once per connection, by `TargetPolicy.resolve` as the connector's resolver,
  and the connection goes to the addresses checked there: no second lookup between check and
  connect, so DNS rebinding cannot slip another address in. One refused address refuses the name.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
from collections.abc import Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_REFUSED: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(cidr), what)
    for cidr, what in (
        ("0.0.0.0/8", "a 'this host' address"),
        ("169.254.0.0/16", "a link-local address (cloud metadata services answer there)"),
        ("100.100.100.200/32", "a cloud metadata address (Alibaba Cloud)"),
        ("192.0.0.192/32", "a cloud metadata address (Oracle Cloud)"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("::/128", "the unspecified address"),
        ("fe80::/10", "a link-local address"),
        ("fd00:ec2::254/128", "a cloud metadata address (AWS)"),
        ("ff00::/8", "a multicast address"),
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
HTTP_SCHEMES = frozenset({"http", "https"})
RESOLVE_TIMEOUT = 5.0  # a lookup when a subscription is made: slower, and it is left to the sends


class TargetNotAllowed(ValueError):
    pass


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _address(text: str) -> Address:
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address


class AllowedTargets:
    """Entries are CIDR ranges (`10.0.0.0/8`), exact host names, or `*.suffix` wildcards."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.sink_schemes: frozenset[str] = frozenset()
        self.networks: list[Network] = []
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
        # Every attempt checks its URL again: the same few URLs, parsed once each.
        self.check = functools.lru_cache(maxsize=4096)(self._check)

    def _check(self, url: str) -> str:
        """The URL, normalised, or TargetNotAllowed saying why."""
        try:
            parsed = URL(url)
        except ValueError:
            raise TargetNotAllowed("not a valid URL") from None
        if parsed.scheme not in HTTP_SCHEMES | self.sink_schemes or not parsed.host:
            served = ", ".join(sorted(self.sink_schemes))
            raise TargetNotAllowed(
                "must be an absolute http or https URL"
                + (f", or one of an installed sink ({served})" if served else "")
            )
        # A broker's credentials belong in its URL (they are kept secret); a webhook's never do.
        if parsed.scheme in HTTP_SCHEMES and (parsed.user or parsed.password):
            raise TargetNotAllowed("must not carry credentials")
        host = parsed.host.lower().rstrip(".")
        try:
            address = _address(host.strip("[]"))
        except ValueError:
            if host in self.hosts or any(host.endswith(s) for s in self.suffixes):
                return str(parsed)
            raise TargetNotAllowed(f"host {host!r} is not in [events] allowed_targets") from None
        if not any(address in network for network in self.networks):
            raise TargetNotAllowed(f"address {host} is not in [events] allowed_targets")
        if refusal := self.refusal(address):
            raise TargetNotAllowed(f"address {host} is {refusal}")
        return str(parsed)

    def refusal(self, address: Address) -> str | None:
        """Why the address is refused whatever entry let its host in, or None."""
        for refused, what in ALWAYS_REFUSED:
            if address in refused and not any(
                address in network and _inside(network, refused) for network in self.networks
            ):
                return f"{what}, refused unless a CIDR entry inside {refused} lists it"
        return None


def _inside(network: Network, outer: Network) -> bool:
    return network.network_address in outer and network.broadcast_address in outer


class TargetPolicy(AbstractResolver):
    """`AllowedTargets` and the resolver that enforces it on every connection: the delivery
    client's connector resolves names only through `resolve`, which refuses a name if any of its
    addresses is refused, and connects to the very addresses it returned."""

    def __init__(self, entries: Sequence[str], resolver: AbstractResolver | None = None) -> None:
        self.allowed = AllowedTargets(entries)
        self._resolver = resolver
        self._owned = resolver is None

    def serve(self, schemes: frozenset[str]) -> None:
        """Accept URLs of these schemes too (the installed sinks'), as of now."""
        self.allowed.sink_schemes = frozenset(schemes)
        self.allowed.check.cache_clear()

    def check(self, url: str) -> str:
        """The URL normalised, or TargetNotAllowed: is its host allowed, and a literal's address?
        (A name's addresses are checked when it is resolved.)"""
        return self.allowed.check(url)

    async def check_now(self, url: str) -> str:
        """`check`, and a name's current addresses too: a subscription to a name that resolves
        to a refused address is refused at once. A name that does not resolve yet is accepted
        (it is checked again at every attempt)."""
        url = self.check(url)
        parsed = URL(url)
        host, port = parsed.raw_host or "", parsed.port or 0
        if not _is_address(host):
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(RESOLVE_TIMEOUT):
                    await self.resolve(host, port, socket.AF_UNSPEC)
        return url

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._resolver is None:
            self._resolver = DefaultResolver()
        found = await self._resolver.resolve(host, port, family)
        for result in found:
            refusal = self.allowed.refusal(_address(result["host"]))
            if refusal:
                raise TargetNotAllowed(f"host {host!r} resolves to {result['host']}, {refusal}")
        return found

    async def close(self) -> None:
        if self._owned and self._resolver is not None:
            await self._resolver.close()
