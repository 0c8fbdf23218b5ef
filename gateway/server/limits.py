"""What the server holds open: client connections against `max_connections`, and the process's
file descriptors to fit them."""

from __future__ import annotations

import resource
import time

from gateway.logs import get_logger

log = get_logger("gateway.server")

FD_RESERVE = 1024  # descriptors besides client connections: store, upstream pools, webhooks, logs
REFUSAL_LOG_INTERVAL = 10.0  # one log line per interval while connections are refused


class Gate:
    """The connections one site holds open, against `max_connections`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._refused = 0
        self._logged_at = -REFUSAL_LOG_INTERVAL

    def admit(self) -> bool:
        if self.open < self.limit:
            self.open += 1
            return True
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= REFUSAL_LOG_INTERVAL:  # a flood must not flood the log too
            log.warning("server.connections_refused", refused=self._refused, limit=self.limit)
            self._logged_at, self._refused = now, 0
        return False

    def release(self) -> None:
        self.open -= 1


def reserve_descriptors(max_connections: int) -> None:
    """Raise this process's soft limit on open files to fit `max_connections` and the rest, so
    that the cap, not EMFILE, is what a flood of connections meets (systemd's soft default is
    1024). Up to the hard limit only; a shortfall is logged."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + FD_RESERVE
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    if raised < wanted:
        log.warning(
            "server.descriptors_short", max_connections=max_connections, open_files_limit=raised
        )
