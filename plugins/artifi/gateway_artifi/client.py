"""Artifi as one operation call sees it: its paths, a concurrency slot, the envelope decoded.

The core's upstream client adds the tenant's credentials (query string, see `plugin.py`), logs
each attempt with the key redacted, retries what may be retried and runs the breaker; this class
adds what is Artifi's own: every call answers an envelope, decoded by `envelope.decode`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.plugin_api import REDACTED, BodyFactory, OperationCall, ProblemError, strip_url_queries
from gateway_artifi.config import ArtifiConfig
from gateway_artifi.envelope import Context, decode
from gateway_artifi.preflight import UnreadableSettings, UploadRules
from gateway_artifi.runtime import Runtime

__all__ = ["ArtifiClient"]

UPLOAD_PATH: Final = "/api/2/UploadPhoto/UploadUserPhotos"
SETTINGS_PATH: Final = "/api/3/UploadImage/GetImageSettings"
LIST_PATH: Final = "/api/3/UploadImage/GetUserUploadedList"
DELETE_PATH: Final = "/api/3/UploadImage/DeleteUserPhoto"
UPDATE_USER_PATH: Final = "/api/3/User/UpdateUserId"


class ArtifiClient:
    """The calls of one caller request to the tenant's Artifi website."""

    def __init__(self, call: OperationCall[ArtifiConfig], runtime: Runtime) -> None:
        self.call = call
        self.config = call.config
        self.assumptions = self.config.assumptions
        self.runtime = runtime

    async def send(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        fields: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        data: BodyFactory | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """One Artifi call; its `Data`, or the mapped problem raised.

        `fields` names, for each upstream parameter (lower case), where the caller gave its value,
        so that a rejection points at the caller's input.
        """
        upstream = self.call.upstream
        async with self.runtime.slot(
            self.call.tenant, self.config.max_concurrency, upstream.deadline
        ):
            # 400 comes back to us: Artifi sends validation failures as a bare ProblemDetails.
            response = await upstream.request(
                method,
                self.config.url(path),
                operation=operation,
                params=params,
                data=data,
                idempotent=idempotent,
                expect=(400,),
            )
        context = Context(
            tenant=self.call.tenant,
            operation=operation,
            assumptions=self.assumptions,
            fields=fields,
            scrub=self._scrub,
        )
        return decode(response, context)

    async def rules(self) -> UploadRules:
        """The website's upload rules, from the tenant's cache while they are fresh."""

        async def fetch() -> UploadRules:
            # A read: safe to retry although Artifi makes it a POST.
            data = await self.send(
                "POST", SETTINGS_PATH, operation="GetImageSettings", fields={}, idempotent=True
            )
            try:
                return UploadRules.from_data(data, self.assumptions)
            except UnreadableSettings as exc:
                raise ProblemError(
                    502, "upstream-error", "Upstream error", f"backend artifi answered {exc}"
                ) from None

        return await self.runtime.settings.get(self.call.tenant, self.config.settings_ttl_s, fetch)

    def _scrub(self, text: str) -> str:
        """Upstream text made safe to show: no client key, no URL query (which would carry it)."""
        try:
            key = self.config.client_key.reveal()
        except (LookupError, OSError):
            key = ""
        if key:
            text = text.replace(key, REDACTED)
        return strip_url_queries(text)
