"""``data: [DONE]`` goes out only once the turn's provider state is remembered.

A client sends its next turn as soon as it reads ``[DONE]``; that turn must find the
state the streamed answer left (the server stores it before it ends the stream), even
when the state store is slow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx
from tests.server import scripted
from tests.server.conftest import run_app

from llmrelay.server import ServerConfig, create_app
from llmrelay.server._memory import MemoryStateStore


class _SlowStore(MemoryStateStore):
    async def put(self, key: str, states: Mapping[str, Any]) -> None:
        await asyncio.sleep(0.5)
        await super().put(key, states)


def test_the_next_turn_sent_on_done_finds_the_state(base_config: ServerConfig) -> None:
    store = _SlowStore()
    app = create_app(config=replace(base_config), store=store)
    with run_app(app) as url:
        history: list[dict[str, Any]] = [{"role": "user", "content": "Hello"}]
        answer = ""
        with httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            json={"model": "stateful:m", "messages": history, "stream": True},
            timeout=10,
        ) as response:
            for line in response.iter_lines():
                if line == "data: [DONE]":
                    break
                if line.startswith("data: {"):
                    delta = httpx.Response(200, content=line[6:]).json()["choices"]
                    answer += (delta[0]["delta"].get("content") or "") if delta else ""
        history += [{"role": "assistant", "content": answer}, {"role": "user", "content": "More"}]
        reply = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "stateful:m", "messages": history},
            timeout=10,
        )
        assert reply.status_code == 200
    assert len(store) == 2  # the store given is the one used (an empty one too)
    first, second = scripted.LOG["stateful"].requests
    assert first.state is None
    assert second.state is not None  # the conversation continued on the provider's side
    assert second.state.data["turn"] == 1
