"""The contract's photo operations, carried to Artifi.

Uploads and deletes are never sent twice by the gateway: Artifi would store a second copy of a
photo, and its delete is a GET whose answer may be lost after it took effect. After a lost delete
answer the gateway reads the user's list instead of sending the delete again.
"""

from __future__ import annotations

import unicodedata
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import IO, Any, Final

import structlog
from aiohttp import FormData

from gateway.plugin_api import (
    FieldError,
    OperationCall,
    ProblemError,
    Reply,
    UpstreamTimeout,
    UpstreamUnavailable,
    bad_request,
    invalid_input,
    not_found,
)
from gateway_artifi.client import (
    DELETE_PATH,
    LIST_PATH,
    UPDATE_USER_PATH,
    UPLOAD_PATH,
    ArtifiClient,
    RulesCache,
    Slots,
)
from gateway_artifi.config import ArtifiConfig
from gateway_artifi.envelope import ArtifiProblem, unexpected
from gateway_artifi.mapping import assets, photo_settings, to_photo
from gateway_artifi.preflight import check_upload
from gateway_artifi.values import (
    PHOTO_DELETED,
    PHOTO_UPLOADED,
    USER_MERGED,
    MergeUserResult,
    PhotoDeletedData,
    PhotoPage,
    PhotoUploadedData,
    UserMergedData,
)

__all__ = ["OPERATIONS", "serve"]

DEFAULT_DPI: Final = 72  # documented

_log = structlog.get_logger("gateway_artifi")


def _dedupe_key(artifi: ArtifiClient, photo_id: str, what: str) -> str:
    # Artifi photo ids are unique per installation and never reused: one event per photo and fact.
    return f"artifi:{artifi.config.website_id}:photo:{photo_id}:{what}"


def _user_key(artifi: ArtifiClient, user_id: str) -> str:
    """The id under which the gateway records who owns an Artifi user: users live per website
    (and installation), and are told apart case-blind unless Artifi is known not to be."""
    config = artifi.config
    if not config.assumptions.user_ids_case_sensitive:
        user_id = unicodedata.normalize("NFKC", user_id).casefold()
    host = urllib.parse.urlsplit(config.base_url).netloc.lower()
    return f"{host}/{config.website_id}/{user_id}"


async def _own_users(
    call: OperationCall[ArtifiConfig], artifi: ArtifiClient, *user_ids: str
) -> None:
    """Whatever user a tenant names first is its own: tenants may share one Artifi website, and
    another tenant's user answers 404 exactly like one that does not exist."""
    for user_id in user_ids:
        if not await call.services.resources.claim("user", _user_key(artifi, user_id)):
            raise not_found(f"user {user_id} does not exist")


async def upload_user_photo(call: OperationCall[ArtifiConfig], artifi: ArtifiClient) -> Reply:
    upload = call.form.files.get("file") if call.form is not None else None
    if upload is None:
        raise bad_request("the form has no file part", [FieldError("/file", "missing")])
    user_id = str(call.path["userId"])
    previous = call.body.get("previousUserId")
    await _own_users(call, artifi, user_id, *([str(previous)] if previous else []))
    assumptions = artifi.assumptions
    facts = await check_upload(upload, await artifi.rules(), assumptions)
    params = {
        "frontAppUserId": user_id,
        "isGuest": "true" if call.body.get("guest") else "false",
        "dpi": str(call.body.get("dpi", DEFAULT_DPI)),
    }
    if previous:
        params["oldExternalUserId"] = str(previous)

    handles: list[IO[bytes]] = []

    def form() -> FormData:
        # Streamed from the spooled file by aiohttp, which also writes the multipart boundary.
        handle = upload.open()
        handles.append(handle)
        data = FormData()
        data.add_field(
            assumptions.file_part,
            handle,
            filename=upload.filename or f"photo{facts.extension}",
            content_type=facts.mime_type,  # from the content, not what the caller declared
        )
        return data

    fields = {
        "frontappuserid": "userId",
        "dpi": "/dpi",
        assumptions.file_part.lower(): "/file",
        "oldexternaluserid": "/previousUserId",
    }
    try:
        data = await artifi.send(
            "POST",
            UPLOAD_PATH,
            operation="UploadUserPhotos",
            params=params,
            data=form,
            idempotent=False,
            fields=fields,
        )
    except ArtifiProblem as exc:
        if "262" in exc.codes:
            # The file passed our preflight: the website's rules may have changed since cached.
            artifi.forget_rules()
        raise
    finally:
        for handle in handles:
            handle.close()
    photo = to_photo(data, facts)
    await call.services.emit(
        PHOTO_UPLOADED,
        PhotoUploadedData(user_id, photo),
        dedupe_key=_dedupe_key(artifi, photo.id, "uploaded"),
    )
    return Reply(201, photo)


async def list_user_photos(call: OperationCall[ArtifiConfig], artifi: ArtifiClient) -> Reply:
    user_id = str(call.path["userId"])
    await _own_users(call, artifi, user_id)
    page = int(call.query.get("page", 1))
    page_size = int(call.query.get("pageSize", 20))
    search = call.query.get("search")
    items, total = await _uploaded_page(
        artifi, user_id, page_size, page - 1, str(search) if search else None
    )
    return Reply(200, PhotoPage(tuple(map(to_photo, items)), page, page_size, total))


