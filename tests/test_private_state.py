"""What the gateway holds about its tenants stays private: /readyz counts them and names none; the
SQLite database, which holds webhook secrets, is created readable by its owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gateway.store.opening import open_store
from tests.conftest import Gateway


async def test_readiness_counts_tenants_and_names_none(gateway: Gateway) -> None:
    """/readyz answers anyone: it says how many tenants are configured and for how many each
    backend's callbacks are registered, never which tenants."""
    response = await gateway.client.get("/readyz")
    text = await response.text()
    for tenant in gateway.settings.tenants:
        assert tenant.id not in text
    checks = (await response.json())["checks"]
    assert checks["tenants"] == {"ok": True, "detail": "2 configured"}
    assert checks["callbacks:acme"] == {"ok": True, "detail": "2 of 2 tenants synced"}
    assert set(checks) == {"store", "tenants", "secrets", "backend:acme", "callbacks:acme"}


async def test_the_sqlite_database_is_created_private_whatever_the_umask(tmp_path: Path) -> None:
    """Under umask 0 (world-writable by default), the store creates its folder 0700 and the
    database with its -wal and -shm files 0600."""
    path = tmp_path / "data" / "gateway.db"
    umask = os.umask(0)
    try:
        store = open_store(f"sqlite:///{path}")
        await store.open()
        try:  # before closing, which removes -wal and -shm
            files = [path, *(path.with_name(path.name + side) for side in ("-wal", "-shm"))]
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in (path.parent, *files)}
        finally:
            await store.close()
    finally:
        os.umask(umask)
    assert modes == {"data": 0o700} | {f.name: 0o600 for f in files}
