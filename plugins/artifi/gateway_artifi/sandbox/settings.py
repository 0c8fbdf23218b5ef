"""What the Artifi sandbox serves (its websites and their upload rules), and its fault knobs.

13. ``POST /_sandbox/faults`` takes a JSON object with any subset of the ``Faults`` fields,
    changes only those and answers the resulting faults; unknown fields or wrong types -> 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

from gateway.plugin_api import count_knob, rate_knob, seconds_knob, switch_knob

__all__ = ["ArtifiSandboxSettings", "ArtifiWebsite", "Faults"]

# Pillow format -> the names a website may list in ImageExtensions.
_FORMAT_NAMES: Final[Mapping[str, frozenset[str]]] = {
    "JPEG": frozenset({"JPEG", "JPG"}),
    "PNG": frozenset({"PNG"}),
    "GIF": frozenset({"GIF"}),
    "BMP": frozenset({"BMP"}),
    "TIFF": frozenset({"TIFF", "TIF"}),
    "WEBP": frozenset({"WEBP"}),
}


@attrs.frozen
class ArtifiWebsite:
    """One configured Artifi website: its credentials and its upload rules."""

    website_id: int
    client_key: str
    max_file_mb: int = 5
    image_extensions: str = "JPEG,JPG,PNG"
    max_width: int = 3000
    max_height: int = 3000
    image_dpi: int = 90

    def allows(self, pillow_format: str) -> bool:
        """Whether an image Pillow detected as ``pillow_format`` may be uploaded here."""
        allowed = {e.strip().lstrip(".").upper() for e in self.image_extensions.split(",")}
        return bool(_FORMAT_NAMES.get(pillow_format, frozenset({pillow_format})) & allowed)


@attrs.frozen
class ArtifiSandboxSettings:
    """What the sandbox serves: its websites and the seed of its randomness."""

    websites: tuple[ArtifiWebsite, ...] = (
        ArtifiWebsite(website_id=1234, client_key="sandbox-artifi-key"),
    )
    seed: int = 0


@attrs.define
class Faults:
    """Fault knobs and quirk switches; changed live by tests or ``POST /_sandbox/faults``.

    The quirks are described with the envelope (``envelope``); the rates and the latency default
    to the integer 0, which is what the faults' JSON has always shown.
    """

    latency_s: float = seconds_knob(0)
    error_rate: float = rate_knob(0)
    drop_rate: float = rate_knob(0)
    fail_next: int = count_knob()
    lowercase_keys: bool = switch_knob()
    data_as_string: bool = switch_knob()
    problem_details_400: bool = switch_knob()
    multi_error_codes: bool = switch_knob()
