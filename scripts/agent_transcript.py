"""Print an agent transcript through ``llmrelay serve``: a tool round trip and structured output.

    PYTHONPATH=src:. python scripts/agent_transcript.py

What it does, all on loopback (no network):

1. serves the OpenAI-compatible fake (``tests/fakes/openai_server.py``) on ``127.0.0.1``;
   it replays OpenAI's own recorded streams (``tests/corpus/openai/``, provenance there);
2. writes a config with ``[providers.local] kind = "openai"`` pointing at the fake and
   runs ``llmrelay serve --config … --port …`` as a child process;
3. (a) with the ``openai`` SDK: a request with a tool, the model's tool call, the
   ``role: "tool"`` result sent back, the final answer — and what the upstream received;
   (b) with LangChain: ``ChatOpenAI(...).with_structured_output(Location)`` and the
   ``response_format`` the upstream received.

The transcript is printed; the script exits non-zero if the server fails to start or an
answer differs from what the recorded streams hold.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

import openai
from langchain_openai import ChatOpenAI
from pydantic import BaseModel
from tests.corpus.tool_streams import recorded
from tests.fakes._server import serve
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript

from _serve_child import serve_child

MODEL = "local:fake-model"


class GetWeatherArgs(BaseModel):
    """The tool of OpenAI's recorded pydantic-tool stream."""

    city: str
    country: str
    units: Literal["c", "f"] = "c"


class Location(BaseModel):
    """The structured output of OpenAI's recorded structured stream."""

    city: str
    temperature: float
    units: Literal["c", "f"]


def short(value: Any) -> str:
    """Compact JSON for the transcript."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tool_round_trip(sdk: openai.OpenAI, fake: FakeOpenAI) -> None:
    """(a) call -> ``role: "tool"`` result -> final answer, with the openai SDK."""
    print("== (a) openai SDK tool round trip ==")
    fake.script.raw = recorded("oai-stream-pydantic-tool.sse")
    tools = [openai.pydantic_function_tool(GetWeatherArgs)]
    messages: list[Any] = [{"role": "user", "content": "What's the weather like in Edinburgh?"}]
    print(f"user: {messages[0]['content']}   (tools: {[t['function']['name'] for t in tools]})")
    first = sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, tools=tools
    )
    completion = first.parse()
    choice = completion.choices[0]
    (call,) = choice.message.tool_calls or []
    print(f"assistant: finish_reason={choice.finish_reason} content={choice.message.content}")
    print(f"  tool_call {call.id} {call.function.name}({call.function.arguments})")
    usage = completion.usage
    print(
        f"  usage: {usage.prompt_tokens if usage else None}+"
        f"{usage.completion_tokens if usage else None} tokens, "
        f"x-llmrelay-usage: {first.headers.get('x-llmrelay-usage', '(reported)')}"
    )
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "12°C, light rain"})
    print(f"tool ({call.id}): 12°C, light rain")
    fake.script.raw = None
    fake.script.chunks = ["It is 12°C", " with light rain in Edinburgh."]
    final = sdk.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    answer = final.choices[0]
    print(f"assistant: {answer.message.content}  (finish_reason={answer.finish_reason})")
    sent = fake.requests[-1].json
    print(f"upstream received on turn 2 (tools: {[t['function']['name'] for t in sent['tools']]}):")
    for message in sent["messages"]:
        print(f"  {short(message)}")
    assert final.choices[0].message.content == "It is 12°C with light rain in Edinburgh."
    assert sent["messages"][2]["tool_call_id"] == call.id


def structured_output(base_url: str, fake: FakeOpenAI) -> None:
    """(b) LangChain ``with_structured_output`` with a pydantic model."""
    print("== (b) LangChain with_structured_output(Location) ==")
    fake.script.raw = recorded("oai-stream-structured.sse")
    model = ChatOpenAI(model=MODEL, base_url=base_url, api_key="unused", max_retries=0, timeout=20)
    question = "What's the weather like in SF?"
    print(f"user: {question}")
    result = model.with_structured_output(Location).invoke(question)
    print(f"result: {result!r}")
    sent = fake.requests[-1].json["response_format"]
    schema = sent["json_schema"]
    print(
        f"upstream received response_format: type={sent['type']} name={schema['name']} "
        f"strict={schema.get('strict')} properties={sorted(schema['schema']['properties'])}"
    )
    assert result == Location(city="San Francisco", temperature=61, units="f")


def main() -> int:
    """Run the fake, the server and both transcripts; return the exit status."""
    fake = FakeOpenAI(OpenAIScript(models=["fake-model"]))
    with serve(fake.app) as upstream, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(
            f'[providers.local]\nkind = "openai"\nbase_url = "{upstream}/v1"\n'
            'models = ["fake-model"]\n'
        )
        with serve_child(config, f"local = {upstream}/v1") as url:
            sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=20)
            tool_round_trip(sdk, fake)
            structured_output(f"{url}/v1", fake)
    return 0


if __name__ == "__main__":
    sys.exit(main())
