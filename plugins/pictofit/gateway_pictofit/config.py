"""A tenant's PICTOFiT configuration, and the one place where this project's assumptions live.

PICTOFIT.md marks what the PICTOFiT docs say and what this project *assumed* where they are
silent. Every assumed choice the plugin relies on is a field of `Assumptions`, with the sandbox's
behaviour as its default, so that a real service that differs is a configuration change
(`[tenants.backends.pictofit.assumptions]`), not a code change.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

import attrs

from gateway.plugin_api import Secret

__all__ = [
    "MIB",
    "UNIFIED_STATES",
    "Assumptions",
    "ImageRules",
    "PictofitConfig",
    "TokenAuth",
]

MIB: Final = 1024 * 1024
UNIFIED_STATES: Final = ("draft", "submitted", "processing", "finished", "rejected")
_NO_SECRETS: Final[frozenset[str]] = frozenset()


def _http_url(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{attribute.name} must be an absolute http(s) URL")


def _strip_slash(value: str) -> str:
    return value.rstrip("/")


def _uuid(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise ValueError(f"{attribute.name} must be a UUID") from None


def _unified_states(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    states = value.values() if isinstance(value, Mapping) else [value]
    wrong = sorted(str(s) for s in states if s not in UNIFIED_STATES)
    if wrong:
        raise ValueError(f"{attribute.name}: {wrong} not among {UNIFIED_STATES}")


def _default_states() -> Mapping[int, str]:
    return {1: "draft", 2: "submitted", 3: "processing", 4: "finished", 5: "rejected"}


def _default_callback_events() -> Mapping[str, str]:
    return {"PRODUCT_COMPLETED": "product.completed", "PRODUCT_REJECTED": "product.rejected"}


@attrs.frozen
class Assumptions:
    """What the PICTOFiT docs leave open, as this project (and its sandbox) decided it."""

    # The type lists are JSON arrays of {id, name} (paths from the doc, shape assumed).
    product_types_path: str = "/products/types"
    file_types_path: str = "/files/types"
    callback_types_path: str = "/Customer/callbacks/types"  # as the doc prints it
    type_id_key: str = "id"
    type_name_key: str = "name"
    # A configuration's `stateId` -> the unified state; an id not listed reads as `unknown_state`.
    states: Mapping[int, str] = attrs.field(
        factory=_default_states, validator=_unified_states, hash=False
    )
    unknown_state: str = attrs.field(default="processing", validator=_unified_states)
    # The keys of one entry of a configuration's `results`.
    result_format_key: str = "format"
    result_compressed_key: str = "compressed"
    result_url_key: str = "url"
    result_file_name_key: str = "fileName"
    # Callback type name -> unified event type (PRODUCT_REJECTED is assumed); any other type
    # becomes `pictofit.<name in lower case>`.
    callback_events: Mapping[str, str] = attrs.field(factory=_default_callback_events, hash=False)
    # The token answer is OAuth2 JSON {access_token, expires_in, token_type}; without
    # `expires_in`, a token is reused for this long.
    token_default_lifetime_s: float = attrs.field(default=300.0, validator=attrs.validators.gt(0))


@attrs.frozen
class ImageRules:
    """The input rules for GARMENT_2D images (doc: hard limits of an older page; 60 MP)."""

    max_mb: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    min_width: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    max_megapixels: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    # The image type every configuration needs before it is submitted (doc).
    required_kind: str = "FRONTAL"

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * MIB)


@attrs.frozen
class TokenAuth:
    """The older auth mode: a password-grant token from `connect/token`, used as the Bearer."""

    username: str
    password: Secret
    client_secret: Secret
    url: str = attrs.field(default="https://rrauth.pictofit.com/connect/token", validator=_http_url)
    client_id: str = "contentserviceapi.service.client"
    scope: str = "openid contentserviceapi"


# eq=False: compared and hashed by identity (the app holds one per tenant for its lifetime);
# per-tenant state (tokens, type lists) is the backend object's, keyed by tenant id.
@attrs.frozen(eq=False)
class PictofitConfig:
    """A tenant's `[tenants.backends.pictofit]` table.

    Exactly one of `api_key` (current auth, sent as `Authorization: Bearer`) and `token` (the older
    password grant) is set. `callback_secret` is what PICTOFiT sends back as `Authorization` on
    callbacks; without it callbacks are neither registered nor accepted.
    """

    customer_id: str = attrs.field(validator=_uuid)
    base_url: str = attrs.field(
        default="https://api.cs.pictofit.com/v1.5", converter=_strip_slash, validator=_http_url
    )
    api_key: Secret | None = None
    token: TokenAuth | None = None
    callback_secret: Secret | None = None
    # How long the product and file type lists are reused before being asked again.
    types_ttl_s: float = attrs.field(default=300.0, validator=attrs.validators.ge(0))
    images: ImageRules = attrs.field(factory=ImageRules)
    assumptions: Assumptions = attrs.field(factory=Assumptions)

    def __attrs_post_init__(self) -> None:
        if (self.api_key is None) == (self.token is None):
            raise ValueError("set exactly one of api_key and token")

    def known_secrets(self) -> frozenset[str]:
        """Values to redact wherever they could appear, besides the credential in use."""
        if self.callback_secret is None and self.token is None:
            return _NO_SECRETS  # an API key alone: asked before every attempt, nothing to read
        secrets = [self.callback_secret] if self.callback_secret else []
        if self.token is not None:
            secrets += [self.token.password, self.token.client_secret]
        values = set()
        for secret in secrets:
            try:
                values.add(secret.reveal())
            except (LookupError, OSError):
                continue  # unreadable: nothing to redact, and the call that needs it says so
        return frozenset(values)
