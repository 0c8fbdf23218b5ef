"""The envelope decoder on its own: each documented quirk, and what it refuses to guess."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.plugin_api import GatewayLogs, ProblemError, UpstreamResponse
from gateway_artifi.config import Assumptions
from gateway_artifi.envelope import ArtifiProblem, Context, decode

SECRET = "envelope-test-key-Jh27"
CONTEXT = Context(
    tenant="tenant-x",
    operation="UploadUserPhotos",
    assumptions=Assumptions(),
    fields={"frontappuserid": "userId", "dpi": "/dpi", "postedfile": "/file"},
    scrub=lambda text: text.replace(SECRET, "[REDACTED]"),
)


def answer(body: Any, status: int = 200) -> UpstreamResponse:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return UpstreamResponse(status, CIMultiDictProxy(CIMultiDict()), raw)


def failure(body: Any, status: int = 200) -> ProblemError:
    with pytest.raises(ProblemError) as caught:
        decode(answer(body, status), CONTEXT)
    return caught.value


def test_success_data_with_keys_folded() -> None:
    """Success answers its Data with keys lower-cased at every depth."""
    body = {"Response": "Success", "Data": {"Id": 7, "Dimension": {"Width": 3}}, "ErrorCode": None}
    assert decode(answer(body), CONTEXT) == {"id": 7, "dimension": {"width": 3}}


def test_lowercase_envelope_and_data_as_json_string() -> None:
    """Lower-case envelope keys and Data given as JSON text read like the plain form."""
    body = {"response": "success", "data": orjson.dumps({"AssetCount": 0}).decode()}
    assert decode(answer(body), CONTEXT) == {"assetcount": 0}
    assert decode(answer({"Response": "Success", "Data": "true"}), CONTEXT) is True
    assert decode(answer({"Response": "Success", "Data": "plain text"}), CONTEXT) == "plain text"


@pytest.mark.parametrize(
    ("raw", "codes"),
    [("221,234", ["221", "234"]), (" 221 ; 234 ", ["221", "234"]), (226, ["226"])],
)
def test_error_codes_in_any_shape(raw: Any, codes: list[str]) -> None:
    """ErrorCode as a list in a string, with odd separators, or a number, reads as codes."""
    problem = failure({"Response": "Error", "Message": None, "ErrorCode": raw})
    assert isinstance(problem, ArtifiProblem)
    assert list(problem.codes) == codes
    assert problem.slug == "upstream-credentials-rejected"


def test_validation_code_names_the_callers_field_and_scrubs_the_message() -> None:
    """262 names /file; the upstream message is kept, minus anything secret or a URL query."""
    message = f"bad file, see http://artifi/x?webApiClientKey={SECRET}&a=1 ({SECRET})"
    problem = failure({"Response": "Error", "Message": message, "ErrorCode": "262"})
    assert (problem.status, problem.slug) == (422, "validation-failed")
    assert [e.location for e in problem.errors] == ["/file"]
    assert problem.detail is not None
    assert SECRET not in problem.detail
    assert "bad file" in problem.detail


def test_credential_codes_log_the_tenant(gateway_logs: GatewayLogs) -> None:
    """A credential code logs artifi.credentials_rejected at error level naming the tenant."""
    failure({"Response": "Error", "Message": f"key {SECRET} unknown", "ErrorCode": "226"})
    [line] = gateway_logs.events("artifi.credentials_rejected")
    assert (line["level"], line["tenant"], line["codes"]) == ("error", "tenant-x", ["226"])
    assert SECRET not in gateway_logs.text()


def test_credential_code_wins_over_a_validation_code() -> None:
    """With several codes, the gateway's own configuration problem is reported first."""
    problem = failure({"Response": "Error", "ErrorCode": "261,226"})
    assert problem.status == 502
    assert problem.slug == "upstream-credentials-rejected"


def test_problem_details_400_maps_fields_to_codes() -> None:
    """A bare 400 ProblemDetails maps each known parameter to its code's problem."""
    body = {
        "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
        "title": "One or more validation errors occurred.",
        "status": 400,
        "errors": {"frontAppUserId": ["too long"], "DPI": ["Invalid DPI."]},
    }
    problem = failure(body, 400)
    assert isinstance(problem, ArtifiProblem)
    assert problem.codes == ("261", "265")
    assert [(e.location, e.message) for e in problem.errors] == [
        ("userId", "too long (error 261)"),
        ("/dpi", "Invalid DPI. (error 265)"),
    ]


def test_envelope_with_http_400_is_read_as_an_envelope() -> None:
    """An Error envelope sent with HTTP 400 maps by its ErrorCode like any other."""
    problem = failure({"Response": "Error", "Message": "bad dpi", "ErrorCode": "265"}, 400)
    assert [e.location for e in problem.errors] == ["/dpi"]


@pytest.mark.parametrize(
    "body",
    [
        {"title": "Missing something", "errors": {"someHeader": ["?"]}},
        b"<html>Bad Request</html>",
    ],
)
def test_unrecognised_400_is_502(body: Any) -> None:
    """A 400 that names nothing the caller sent is the gateway's request refused: 502."""
    problem = failure(body, 400)
    assert (problem.status, problem.slug) == (502, "upstream-error")


@pytest.mark.parametrize(
    "body",
    [b"not json", [1, 2], {"Response": "Maybe", "Data": None}, {"Data": {"Id": 1}}],
)
def test_not_an_envelope_is_502(body: Any) -> None:
    """Anything but a Success or Error envelope is an invalid answer: 502."""
    problem = failure(body)
    assert (problem.status, problem.slug) == (502, "upstream-error")
