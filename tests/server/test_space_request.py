"""Issue 17 §1-2 through the server, with the official ``openai`` SDK as the client:
what the (fake, real-layout) Qwen Space received for a system/developer message and an
earlier turn."""

from __future__ import annotations

import pytest
from tests.fakes.gradio_space import FakeSpace

openai = pytest.importorskip("openai")


@pytest.mark.parametrize("role", ["system", "developer"])
@pytest.mark.parametrize("stream", [False, True])
def test_the_space_receives_the_system_prompt_and_the_history(
    space: FakeSpace, base_url: str, role: str, stream: bool
) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    messages = [
        {"role": role, "content": "Answer in one line."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer one"},
        {"role": "user", "content": "second"},
    ]
    if stream:
        chunks = client.chat.completions.create(
            model="hf_spaces:qwen-2-72b", messages=messages, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        response = client.chat.completions.create(model="hf_spaces:qwen-2-72b", messages=messages)
        text = response.choices[0].message.content or ""
    assert text.startswith("Hello")
    (join,) = space.joins
    # model_chat's [textbox, chatbot, system_state]: the last message, the earlier turn in
    # the chatbot (Gradio 5 messages), the system prompt in the hidden state box
    assert join.json["data"] == [
        "second",
        [{"role": "user", "content": "first"}, {"role": "assistant", "content": "answer one"}],
        "Answer in one line.",
    ]
