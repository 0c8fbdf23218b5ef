"""The Artifi backend: product customisation, user photo uploads.

Its modules, the same names and roles as every backend plugin of this project (PICTOFiT's too):

- `plugin`: the pluggy hooks only (register the backend, offer the sandbox).
- `backend`: the `Backend` object, one per app, holding the tenants' call slots and upload rules.
- `config`: the tenant's table, and every assumption made where the vendor's docs are silent.
- `auth`: credentials: the website id and client key, in the query string, redacted everywhere.
- `client`: the calls to Artifi (within the tenant's concurrency slots), each answer decoded.
- `operations`: one function per unified operation, and `serve`, which the backend's
  `operation` hands each caller request to.
- `values`: the contract's values it answers and emits, frozen attrs classes (the core writes
  them in camelCase through its one converter), and its event types.
- `mapping`: Artifi's payloads to the contract's values.
- `preflight`: an upload checked against the website's rules before anything goes upstream.
- `sandbox/`: the simulator, one module per resource.

One module of its own, `envelope`: every Artifi answer is wrapped in an envelope whose `Data`
a success holds and whose error codes map to the core's problems (PICTOFiT answers plain JSON,
read in its `client`). No `callbacks` module: Artifi sends no callbacks (its docs describe
none), so the backend neither registers nor receives any; its events are the gateway's own
(uploads, deletes, merges).
"""

from typing import Final

NAME: Final = "artifi"
