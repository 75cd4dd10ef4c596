"""ai2 and h2o keep the conversation on their side: through the server, an OpenAI client
that resends the whole history continues the provider's own conversation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from tests.contract.fake_ai2 import Ai2ContractFake
from tests.contract.fake_h2o import H2oContractFake
from tests.fakes._server import serve
from tests.server.conftest import run_app

from llmrelay.server import ServerConfig, create_app

FAKES = {"ai2": Ai2ContractFake, "h2o": H2oContractFake}


@pytest.fixture(params=sorted(FAKES))
def stateful(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any, str]]:
    """(provider name, its contract fake, the server's OpenAI base URL)."""
    fake = FAKES[request.param]()
    with serve(fake.app) as upstream:
        fake.ok()
        config = ServerConfig(client_kwargs=fake.prepare_client_kwargs(upstream))
        with run_app(create_app(config=config)) as url:
            yield request.param, fake, url + "/v1"


def test_the_next_turn_carries_the_providers_state(stateful: tuple[str, Any, str]) -> None:
    name, fake, base_url = stateful
    sdk = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
    history: list[Any] = [{"role": "user", "content": "Hello"}]
    first = sdk.chat.completions.create(model=name, messages=history)
    answer = first.choices[0].message.content
    assert answer == fake.expected_text
    assert fake.state_seen() is None  # a new conversation
    history += [{"role": "assistant", "content": answer}, {"role": "user", "content": "More"}]
    stream = sdk.chat.completions.create(model=name, messages=history, stream=True)
    second = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert second == fake.expected_text
    assert fake.state_seen() is not None  # continued on the provider's side
    # a history the server never answered starts afresh
    sdk.chat.completions.create(
        model=name,
        messages=[
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "forged"},
            {"role": "user", "content": "More"},
        ],
    )
    assert fake.state_seen() is None
    assert fake.wait_closed(5)
