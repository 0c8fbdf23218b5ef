"""PICTOFiT's answers in the contract's shapes (configurations, results, images, products), and
the contract's type names as the service's type ids.

Result URLs are the gateway's own downloadResult URLs: the service's file URLs are for data
exchange only (doc) and may expire, so they never leave the gateway.
"""

from __future__ import annotations

import datetime
import functools
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gateway.plugin_api import FieldError, invalid_input
from gateway_pictofit.client import JSON, Kind, TypeEntry
from gateway_pictofit.config import Assumptions
from gateway_pictofit.values import Configuration, Image, Product, Result

if TYPE_CHECKING:
    from gateway.plugin_api import GatewayServices, ResourceRecord

__all__ = [
    "ResultLink",
    "canonical",
    "configuration_value",
    "configuration_values",
    "epoch_to_iso",
    "find_result",
    "image_value",
    "now_iso",
    "product_value",
    "result_link",
    "type_id",
    "unified_state",
]

ResultLink = Callable[[str, str, bool], str]  # (configuration id, format, compressed) -> URL


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def epoch_to_iso(value: Any) -> str | None:
    """The doc's epoch float seconds as RFC 3339; None when absent or unreadable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return _iso(value)


# A configuration's modifiedAt is read on every listConfigurations until it changes; formatting
# it (timezone-aware datetime) cost more than the rest of the configuration's mapping.
@functools.lru_cache(maxsize=4096)
def _iso(value: float) -> str | None:
    try:
        moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds")


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical(resource_id: str) -> str:
    """A UUID in the service's form (lower case); other text unchanged."""
    if _CANONICAL_UUID.fullmatch(resource_id):
        return resource_id  # already in that form: parsing it is most of a listing's mapping
    try:
        return str(uuid.UUID(resource_id))
    except ValueError:
        return resource_id


def type_id(types: Sequence[TypeEntry], kind: Kind, name: str, location: str) -> Any:
    """The service's id of the type called `name` (exact match); 422 naming the caller's field
    and listing the valid names if there is none."""
    for entry_id, entry_name in types:
        if entry_name == name:
            return entry_id
    valid = sorted(entry_name for _, entry_name in types)
    what = "product type" if kind == "product" else "image type"
    raise invalid_input(
        f"{name!r} is not a PICTOFiT {what}",
        [FieldError(location, f"unknown {what} {name!r}; valid names: {', '.join(valid)}")],
        extra={"validNames": valid},
    )


def unified_state(raw: JSON, assumptions: Assumptions) -> str:
    state_id = raw.get("stateId")
    if isinstance(state_id, int) and not isinstance(state_id, bool):
        return assumptions.states.get(state_id, assumptions.unknown_state)
    return assumptions.unknown_state


def result_link(services: GatewayServices, product_id: str) -> ResultLink:
    template = services.url_template("downloadResult")  # once for every result of the answer

    def link(configuration_id: str, fmt: str, compressed: bool) -> str:
        url = template.fill(
            {"productId": product_id, "configurationId": configuration_id, "format": fmt}
        )
        return f"{url}?compressed={'true' if compressed else 'false'}"

    return link


def _results(raw: JSON, assumptions: Assumptions) -> list[JSON]:
    results = raw.get("results")
    if not isinstance(results, list):
        return []
    a = assumptions
    return [
        r
        for r in results
        if isinstance(r, dict)
        and isinstance(r.get(a.result_format_key), str)
        and isinstance(r.get(a.result_compressed_key), bool)
    ]


def find_result(raw: JSON, fmt: str, compressed: bool, assumptions: Assumptions) -> JSON | None:
    a = assumptions
    for result in _results(raw, a):
        if result[a.result_format_key] == fmt and result[a.result_compressed_key] is compressed:
            return result
    return None


def image_value(record: ResourceRecord) -> Image | None:
    """An image the gateway recorded, or None for a record without every field."""
    a = record.attributes
    try:
        return Image(
            record.id, a["kind"], a["name"], a["contentType"], a["width"], a["height"], a["bytes"]
        )
    except KeyError:
        return None


def _images(records: Sequence[ResourceRecord]) -> tuple[Image, ...]:
    return tuple(image for image in map(image_value, records) if image is not None)


def configuration_value(
    raw: JSON,
    *,
    configuration_id: str,
    product_id: str,
    assumptions: Assumptions,
    images: Sequence[ResourceRecord],
    link: ResultLink,
) -> Configuration:
    """One configuration as the contract has it; ids are the ones the caller used."""
    a = assumptions
    sku = raw.get("sku")
    name = raw.get("name")
    results = []
    for r in _results(raw, a):
        fmt, compressed, file_name = (
            r[a.result_format_key],
            r[a.result_compressed_key],
            r.get(a.result_file_name_key),
        )
        url = link(configuration_id, fmt, compressed)
        results.append(
            Result(fmt, compressed, url, file_name if isinstance(file_name, str) else None)
        )
    return Configuration(
        id=configuration_id,
        product_id=product_id,
        name=name if isinstance(name, str) else "",
        sku=sku if isinstance(sku, str) else None,
        state=unified_state(raw, a),
        images=_images(images) if images else (),
        results=tuple(results),
        updated_at=epoch_to_iso(raw.get("modifiedAt")),
    )


def configuration_values(
    raws: Iterable[JSON],
    *,
    product_id: str,
    records: Sequence[ResourceRecord],
    images: Mapping[str, Sequence[ResourceRecord]],
    assumptions: Assumptions,
    link: ResultLink,
) -> tuple[Configuration, ...]:
    """The service's configurations of a product, with the caller's ids and the known images."""
    ids = {canonical(r.id): r.id for r in records}
    values = []
    for raw in raws:
        raw_id = str(raw["id"])
        # An id the service answers in the canonical spelling needs no parsing (the usual case).
        configuration_id = ids.get(raw_id) or (
            ids.get(canonical(raw_id), raw_id) if ids else raw_id
        )
        values.append(
            configuration_value(
                raw,
                configuration_id=configuration_id,
                product_id=product_id,
                assumptions=assumptions,
                images=images.get(configuration_id, ()),
                link=link,
            )
        )
    return tuple(values)


def product_value(
    record: ResourceRecord, configurations: tuple[Configuration, ...], backend: str
) -> Product:
    a = record.attributes
    return Product(
        id=record.id,
        name=a.get("name", ""),
        type=a.get("type", ""),
        sku=a.get("sku"),
        backend=backend,
        # Records written before the store kept the creation time hold it as an attribute.
        created_at=a.get("createdAt") or record.created_at,
        configurations=configurations,
    )
