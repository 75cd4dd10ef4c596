"""What a hostile Gradio server can send hf_spaces (issue 5 §6): every failure is typed.

Provider-direct (no engine in between): whatever the Space sends, ``stream`` ends in a
``FinishReason`` or raises an ``LLMRelayError`` subclass — never AttributeError,
IndexError, OverflowError or RecursionError; nothing is read unbounded; ``api_prefix``
cannot move requests (or the token) to another host; a complete answer stays complete
when the connection is cut afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmrelay import FinishReason, LLMRelayError, Message, ProtocolError
from llmrelay.providers.hf_spaces import HFSpaces
from llmrelay.types import ChatRequest
from tests.fakes._server import serve
from tests.fakes.gradio_space import FakeSpace, SpaceScript, build_config

pytestmark = pytest.mark.anyio
Space = tuple[FakeSpace, str]
MODEL = HFSpaces.resolve_model("qwen-2-72b")
BIG = 5 * 1024 * 1024  # over the few-MiB bounds


async def run(url: str, api_key: str | None = None) -> list[Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        provider = HFSpaces(http, endpoints={"base_url": url}, api_key=api_key)
        request = ChatRequest((Message("user", "Hi"),), model=MODEL)
        return [event async for event in provider.stream(request)]


def config_with(**changes: Any) -> dict[str, Any]:
    config = build_config("5")
    config.update(changes)
    return config


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("body", ["[]", "null", "3", '"text"', "[1, 2]"])
async def test_config_that_is_not_an_object(space: Space, body: str) -> None:
    fake, url = space
    fake.script = SpaceScript(config_body=body)
    with pytest.raises(ProtocolError, match="/config"):
        await run(url)


@pytest.mark.parametrize(
    "dependency_change",
    [{"targets": [[]]}, {"targets": [["x", "submit"]]}, {"id": "zero"}, {"id": -1}],
)
async def test_config_with_broken_dependency(space: Space, dependency_change: Any) -> None:
    fake, url = space
    config = config_with()
    config["dependencies"][0].update(dependency_change)
    fake.script = SpaceScript(config_body=config)
    with pytest.raises(ProtocolError, match="/config"):
        await run(url)
    assert fake.joins == []


@pytest.mark.parametrize("number", ["1e999", "-1e999", str(10**100)])
@pytest.mark.parametrize("where", ["id", "trigger"])
async def test_config_numbers_too_large(space: Space, number: str, where: str) -> None:
    fake, url = space
    config = config_with()
    if where == "id":
        config["dependencies"][0]["id"] = "BIG"
    else:
        config["dependencies"][0]["targets"] = [["BIG", "submit"]]
    fake.script = SpaceScript(config_body=json.dumps(config).replace('"BIG"', number))
    with pytest.raises(ProtocolError, match="/config"):
        await run(url)
    assert fake.joins == []


async def test_config_nested_too_deep(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(config_body='{"dependencies": ' + deep(100_000) + "}")
    with pytest.raises(ProtocolError, match="nested too deeply"):
        await run(url)


@pytest.mark.parametrize("gzipped", [False, True])
async def test_config_too_large(space: Space, gzipped: bool) -> None:
    fake, url = space
    config = config_with(title="x" * BIG)
    fake.script = SpaceScript(config_body=config, config_gzip=gzipped)
    with pytest.raises(ProtocolError, match=r"too large|larger than"):
        await run(url)
    assert fake.joins == []


GENERATING = (
    '{"msg":"process_generating","event_id":"EVENT_ID","success":true,'
    '"output":{"data":["",[{"role":"user","content":"Hi"},'
    '{"role":"assistant","content":"A"}],"s"]}}'
)


def diff_message(edits: str) -> str:
    return (
        '{"msg":"process_generating","event_id":"EVENT_ID","success":true,'
        f'"output":{{"data":[[],{edits},[]]}}}}'
    )


@pytest.mark.parametrize(
    "edits",
    [
        f'[["add",[{10**100}],{{"role":"assistant","content":"B"}}]]',
        '[["add",[1e999],{"role":"assistant","content":"B"}]]',
        f'[["append",[1,"content",{10**100}],"B"]]',
        '[["delete",[-1e999],null]]',
        f'[["replace",[{10**100},"content"],"B"]]',
        '[["append",[1,"content"],1e999]]',
        '[["add",[true],{"role":"assistant","content":"B"}]]',
    ],
)
async def test_hostile_diffs(space: Space, edits: str) -> None:
    fake, url = space
    fake.script = SpaceScript(raw_messages=[GENERATING, diff_message(edits)])
    with pytest.raises(ProtocolError):
        await run(url)


@pytest.mark.parametrize(
    "message",
    [
        '{"msg":"process_generating","event_id":"EVENT_ID","output":{"data":' + deep(5000) + "}}",
        '{"msg":"process_completed","event_id":"EVENT_ID","success":true,"output":'
        '{"data":' + deep(5000) + "}}",
        "[]",
        "null",
        "1e999",
        '{"msg":"process_completed","event_id":"EVENT_ID","success":true,"output":[]}',
        '{"msg":"process_completed","event_id":"EVENT_ID","success":false,"output":'
        + deep(900)
        + "}",
        '{"msg":"process_generating","event_id":"EVENT_ID","output":{"data":[1e999,1e999,1]}}',
        '{"msg":"process_completed","event_id":"EVENT_ID","success":true,'
        '"output":{"data":["",[[1e999,{"x":1}]],""]}}',
    ],
)
async def test_hostile_queue_messages(space: Space, message: str) -> None:
    """Each ends typed: a ProtocolError, the Space's error, or (a reply of no text) a finish."""
    fake, url = space
    fake.script = SpaceScript(raw_messages=[message])
    try:
        events = await run(url)
    except LLMRelayError:
        return
    assert events == [FinishReason("stop")]


