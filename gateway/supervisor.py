"""`gateway serve --workers N`: one supervisor process starting N workers on one port
(SO_REUSEPORT), restarting any that dies, and stopping them all on SIGTERM or SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import structlog

from gateway.settings import Settings

SUPERVISE_INTERVAL = 0.2
QUICK_DEATH = 5.0  # a worker that exits sooner than this after starting failed to start
GIVE_UP_AFTER = 5  # quick deaths in a row of one worker stop them all (exit 1)
RESTART_BACKOFF_CAP = 10.0
STOP_GRACE = 30.0  # seconds the workers get to finish after SIGTERM


def supervise(settings: Settings, *, workers: int, config: str | None) -> int:
    """Start `--workers` processes on one port (SO_REUSEPORT), restart any that dies, and stop
    them all on SIGTERM or SIGINT. Each opens the store and runs its own delivery workers."""
    log = structlog.get_logger("gateway.workers")
    command = [sys.executable, "-m", "gateway.cli", "serve", "--worker-of", str(os.getpid())]
    command += ["--workers-total", str(workers)]
    command += ["--host", settings.server.host, "--port", str(settings.server.port)]
    if config:
        command += ["--config", config]
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _: stopping.append(signum))

    def start() -> subprocess.Popen[bytes]:
        child = subprocess.Popen(command)
        log.info("workers.started", pid=child.pid)
        return child

    children = [start() for _ in range(workers)]
    started = [time.monotonic()] * workers
    restart_at: list[float | None] = [None] * workers
    quick_deaths = [0] * workers
    code = 0
    while not stopping:
        time.sleep(SUPERVISE_INTERVAL)
        now = time.monotonic()
        for i, child in enumerate(children):
            if stopping or child.poll() is None:
                continue
            if restart_at[i] is None:  # just exited
                lived = now - started[i]
                quick_deaths[i] = quick_deaths[i] + 1 if lived < QUICK_DEATH else 0
                log.warning(
                    "workers.exited", pid=child.pid, code=child.returncode, lived_s=round(lived, 1)
                )
                if quick_deaths[i] >= GIVE_UP_AFTER:
                    log.error("workers.giving_up", reason="a worker keeps exiting as it starts")
                    stopping.append(0)
                    code = 1
                    break
                backoff = 0.5 * 2 ** quick_deaths[i] if quick_deaths[i] else 0.0
                restart_at[i] = now + min(RESTART_BACKOFF_CAP, backoff)
            if now >= (restart_at[i] or 0.0):
                children[i], started[i], restart_at[i] = start(), now, None
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    log.info("workers.stopped", workers=len(children))
    return code
