"""Is the fake h2o's relayed TGI stream faithful?  huggingface_hub's own TGI stream parser
(``InferenceClient.text_generation(stream=True)``) consumes it, over plain httpx for the
chat-ui session steps (no llmrelay code)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes._server import serve
from tests.fakes.h2o import DEFAULT_TOKENS, MODELS, FakeH2o, H2oScript

hub = pytest.importorskip("huggingface_hub")


@pytest.fixture
def conversation() -> Iterator[tuple[FakeH2o, Any]]:
    """A fake with an open conversation and an ``InferenceClient`` pointed at it."""
    fake = FakeH2o()
    with serve(fake.app) as url, httpx.Client(base_url=url) as http:
        cookie = http.get("/").headers["set-cookie"].split(";")[0]
        settings = {"ethicsModalAccepted": "true", "activeModel": MODELS[0]}
        assert http.post("/settings", data=settings, headers={"cookie": cookie}).status_code == 303
        created = http.post("/conversation", json={"model": MODELS[0]}, headers={"cookie": cookie})
        cid = created.json()["conversationId"]
        yield (
            fake,
            hub.InferenceClient(model=f"{url}/conversation/{cid}", headers={"cookie": cookie}),
        )


@pytest.mark.parametrize("space_after_data", [False, True])
def test_hub_client_reads_the_stream(
    conversation: tuple[FakeH2o, Any], space_after_data: bool
) -> None:
    fake, client = conversation
    fake.script = H2oScript(details=True, space_after_data=space_after_data)
    out = list(client.text_generation("hi", stream=True, details=True, max_new_tokens=20))
    assert [o.token.text for o in out if not o.token.special] == list(DEFAULT_TOKENS)
    assert out[-1].token.special is True
    assert out[-1].generated_text == "".join(DEFAULT_TOKENS)
    assert out[-1].details.finish_reason == "eos_token"
    assert all(o.generated_text is None for o in out[:-1])


@pytest.mark.parametrize(
    ("error_type", "exception"),
    [
        ("overloaded", "OverloadedError"),
        ("validation", "ValidationError"),
        ("generation", "GenerationError"),
    ],
)
def test_hub_client_maps_the_error_events(
    conversation: tuple[FakeH2o, Any], error_type: str, exception: str
) -> None:
    fake, client = conversation
    fake.script = H2oScript(mode="error_payload", error_type=error_type, error_message="scripted")
    with pytest.raises(Exception) as info:  # noqa: PT011 - the hub's class is checked by name
        list(client.text_generation("hi", stream=True, details=True))
    assert type(info.value).__name__ == exception
    assert "scripted" in str(info.value)