async def test_sse_line_too_long(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(raw_messages=['{"msg":"log","log":"' + "x" * BIG + '"}'])
    with pytest.raises(ProtocolError, match=r"longer than|too long|bound"):
        await run(url)


async def test_error_body_too_large(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(join_status=500, join_body="x" * BIG)
    with pytest.raises(ProtocolError, match="error body"):
        await run(url)


async def test_answer_complete_before_the_cut_is_not_a_failure(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(cut_after_completed=True)
    events = await run(url)
    assert events[-1] == FinishReason("stop")
    assert sum(isinstance(e, FinishReason) for e in events) == 1
    assert "".join(e for e in events if isinstance(e, str)).startswith("Hello, world world!")


@pytest.fixture(scope="module")
def evil() -> Iterator[tuple[FakeSpace, str]]:
    fake = FakeSpace()
    with serve(fake.app) as url:
        yield fake, url


@pytest.mark.parametrize(
    "prefix",
    [
        "@EVIL",
        "@EVIL/gradio_api",
        "//EVIL",
        "http://EVIL",
        "/gradio_api/../..",
        "/..",
        "/gradio_api?x=1",
        "/gradio_api#frag",
        "gradio_api",
        "/gradio api",
        "/a\\b",
        "/%2e%2e",
        "\n/gradio_api",
    ],
)
async def test_api_prefix_cannot_leave_the_space(
    space: Space, evil: tuple[FakeSpace, str], prefix: str
) -> None:
    fake, url = space
    evil_fake, evil_url = evil
    evil_fake.requests.clear()
    hostport = evil_url.removeprefix("http://")
    fake.script = SpaceScript(config_body=config_with(api_prefix=prefix.replace("EVIL", hostport)))
    with pytest.raises(ProtocolError, match="api_prefix"):
        await run(url, api_key="hf_secret")
    assert evil_fake.requests == []
    assert fake.joins == []
