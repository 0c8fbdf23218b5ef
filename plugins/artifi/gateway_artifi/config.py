"""A tenant's Artifi configuration, and the one place where this project's assumptions live.

ARTIFI.md marks what Artifi documents and what this project *assumed* where the docs are silent.
Every assumed choice the plugin relies on is a field of `Assumptions`, with the sandbox's
behaviour as its default, so that a real Artifi that differs is a configuration change, not a
code change (`[tenants.backends.artifi.assumptions]`).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from gateway.plugin_api import Secret

MIB = 1024 * 1024


def _http_url(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{attribute.name} must be an absolute http(s) URL")


@attrs.frozen
class Assumptions:
    """What Artifi's docs leave open, as this project (and its sandbox) decided it."""

    # The multipart part of the file: documented for api/4 only, assumed for api/2.
    file_part: str = "postedFile"
    # GetImageSettings' `FileSize` is in MB; read as MiB.
    file_size_unit_bytes: int = MIB
    # A limit of 0 in the settings (size, width, height) means "no limit".
    zero_limit_is_unlimited: bool = True
    # Names in `ImageExtensions` that mean the same format (JPEG and JPG are one type).
    same_formats: tuple[tuple[str, ...], ...] = (("JPEG", "JPG"), ("TIFF", "TIF"))
    # GetUserUploadedList's `pageIndex` of the first page.
    first_page_index: int = 1
    # Whether Artifi tells user ids apart by case (undocumented). The safe guess: it may not, so
    # the gateway's ownership of users compares them case-blind and no tenant reaches another
    # tenant's user by spelling its id differently; the id itself goes upstream as given.
    user_ids_case_sensitive: bool = False
    # DeleteUserPhoto's error codes for a photo the user does not have (answered 404).
    photo_missing_codes: tuple[str, ...] = ("262",)
    # A bare HTTP 400 ProblemDetails names the offending query parameter or part in `errors`;
    # the error code each name stands for (names compared case-insensitively).
    problem_fields: Mapping[str, str] = attrs.field(
        factory=lambda: {
            "frontAppUserId": "261",
            "userId": "261",
            "newUserId": "261",
            "oldUserId": "261",
            "postedFile": "262",
            "photoId": "262",
            "dpi": "265",
        },
        hash=False,
    )

    def code_of_field(self, name: str) -> str | None:
        """The error code a rejected upstream parameter (or the file part) stands for."""
        wanted = name.lower()
        if wanted == self.file_part.lower():
            return "262"
        return next((c for f, c in self.problem_fields.items() if f.lower() == wanted), None)


@attrs.frozen
class ArtifiConfig:
    """A tenant's `[tenants.backends.artifi]` table."""

    base_url: str = attrs.field(validator=_http_url)
    website_id: int
    client_key: Secret
    # How long a website's upload rules (GetImageSettings) are reused before being asked again.
    settings_ttl_s: float = attrs.field(default=300.0, validator=attrs.validators.ge(0.0))
    # Calls in flight to Artifi for this tenant at most (Artifi publishes no rate limits).
    max_concurrency: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    # Page size used when the gateway reads a user's whole list (checking a delete).
    scan_page_size: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    assumptions: Assumptions = attrs.field(factory=Assumptions)

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path
