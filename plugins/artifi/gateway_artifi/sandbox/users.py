"""Moving a user's photos to another user id in the Artifi sandbox: ``UpdateUserId``.

9. ``UpdateUserId``: ``newUserId`` or ``oldUserId`` absent/empty/over 128 chars -> ``261``. All
   photos of ``oldUserId`` are appended to ``newUserId``'s (the merged list stays in upload
   order), get ``IsGuest`` from the ``isGuest`` parameter (default false) and ``oldUserId`` is
   left with none. Unknown ``oldUserId`` or equal ids are a successful no-op. Success: Message
   ``"The user id has been successfully updated."``, ``Data`` ``true``.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway_artifi.sandbox.envelope import envelope
from gateway_artifi.sandbox.params import Call, flag, user_call

__all__ = ["USER_UPDATED_MESSAGE", "update_user_id"]

USER_UPDATED_MESSAGE: Final = "The user id has been successfully updated."


@user_call("newUserId")
async def update_user_id(call: Call, new_user_id: str) -> web.Response:
    old_user_id = call.user_id("oldUserId")
    if isinstance(old_user_id, web.Response):
        return old_user_id
    is_guest = flag(call.params, "isGuest")
    call.state.move_photos(call.website.website_id, old_user_id, new_user_id, is_guest)
    return envelope(call.state, ok=True, message=USER_UPDATED_MESSAGE, data=True)