async def _uploaded_page(
    artifi: ArtifiClient, user_id: str, size: int, index: int, search: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """One page of the user's uploads (`index` from 0, whatever Artifi counts from) and the
    total."""
    params = {
        "userId": user_id,
        "pageSize": str(size),
        "pageIndex": str(artifi.assumptions.first_page_index + index),
    }
    if search:
        params["searchKey"] = search
    data = await artifi.send(
        "GET",
        LIST_PATH,
        operation="GetUserUploadedList",
        params=params,
        fields={"userid": "userId"},
    )
    return assets(data)


async def _still_listed(artifi: ArtifiClient, user_id: str, photo_id: str) -> bool:
    """Whether the user's list still has the photo, read page by page."""
    size = artifi.config.scan_page_size
    index = 0
    while True:
        items, total = await _uploaded_page(artifi, user_id, size, index)
        if any(isinstance(i, dict) and str(i.get("id")) == photo_id for i in items):
            return True
        index += 1
        if not items or index * size >= total:
            return False


async def delete_user_photo(call: OperationCall[ArtifiConfig], artifi: ArtifiClient) -> Reply:
    user_id = str(call.path["userId"])
    photo_id = str(call.path["photoId"])
    if not (photo_id.isascii() and photo_id.isdigit()):
        raise not_found(f"user {user_id} has no photo {photo_id} (Artifi photo ids are numbers)")
    photo_id = str(int(photo_id))  # one spelling: "0012" is photo 12
    await _own_users(call, artifi, user_id)
    try:
        await artifi.send(
            "GET",
            DELETE_PATH,
            operation="DeleteUserPhoto",
            params={"userId": user_id, "photoId": photo_id},
            idempotent=False,  # a GET that deletes: never resent blindly
            fields={"userid": "userId", "photoid": "photoId"},
        )
    except ArtifiProblem as exc:
        if set(exc.codes) & set(artifi.assumptions.photo_missing_codes):
            raise not_found(f"user {user_id} has no photo {photo_id}") from None
        raise
    except (UpstreamTimeout, UpstreamUnavailable) as lost:
        # The delete may have happened with only its answer lost: the list tells.
        try:
            listed = await _still_listed(artifi, user_id, photo_id)
        except ProblemError:
            raise lost from None
        if listed:
            raise lost  # not deleted: the caller may try again
        _log.info(
            "artifi.delete_confirmed_by_list",
            tenant=call.tenant,
            operation="deleteUserPhoto",
            photo_id=photo_id,
            error=lost.slug,
        )
    await call.services.emit(
        PHOTO_DELETED,
        PhotoDeletedData(user_id, photo_id),
        dedupe_key=_dedupe_key(artifi, photo_id, "deleted"),
    )
    return Reply(204)


async def merge_user(call: OperationCall[ArtifiConfig], artifi: ArtifiClient) -> Reply:
    user_id = str(call.path["userId"])
    guest_id = str(call.body["guestUserId"])
    if guest_id == user_id:
        raise invalid_input(
            "a user cannot be merged into itself",
            [FieldError("/guestUserId", "must differ from the userId of the path")],
        )
    await _own_users(call, artifi, user_id, guest_id)
    # Artifi moves nothing for a guest it does not know and still answers success; a merge that
    # claimed success for nothing done would hide a wrong id from the caller. Known means has
    # uploads (what this API merges; the gateway cannot see a guest's designs).
    _, guest_uploads = await _uploaded_page(artifi, guest_id, 1, 0)
    if guest_uploads == 0:
        raise not_found(f"guest user {guest_id} has no uploads at Artifi to merge")
    data = await artifi.send(
        "PUT",
        UPDATE_USER_PATH,
        operation="UpdateUserId",
        # Moving a guest's photos twice moves nothing the second time: safe to retry (PUT).
        params={"newUserId": user_id, "oldUserId": guest_id, "isGuest": "false"},
        fields={"newuserid": "userId", "olduserid": "/guestUserId"},
    )
    if data is False:
        raise unexpected("False to UpdateUserId: the user id was not updated")
    await call.services.emit(USER_MERGED, UserMergedData(user_id, guest_id))
    return Reply(200, MergeUserResult(user_id, guest_id))


async def get_photo_settings(call: OperationCall[ArtifiConfig], artifi: ArtifiClient) -> Reply:
    return Reply(200, photo_settings(await artifi.rules()))


Operation = Callable[[OperationCall[ArtifiConfig], ArtifiClient], Awaitable[Reply]]

OPERATIONS: Final[Mapping[str, Operation]] = {
    "uploadUserPhoto": upload_user_photo,
    "listUserPhotos": list_user_photos,
    "deleteUserPhoto": delete_user_photo,
    "mergeUser": merge_user,
    "getPhotoSettings": get_photo_settings,
}


async def serve(call: OperationCall[ArtifiConfig], slots: Slots, rules: RulesCache) -> Reply:
    """One caller request, within the backend object's call slots and upload rules."""
    return await OPERATIONS[call.operation](call, ArtifiClient(call.upstream, slots, rules))
