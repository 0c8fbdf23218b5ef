"""Artifi's error answers become the core's upstream problems, with Artifi's codes added: the
plugin writes no problem type, title or status of its own."""

from __future__ import annotations

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.plugin_api import (
    ProblemError,
    UpstreamCredentialsRejected,
    UpstreamResponse,
    UpstreamServerError,
    invalid_input,
)
from gateway_artifi.config import Assumptions
from gateway_artifi.envelope import Context, decode

CONTEXT = Context(
    tenant="tenant-x",
    operation="UploadUserPhotos",
    assumptions=Assumptions(),
    fields={"file": "/file"},
    scrub=lambda text: text,
)


def failure(body: bytes, status: int = 200) -> ProblemError:
    with pytest.raises(ProblemError) as caught:
        decode(UpstreamResponse(status, CIMultiDictProxy(CIMultiDict()), body), CONTEXT)
    return caught.value


def envelope(codes: str) -> bytes:
    return orjson.dumps({"Response": "Error", "Message": "no", "ErrorCode": codes})


def same_problem(found: ProblemError, core: ProblemError) -> bool:
    return (found.status, found.slug, found.title) == (core.status, core.slug, core.title)


def test_unreadable_answers_are_the_cores_upstream_error() -> None:
    """An answer that is no envelope is `UpstreamServerError`, naming the backend and status."""
    problem = failure(b"<html>maintenance</html>")
    assert isinstance(problem, UpstreamServerError)
    assert problem.upstream_status == 200
    assert problem.backend == "artifi"


@pytest.mark.parametrize(
    ("codes", "core"),
    [
        ("221", UpstreamCredentialsRejected("artifi", 200)),
        ("9999", UpstreamServerError("artifi", 200)),
        ("262", invalid_input("")),
    ],
)
def test_error_codes_map_to_the_cores_problems(codes: str, core: ProblemError) -> None:
    """Each kind of error code answers the core's problem for it, codes added as an extension."""
    problem = failure(envelope(codes))
    assert same_problem(problem, core)
    assert problem.extra["upstreamErrorCodes"] == [codes]


def test_a_bare_400_is_the_cores_upstream_error() -> None:
    """A ProblemDetails 400 naming no known field is the core's 502, its reason kept."""
    problem = failure(orjson.dumps({"title": "One or more errors occurred."}), 400)
    assert same_problem(problem, UpstreamServerError("artifi", 400))
    assert problem.detail is not None
    assert "One or more errors occurred." in problem.detail
