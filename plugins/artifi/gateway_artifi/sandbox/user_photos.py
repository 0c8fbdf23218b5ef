"""A user's photos in the Artifi sandbox: ``GetUserUploadedList`` and ``DeleteUserPhoto``.

7. ``GetUserUploadedList``: ``userId`` absent/empty/too long -> ``261``; an unknown user gets
   ``{"AssetCount": 0, "AssetList": []}``. ``searchKey`` keeps photos whose ``ImageName``
   contains it, case-insensitively. ``AssetCount`` is the number of matching photos (not the page
   length). Paging applies only when ``pageSize`` is an integer > 0; ``pageIndex`` is 1-based and
   a missing, non-integer or < 1 value means page 1; a non-integer or <= 0 ``pageSize`` means "no
   paging" (all photos). Photos are always listed ascending by upload (by Id).
8. ``DeleteUserPhoto``: ``userId`` invalid -> ``261``; a ``photoId`` that is not an integer or not
   one of that user's photos on that website -> Error envelope with ``ErrorCode`` ``"262"``
   (the documented "invalid or missing file" code) and Message
   ``"The Image does not exist for this user."``. Success: Message
   ``"The Image has been successfully deleted."``, ``Data`` null.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway_artifi.sandbox.envelope import envelope, error
from gateway_artifi.sandbox.params import Call, int_or_none, user_call

__all__ = [
    "DELETED_MESSAGE",
    "PHOTO_NOT_FOUND_MESSAGE",
    "delete_user_photo",
    "get_user_uploaded_list",
]

DELETED_MESSAGE: Final = "The Image has been successfully deleted."
PHOTO_NOT_FOUND_MESSAGE: Final = "The Image does not exist for this user."


@user_call("userId")
async def get_user_uploaded_list(call: Call, user: str) -> web.Response:
    state, params, website = call.state, call.params, call.website
    photos = sorted(state.user_photos(website.website_id, user), key=lambda p: p.id)
    search = params.get("searchkey", "").strip().casefold()
    if search:
        photos = [p for p in photos if search in p.image_name.casefold()]
    page = photos
    page_size = int_or_none(params.get("pagesize"))
    if page_size is not None and page_size > 0:
        page_index = int_or_none(params.get("pageindex"))
        page_index = page_index if page_index is not None and page_index >= 1 else 1
        start = (page_index - 1) * page_size
        page = photos[start : start + page_size]
    data = {"AssetCount": len(photos), "AssetList": [p.asset() for p in page]}
    return envelope(state, ok=True, data=data)


@user_call("userId")
async def delete_user_photo(call: Call, user: str) -> web.Response:
    photo_id = int_or_none(call.params.get("photoid"))
    if photo_id is None or not call.state.delete_photo(call.website.website_id, user, photo_id):
        return error(call.state, "262", PHOTO_NOT_FOUND_MESSAGE)
    return envelope(call.state, ok=True, message=DELETED_MESSAGE)
