"""Property-based tests of the OpenAPI schema (schemathesis strategies driven by
hypothesis): no 500 on generated input, and every error in OpenAI's shape. Bounded (a
few dozen examples per operation) to stay fast.

schemathesis' own pytest plugin does not run under this pytest, so each operation's
strategy is drawn from with ``hypothesis.given``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

OPERATIONS = [
    ("/v1/chat/completions", "POST"),
    ("/v1/images/generations", "POST"),
    ("/v1/models", "GET"),
    ("/v1/models/{model_id}", "GET"),
    ("/health", "GET"),
]


@pytest.fixture(scope="module")
def api_schema(server_url: str) -> Any:
    return schemathesis.openapi.from_url(server_url + "/openapi.json")


def test_schema_lists_the_openai_routes(server_url: str) -> None:
    paths = httpx.get(server_url + "/openapi.json").json()["paths"]
    assert {path for path, _ in OPERATIONS} <= set(paths)


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_no_500_and_errors_in_openai_shape(
    api_schema: Any, server_url: str, path: str, method: str
) -> None:
    operation = api_schema[path][method]
    statuses: list[int] = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: Any) -> None:
        response = case.call(base_url=server_url, timeout=20)
        statuses.append(response.status_code)
        assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
        if response.status_code >= 400:
            error = response.json()["error"]
            assert set(error) >= {"message", "type", "param", "code"}
            assert isinstance(error["message"], str)
            assert error["message"]

    check()
    assert statuses


@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_garbage_bodies_get_openai_errors(server_url: str, body: bytes) -> None:
    response = httpx.post(
        server_url + "/v1/chat/completions",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=20,
    )
    assert response.status_code in (400, 413), response.text
    assert set(response.json()["error"]) >= {"message", "type", "param", "code"}
