"""The PICTOFiT Content Service backend: garment photos to virtual try-on assets.

Its modules, the same names and roles as every backend plugin of this project (Artifi's too):

- `plugin`: the pluggy hooks only (register the backend, offer the sandbox).
- `backend`: the `Backend` object, one per app, holding the tenants' tokens and type lists.
- `config`: the tenant's table, and every assumption made where the vendor's docs are silent.
- `auth`: credentials: the API key, or the older password grant's token, fetched and cached.
- `client`: the calls to the service, and the reading of its answers (502 when unreadable).
- `operations`: one function per unified operation, and `serve`, which the backend's
  `operation` hands each caller request to.
- `values`: the contract's values it answers and emits, frozen attrs classes (the core writes
  them in camelCase through its one converter), and its event types.
- `mapping`: the service's payloads to the contract's values, and type names to the service's ids.
- `callbacks`: registering the gateway's callback URLs, and callbacks turned into events.
- `preflight`: an image checked against the input rules before anything goes upstream.
- `sandbox/`: the simulator, one module per resource.
"""

from typing import Final

NAME: Final = "pictofit"
