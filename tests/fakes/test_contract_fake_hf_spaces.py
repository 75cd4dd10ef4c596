"""The hf_spaces ContractFake does what each script promises (plain httpx, no llmrelay)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.contract.fake_hf_spaces import SpaceContractFake
from tests.fakes._server import serve


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SpaceContractFake, str]]:
    fake = SpaceContractFake()
    with serve(fake.app) as url:
        yield fake, url


def join(url: str, session: str) -> httpx.Response:
    body = {"data": ["Hi", [], "s"], "event_data": None, "fn_index": 0, "trigger_id": 11,
            "session_hash": session}  # fmt: skip
    return httpx.post(f"{url}/gradio_api/queue/join?", json=body)


def test_http_error_with_retry_after(served: tuple[SpaceContractFake, str]) -> None:
    fake, url = served
    fake.http_error(429, retry_after=7)
    response = join(url, "a")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    fake.http_error(500)
    assert "retry-after" not in join(url, "b").headers


def test_heartbeats_only_never_answers(served: tuple[SpaceContractFake, str]) -> None:
    fake, url = served
    fake.heartbeats_only(0.02)
    assert join(url, "c").status_code == 200
    messages = []
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": "c"}) as r:
        for line in r.iter_lines():
            if line:
                messages.append(line)
            if len(messages) == 5:
                break
    assert all(m == 'data: {"msg":"heartbeat","event_id":null}' for m in messages)
    assert fake.wait_closed(5)


def test_slow_first_byte(served: tuple[SpaceContractFake, str]) -> None:
    fake, url = served
    fake.slow_first_byte(0.3)
    assert join(url, "d").status_code == 200
    start = time.monotonic()
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": "d"}) as r:
        next(r.iter_lines())
    assert time.monotonic() - start >= 0.3
    assert fake.state_seen() is None
    assert fake.prepare_client_kwargs(url)["base_urls"] == {"hf_spaces": url}
