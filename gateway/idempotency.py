"""Idempotency-Key: the same key and the same request answer once, whatever the retries.

For any operation whose contract declares the `Idempotency-Key` header. The first request with a key
claims it in the store and runs; its answer (a JSON reply under 500) is kept for `ttl` seconds and
replayed to every later request with that key and the same fingerprint, with
`Idempotent-Replayed: true`. A duplicate that arrives while the first still runs waits for it (the
store is polled, so this holds across processes) up to `wait` seconds, then gets a 409. The same key
with a different request is a 422. An answer of 500 or more, or an exception, releases the key: the
caller may retry. A claim is a lease of `wait` seconds: if the process running the first request
dies, the key becomes usable again once the lease ends rather than staying stuck for `ttl`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from gateway import problems, wire
from gateway.problems import FieldError
from gateway.store.protocol import Store
from gateway.store.records import IdempotentRecord
from gateway.validation import Input
from gateway.values import Reply

HEADER = "idempotency-key"
REPLAYED = "Idempotent-Replayed"
POLL_INTERVAL = 0.02


async def fingerprint(operation_id: str, checked: Input) -> str:
    """What makes two requests "the same": operation, parameters, body and file contents."""
    files = {}
    if checked.form is not None:
        files = {
            name: [await asyncio.to_thread(f.sha256), f.filename, f.content_type]
            for name, f in checked.form.files.items()
        }
    document = {
        "operation": operation_id,
        "path": checked.path,
        "query": checked.query,
        "body": checked.body,
        "files": files,
    }
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _replay(record: IdempotentRecord) -> Reply:
    body = orjson.loads(record.body) if record.body else None
    return Reply(record.status or 200, body, {**record.headers, REPLAYED: "true"})


async def run_once(
    store: Store,
    *,
    tenant: str,
    key: str,
    operation_id: str,
    checked: Input,
    ttl: float,
    wait: float,
    run: Callable[[], Awaitable[Reply | web.StreamResponse]],
) -> Reply | web.StreamResponse:
    request_print = await fingerprint(operation_id, checked)
    try:
        async with asyncio.timeout(wait):
            while True:
                record = await store.begin_idempotent(
                    tenant, key, operation=operation_id, fingerprint=request_print, lease=wait
                )
                if record is None:
                    break  # claimed: this request runs
                if record.fingerprint != request_print or record.operation != operation_id:
                    raise problems.invalid_input(
                        "this Idempotency-Key was used for a different request",
                        [FieldError("Idempotency-Key", "reused with a different request")],
                    )
                if record.state == "done":
                    return _replay(record)
                await asyncio.sleep(POLL_INTERVAL)  # the first request is still running
    except TimeoutError:
        raise problems.ProblemError(
            409,
            "idempotency-key-in-use",
            "Conflict",
            "a request with this Idempotency-Key is still in progress; retry later",
        ) from None
    try:
        result = await run()
    except BaseException:
        await store.abandon_idempotent(tenant, key)
        raise
    if isinstance(result, Reply) and result.status < 500:
        body = None if result.body is None else wire.dumps(result.body)
        await store.finish_idempotent(
            tenant, key, status=result.status, headers=result.headers, body=body, ttl=ttl
        )
    else:
        await store.abandon_idempotent(tenant, key)
    return result
