"""A website's upload rules in the Artifi sandbox: ``GetImageSettings``.

``Data`` comes from the website's settings (``ArtifiWebsite``): ``FileSize`` in MB,
``ImageExtensions``, ``Dimension`` and ``ImageDPI``; the user photo sizes are 0.
"""

from __future__ import annotations

from aiohttp import web

from gateway_artifi.sandbox.envelope import envelope
from gateway_artifi.sandbox.params import Call, website_call

__all__ = ["get_image_settings"]


@website_call
async def get_image_settings(call: Call) -> web.Response:
    website = call.website
    data = {
        "FileSize": website.max_file_mb,
        "ImageExtensions": website.image_extensions,
        "Dimension": {"Width": website.max_width, "Height": website.max_height},
        "ImageDPI": website.image_dpi,
        "UserPhotoImageWidth": 0,
        "UserPhotoImageHeight": 0,
    }
    return envelope(call.state, ok=True, data=data)
