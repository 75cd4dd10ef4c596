"""Print the Responses and Messages shapes through ``llmrelay serve`` (issue 18).

    PYTHONPATH=src:. python scripts/shapes_transcript.py

What it does, all on loopback (no network):

1. serves two fakes on ``127.0.0.1``: the OpenAI-compatible fake
   (``tests/fakes/openai_server.py``, replaying OpenAI's own recorded tool-call stream from
   ``tests/corpus/openai/``, provenance there) and the olmo-api fake (``tests/fakes/ai2.py``,
   Ai2 Playground's threads API, which records each request's ``parent`` message);
2. writes a config with ``[providers.local] kind = "openai"`` and ``[providers.ai2]
   base_url`` pointing at them and runs ``llmrelay serve --config … --port …`` as a child
   process;
3. (a) with the ``openai`` SDK: ``responses.stream`` with a function tool — the event
   types in order and the ``function_call`` item;
   (b) with the ``anthropic`` SDK: ``messages.stream`` — the text, ``stop_reason`` and usage;
   (c) with the ``openai`` SDK: two Responses turns on Ai2, the second with
   ``previous_response_id`` — and the ``parent`` message id the Ai2 fake received.

The transcript is printed; the script exits non-zero if the server fails to start or an
answer differs from what the fakes were scripted to send.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

import anthropic
import openai
from tests.corpus.tool_streams import recorded
from tests.fakes._server import serve
from tests.fakes.ai2 import DEFAULT_CHUNKS, FakeAi2
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript

from _serve_child import serve_child

MODEL = "local:fake-model"

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "GetWeatherArgs",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "country": {"type": "string"},
            "units": {"type": "string", "enum": ["c", "f"], "default": "c"},
        },
        "required": ["city", "country", "units"],
        "additionalProperties": False,
    },
    "strict": True,
}
"""A Responses function tool matching OpenAI's recorded pydantic-tool stream."""


def collapse(kinds: list[str]) -> list[str]:
    """Runs of equal event types as ``type xN``."""
    out = []
    for kind, run in itertools.groupby(kinds):
        count = len(list(run))
        out.append(kind if count == 1 else f"{kind} x{count}")
    return out


def responses_tool_stream(sdk: openai.OpenAI, fake: FakeOpenAI) -> None:
    """(a) ``responses.stream`` with a tool; the upstream replays a recorded tool call."""
    print("== (a) openai SDK responses.stream with a tool (POST /v1/responses) ==")
    fake.script.raw = recorded("oai-stream-pydantic-tool.sse")
    question = "What's the weather like in Edinburgh?"
    print(f"user: {question}   (tools: [{WEATHER_TOOL['name']}])")
    with sdk.responses.stream(model=MODEL, input=question, tools=[WEATHER_TOOL]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    print("events:")
    for line in collapse(kinds):
        print(f"  {line}")
    (item,) = final.output
    assert item.type == "function_call"
    print(f"function_call item: call_id={item.call_id} name={item.name}")
    print(f"  arguments={item.arguments}")
    usage = final.usage
    print(
        f"status={final.status} usage: input_tokens={usage.input_tokens if usage else None} "
        f"output_tokens={usage.output_tokens if usage else None}"
    )
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    assert item.name == "GetWeatherArgs"
    assert item.arguments == '{"city":"Edinburgh","country":"UK","units":"c"}'
    sent = fake.requests[-1].json
    print(f"upstream received tools: {[t['function']['name'] for t in sent['tools']]}")
    fake.script.raw = None


def messages_stream(base_url: str, fake: FakeOpenAI) -> None:
    """(b) the ``anthropic`` SDK's ``messages.stream`` against ``POST /v1/messages``."""
    print("== (b) anthropic SDK messages.stream (POST /v1/messages) ==")
    fake.script.chunks = ["Bonjour", ", ", "le ", "monde", "!"]
    claude = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0, timeout=20)
    print("user: Say hello in French.")
    with claude.messages.stream(
        model=MODEL,
        max_tokens=64,
        messages=[{"role": "user", "content": "Say hello in French."}],
    ) as stream:
        pieces = list(stream.text_stream)
        message = stream.get_final_message()
    print(f"text_stream: {pieces}")
    print(f"text: {''.join(pieces)}")
    print(
        f"stop_reason={message.stop_reason} usage: input_tokens={message.usage.input_tokens} "
        f"output_tokens={message.usage.output_tokens}"
    )
    assert "".join(pieces) == "Bonjour, le monde!"
    assert message.stop_reason == "end_turn"


def ai2_continuation(sdk: openai.OpenAI, fake: FakeAi2) -> None:
    """(c) ``previous_response_id`` reaching Ai2 as the ``parent`` of the new message."""
    print("== (c) previous_response_id on Ai2 (olmo-api fake: POST /v4/threads/) ==")
    first = sdk.responses.create(model="ai2", input="Hello")
    turn1 = fake.received[-1]
    print(f"turn 1: responses.create(input='Hello') -> id={first.id}")
    print(f"  output_text={first.output_text!r}")
    print(
        f"  Ai2 received: content={turn1.field('content')!r} parent={turn1.parent}"
        f" -> reply message {turn1.reply_id}"
    )
    second = sdk.responses.create(model="ai2", input="More", previous_response_id=first.id)
    turn2 = fake.received[-1]
    print(f"turn 2: responses.create(input='More', previous_response_id={first.id})")
    print(f"  -> id={second.id} output_text={second.output_text!r}")
    print(f"  Ai2 received: content={turn2.field('content')!r} parent={turn2.parent}")
    same = turn2.parent == turn1.reply_id
    print(f"  parent == turn 1's Ai2 message id: {same}")
    assert first.output_text == "".join(DEFAULT_CHUNKS)
    assert turn1.parent is None
    assert turn1.reply_id is not None
    assert same
    assert turn2.field("content") == "More"
    assert len(fake.received) == 2


def main() -> int:
    """Run the fakes, the server and the three transcripts; return the exit status."""
    openai_fake = FakeOpenAI(OpenAIScript(models=["fake-model"]))
    ai2_fake = FakeAi2()
    with (
        serve(openai_fake.app) as upstream,
        serve(ai2_fake.app) as ai2_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        config = Path(tmp) / "config.toml"
        config.write_text(
            f'[providers.local]\nkind = "openai"\nbase_url = "{upstream}/v1"\n'
            'models = ["fake-model"]\n\n'
            f'[providers.ai2]\nbase_url = "{ai2_url}"\n'
        )
        with serve_child(config, f"local = {upstream}/v1, ai2 = {ai2_url}") as url:
            sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=20)
            responses_tool_stream(sdk, openai_fake)
            messages_stream(url, openai_fake)
            ai2_continuation(sdk, ai2_fake)
    return 0


if __name__ == "__main__":
    sys.exit(main())
