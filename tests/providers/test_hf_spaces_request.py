"""Issue 17 §1-2, issue 20's Gradio 6 part, issue 24's hf_spaces items, over the fake Space.

What the Space *received* (the fake records each join) for the system prompt and the
history; what llmrelay makes of what the Space sends: the reply only from the chat
function's own output and only for this request's ``event_id``, never an empty success,
ZeroGPU failures typed, ``estimation`` messages as ``Queued`` events, ``/config`` and
``/info`` errors typed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from llmrelay import (
    AsyncClient,
    FinishReason,
    InvalidRequestError,
    Message,
    ModelNotFoundError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    Queued,
    RateLimitError,
    Timeouts,
    event_to_dict,
)
from llmrelay.providers.hf_spaces import HFSpaces
from llmrelay.types import ChatRequest
from tests.fakes.gradio_space import (
    CHATBOT,
    CI_API_FN,
    CI_SYSTEM_DEFAULT,
    SYSTEM_STATE,
    TEXTBOX,
    FakeSpace,
    SpaceScript,
    build_config,
)

pytestmark = pytest.mark.anyio
Space = tuple[FakeSpace, str]
QWEN = "Qwen/Qwen2-72B-Instruct"
ONE_LINE = "Answer in one line."


async def provider_events(url: str, messages: Any, model: str = QWEN, **fields: Any) -> list[Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        provider = HFSpaces(http, endpoints={"base_url": url})
        request = ChatRequest(tuple(messages), model=model, **fields)
        return [event async for event in provider.stream(request)]


def text(events: list[Any]) -> str:
    return "".join(e for e in events if isinstance(e, str))


# -- §1 the system prompt -------------------------------------------------------------


@pytest.mark.parametrize("version", ["4", "5", "6"])
@pytest.mark.parametrize("role", ["system", "developer"])
async def test_system_prompt_reaches_the_hidden_state_box(
    space: Space, version: str, role: str
) -> None:
    fake, url = space
    fake.script = SpaceScript(version=version)  # type: ignore[arg-type]
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:
        await client.complete(
            [{"role": role, "content": ONE_LINE}, {"role": "user", "content": "hi"}],
            model="hf_spaces:qwen-2-72b",
        )
    (join,) = fake.joins
    # model_chat's inputs are [textbox, chatbot, system_state]: the given prompt goes to
    # the hidden box, never the Space's default "You are a helpful assistant."
    assert join.json["fn_index"] == 0
    assert join.json["data"] == ["hi", [], ONE_LINE]


def no_system_config(version: str = "5", hidden_box: bool = False) -> dict[str, Any]:
    """The Qwen layout without a system input (or with a hidden unlabelled textbox that
    no "System" box mirrors: an app's internal state, not a system prompt)."""
    config = build_config(version)
    inputs = [TEXTBOX, CHATBOT, SYSTEM_STATE] if hidden_box else [TEXTBOX, CHATBOT]
    for dep in config["dependencies"][:2]:
        dep["inputs"] = inputs
        dep["outputs"] = [TEXTBOX, CHATBOT]
    config["dependencies"] = config["dependencies"][:3]  # no "Set system prompt" button
    return config


def answer_messages(reply: str = "fine", history: list[Any] | None = None) -> list[str]:
    chatbot = [*(history or []), {"role": "user", "content": "hi"},
               {"role": "assistant", "content": reply}]  # fmt: skip
    output = {"data": ["", chatbot], "is_generating": False}
    done = {"msg": "process_completed", "event_id": "EVENT_ID", "output": output, "success": True}
    return [json.dumps(done)]


@pytest.mark.parametrize("hidden_box", [False, True])
async def test_a_space_without_system_input_warns_naming_it(
    space: Space, hidden_box: bool, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = space
    fake.script = SpaceScript(config_body=no_system_config(hidden_box=hidden_box),
                              raw_messages=answer_messages())  # fmt: skip
    messages = [Message("system", ONE_LINE), Message("user", "hi")]
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        events = await provider_events(url, messages, model="someone/no-system")
    assert text(events) == "fine"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("someone/no-system" in w and "system prompt" in w for w in warnings), warnings
    # the hidden box keeps its own value: it is not a system input
    expected = ["hi", [], "You are a helpful assistant."] if hidden_box else ["hi", []]
    assert fake.joins[0].json["data"] == expected


async def test_a_space_without_system_input_refuses_it_when_strict(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(config_body=no_system_config(), raw_messages=answer_messages())
    async with AsyncClient(base_urls={"hf_spaces": url}, strict=True) as client:
        with pytest.raises(InvalidRequestError, match="someone/no-system") as info:
            await client.complete("hi", model="hf_spaces:someone/no-system", system=ONE_LINE)
        # without a system prompt there is nothing to refuse
        assert (await client.complete("hi", model="hf_spaces:someone/no-system")).text == "fine"
    assert "system prompt" in str(info.value)
    assert len(fake.joins) == 1


def run_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", "chat", "--no-log", *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "LLMRELAY_HF_SPACES_BASE_URL": url},
    )  # fmt: skip


def test_cli_warns_or_refuses_an_undeliverable_system_prompt(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(config_body=no_system_config(), raw_messages=answer_messages())
    result = run_cli(url, "-m", "hf_spaces:someone/no-system", "-s", ONE_LINE, "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "fine\n"
    assert "someone/no-system" in result.stderr
    assert "system prompt cannot be delivered" in result.stderr
    strict = run_cli(url, "--strict", "-m", "hf_spaces:someone/no-system", "-s", ONE_LINE, "hi")
    assert strict.returncode != 0
    assert strict.stdout == ""
    assert "system prompt" in strict.stderr


# -- §2 the history --------------------------------------------------------------------

TURNS = [Message("user", "first"), Message("assistant", "answer one"), Message("user", "second")]


@pytest.mark.parametrize("version", ["4", "6"])
async def test_a_chatinterface_state_cannot_carry_history_so_it_is_flattened(
    space: Space, version: str
) -> None:
    """Gradio replaces a ``gr.State`` input with the session's own value: history sent
    there would be dropped silently (the real servers: ``test_gradio6_real.py``)."""
    fake, url = space
    fake.script = SpaceScript(version=version, app="chatinterface", chunks=["ok"])  # type: ignore[arg-type]
    assert text(await provider_events(url, TURNS, model="someone/chat")) == "ok"
    (join,) = fake.joins
    assert join.json["fn_index"] == CI_API_FN[version]
    assert join.json["data"] == [
        "User: first\nAssistant: answer one\nUser: second\nAssistant:", [],
        CI_SYSTEM_DEFAULT, 0.7,
    ]  # fmt: skip


async def test_pairs_keep_a_missing_side_empty(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(version="4")
    messages = [Message("assistant", "greeting"), Message("user", "a"), Message("user", "b")]
    await provider_events(url, messages)
    assert fake.joins[0].json["data"][:2] == ["b", [[None, "greeting"], ["a", None]]]


async def test_history_is_flattened_only_without_a_history_input(space: Space) -> None:
    fake, url = space
    config = build_config("5")
    for dep in config["dependencies"][:2]:
        dep["inputs"] = [TEXTBOX, SYSTEM_STATE]  # no chatbot input
    fake.script = SpaceScript(config_body=config, raw_messages=answer_messages())
    await provider_events(url, TURNS, model="someone/no-history")
    assert fake.joins[0].json["data"] == [
        "User: first\nAssistant: answer one\nUser: second\nAssistant:",
        "You are a helpful assistant.",
    ]


async def test_a_last_assistant_message_is_continued_flattened(space: Space) -> None:
    fake, url = space
    await provider_events(url, [Message("user", "q"), Message("assistant", "partial")])
    assert fake.joins[0].json["data"][:2] == ["User: q\nAssistant: partial", []]


# -- the reply: the chat function's own output, this event only, never empty ------------


def generating(data: list[Any], event_id: str = "EVENT_ID") -> str:
    output = {"data": data, "is_generating": True}
    return json.dumps({"msg": "process_generating", "event_id": event_id, "output": output,
                       "success": True})  # fmt: skip


def completed(data: list[Any], event_id: str = "EVENT_ID") -> str:
    output = {"data": data, "is_generating": False}
    return json.dumps({"msg": "process_completed", "event_id": event_id, "output": output,
                       "success": True})  # fmt: skip


async def test_an_edit_of_an_earlier_message_never_rewrites_the_reply(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(version="4", raw_messages=[
        generating(["", [["first", "answer one"], ["second", "Hel"]], "S"]),
        # a non-append edit of the history's message, and the reply grows
        generating([[], [["replace", [0, 1], "rewritten earlier message"],
                         ["append", [1, 1], "lo"]], []]),
        # the new turn disappears for a moment: the last pair is the history's again
        generating([[], [["delete", [1], None]], []]),
        generating([[], [["add", [1], ["second", "Hello"]]], []]),
        completed(["", [["first", "rewritten earlier message"], ["second", "Hello!"]], "S"]),
    ])  # fmt: skip
    events = await provider_events(url, TURNS)
    assert [e for e in events if isinstance(e, str)] == ["Hel", "lo", "!"]
    assert events[-1] == FinishReason("stop")


def _chat(reply: str) -> list[Any]:
    return [{"role": "user", "content": "hi"}, {"role": "assistant", "content": reply}]


def _append(text: str, path: list[Any] | None = None) -> str:
    return generating([[], [["append", path or [1, "content"], text]], []])


async def test_appended_tokens_are_the_deltas_and_a_rewrite_is_not_sent_twice(
    space: Space, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = space
    fake.script = SpaceScript(raw_messages=[
        generating(["", _chat("Hel"), "S"]),
        _append("lo"),
        _append(""),  # nothing new
        _append(" wor"),
        generating([[], [["replace", [1, "content"], "Jo"]], []]),  # shorter: nothing sent
        _append("lly good"),  # "Jolly good": past what was sent, but not its extension
        _append("!"),
        completed(["", _chat("Jolly good!"), "S"]),
    ])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="llmrelay.providers.hf_spaces"):
        events = await provider_events(url, [Message("user", "hi")])
    assert [e for e in events if isinstance(e, str)] == ["Hel", "lo", " wor", "d", "!"]
    assert events[-1] == FinishReason("stop")
    rewrites = [r for r in caplog.records if "rewrote already streamed text" in r.message]
    assert len(rewrites) == 1  # at "Jolly good" only: "!" extends what was sent again


async def test_appends_outside_the_reply_are_not_streamed(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(raw_messages=[
        # the user's message last (no reply yet): an append to it is not the reply
        generating(["", [{"role": "user", "content": ""}], "S"]),
        generating([[], [["append", [0, "content"], "hi"]], []]),
        generating([[], [["add", [1], {"role": "assistant", "content": ""}]], []]),
        generating([[], [["append", [0, "content"], "!"]], []]),  # an earlier message
        _append("A"),
        generating([[], [["append", [1, "role"], "x"]], []]),  # "assistantx": no reply
        _append("B"),
        _append("C"),
        completed(["", _chat("ABC"), "S"]),  # the reply again, all of it
    ])  # fmt: skip
    events = await provider_events(url, [Message("user", "hi")])
    assert [e for e in events if isinstance(e, str)] == ["A", "BC"]


async def test_appends_to_the_history_sent_are_not_the_reply(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(version="4", raw_messages=[
        generating(["", [["first", "answer one"]], "S"]),
        generating([[], [["append", [0, 1], " (edited)"]], []]),  # the history's pair
        generating([[], [["add", [1], ["second", ""]]], []]),
        generating([[], [["append", [1, 1], "Hel"]], []]),
        generating([[["append", [], "x"]], [["append", [1, 1], "lo"]], []]),  # two outputs
        completed(["x", [["first", "answer one (edited)"], ["second", "Hello"]], "S"]),
    ])  # fmt: skip
    events = await provider_events(url, TURNS)
    assert [e for e in events if isinstance(e, str)] == ["Hel", "lo"]


async def test_messages_of_another_event_are_ignored(space: Space) -> None:
    fake, url = space
    other = "0" * 32
    fake.script = SpaceScript(raw_messages=[
        generating(["", [{"role": "user", "content": "x"},
                         {"role": "assistant", "content": "not mine"}], ""], other),
        json.dumps({"msg": "process_generating", "output": {"data": ["", [], ""]},
                    "success": True}),  # no event_id at all
        json.dumps({"msg": "estimation", "event_id": other, "rank": 5, "queue_size": 9}),
        completed(["", [{"role": "assistant", "content": "nor this"}], ""], other),
        generating(["", [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "mine"}], ""]),
        completed(["", [{"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "mine."}], ""]),
    ])  # fmt: skip
    events = await provider_events(url, [Message("user", "hi")])
    assert text(events) == "mine."
    assert [e for e in events if isinstance(e, Queued)] == [Queued(0, 1, None)]  # its own


@pytest.mark.parametrize(
    "final",
    [
        ["", [], ""],  # the function never answered (e.g. a dependency that clears a box)
        ["", [{"role": "user", "content": "hi"}], ""],
        ["", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}], ""],
    ],
)
async def test_no_reply_is_never_an_empty_successful_answer(space: Space, final: Any) -> None:
    fake, url = space
    fake.script = SpaceScript(raw_messages=[completed(final)])
    with pytest.raises(ProtocolError, match="model_chat\\) returned no reply"):
        await provider_events(url, [Message("user", "hi")])
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:
        with pytest.raises(ProtocolError):
            await client.complete("hi", model="hf_spaces")


# -- ZeroGPU, the queue ------------------------------------------------------------------

QUOTA = (
    "You have exceeded your GPU quota (46s left vs. 60s requested). "
    '<a href="https://huggingface.co/join">Sign-up on Hugging Face</a> to get more '
    "quotas or retry in 0:09:48"
)


@pytest.mark.parametrize("version", ["4", "6"])
@pytest.mark.parametrize(
    ("message", "wait"),
    [
        (QUOTA, 588.0),
        ("You have exceeded your GPU quota (60s requested vs. 56s left). Create a free "
         "account to get more usage quota.", 4.0),
        ("You have exceeded your GPU quota (60s left). Try again in 1 day, 2:05:11.5",
         86400 + 7511.5),
        ("You have exceeded your GPU quota.", None),
    ],
)  # fmt: skip
async def test_zerogpu_quota_is_a_rate_limit_with_its_wait(
    space: Space, version: str, message: str, wait: float | None
) -> None:
    fake, url = space
    fake.script = SpaceScript(version=version, mode="fail", fail_after=0, error_message=message)  # type: ignore[arg-type]
    with pytest.raises(RateLimitError) as info:
        await provider_events(url, [Message("user", "hi")])
    assert info.value.retry_after == wait
    assert info.value.retryable  # fallback moves on
    assert "exceeded your GPU quota" in str(info.value)
    assert "<a" not in str(info.value)  # the toast's link markup is dropped from the text


@pytest.mark.parametrize(
    "message",
    ["No GPU is currently available", "No GPU is currently available for you after 60s"],
)
async def test_no_gpu_is_provider_unavailable(space: Space, message: str) -> None:
    fake, url = space
    fake.script = SpaceScript(version="6", mode="fail", fail_after=0, error_message=message)
    with pytest.raises(ProviderUnavailable) as info:
        await provider_events(url, [Message("user", "hi")])
    assert info.value.retryable
    # any other gr.Error stays a plain ProviderError
    fake.script = SpaceScript(version="6", mode="fail", fail_after=0, error_message="GPU on fire")
    with pytest.raises(ProviderError) as other:
        await provider_events(url, [Message("user", "hi")])
    assert type(other.value) is ProviderError


async def test_estimation_messages_are_queued_events(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(estimations=[(2, 3, 12.5), (2, 3, 12.5), (1, 2, 6.0),
                                           (0, 1, None), (None, 1, -3.0)])  # fmt: skip
    events = await provider_events(url, [Message("user", "hi")])
    queued = [e for e in events if isinstance(e, Queued)]
    # repeats dropped, malformed fields unknown; all before the first text
    assert queued == [Queued(2, 3, 12.5), Queued(1, 2, 6.0), Queued(0, 1, None),
                      Queued(None, 1, None)]  # fmt: skip
    first_text = next(i for i, e in enumerate(events) if isinstance(e, str))
    assert all(i < first_text for i, e in enumerate(events) if isinstance(e, Queued))
    assert event_to_dict(queued[0]) == {"type": "queued", "position": 2, "queue_size": 3,
                                        "eta": 12.5}  # fmt: skip
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:  # through the stream
        streamed = [e async for e in client.stream("hi", model="hf_spaces")]
    assert Queued(1, 2, 6.0) in streamed


async def test_the_first_token_timeout_bounds_a_queued_request(space: Space) -> None:
    fake, url = space
    estimation = {"msg": "estimation", "event_id": "EVENT_ID", "rank": 7, "queue_size": 9,
                  "rank_eta": 300.0}  # fmt: skip
    fake.script = SpaceScript(raw_messages=[json.dumps(estimation)], hold_open=True)
    timeouts = Timeouts(first_token=0.5)
    async with AsyncClient(base_urls={"hf_spaces": url}, timeouts=timeouts) as client:
        started = time.monotonic()
        with pytest.raises(ProviderTimeout) as info:
            await client.complete("hi", model="hf_spaces")
    assert info.value.kind == "first_token"
    assert time.monotonic() - started < 5


# -- /config and /info ------------------------------------------------------------------


@pytest.mark.parametrize("model", [QWEN, "someone/any-space"])
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_config_5xx_is_provider_unavailable(space: Space, model: str, status: int) -> None:
    fake, url = space
    fake.script = SpaceScript(config_status=status)
    with pytest.raises(ProviderUnavailable) as info:
        await provider_events(url, [Message("user", "hi")], model=model)
    assert info.value.status_code == status
    assert fake.joins == []


async def test_config_404_is_model_not_found_unless_a_row_knows_the_space(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(config_status=404, version="4")
    with pytest.raises(ModelNotFoundError):
        await provider_events(url, [Message("user", "hi")], model="someone/gone")
    assert text(await provider_events(url, [Message("user", "hi")])).startswith("Hello")


def two_chat_functions() -> dict[str, Any]:
    """Two public chat dependencies of different layouts: ``/config`` cannot tell which
    is the Space's chat."""
    config = build_config("5")
    config["dependencies"][0]["inputs"] = [TEXTBOX, CHATBOT]  # no system input
    config["dependencies"][0]["api_name"] = "internal_chat"
    return config


@pytest.mark.parametrize(
    ("hidden", "fn_index", "data"),
    [
        ((), 0, ["hi", []]),  # both documented: the first, in /config order
        (("internal_chat",), 1, ["hi", [], ONE_LINE]),  # only model_chat_1 documented
    ],
)
async def test_info_decides_between_public_chat_dependencies(
    space: Space, hidden: tuple[str, ...], fn_index: int, data: list[Any]
) -> None:
    fake, url = space
    fake.script = SpaceScript(
        config_body=two_chat_functions(), info_hidden=hidden, raw_messages=answer_messages()
    )
    messages = [Message("system", ONE_LINE), Message("user", "hi")]
    await provider_events(url, messages, model="someone/two")
    assert [r.path for r in fake.requests].count("/gradio_api/info") == 1
    assert fake.joins[0].json["fn_index"] == fn_index
    assert fake.joins[0].json["data"] == data


async def test_info_is_not_read_when_config_is_clear(space: Space) -> None:
    fake, url = space
    await provider_events(url, [Message("user", "hi")], model="someone/qwen-copy")
    assert [r.path for r in fake.requests] == [
        "/config", "/gradio_api/queue/join", "/gradio_api/queue/data"
    ]  # fmt: skip


async def test_info_error_is_typed(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(config_body=two_chat_functions(), info_status=503)
    with pytest.raises(ProviderUnavailable, match="/info"):
        await provider_events(url, [Message("user", "hi")], model="someone/two")
    assert fake.joins == []


# -- describe_model ---------------------------------------------------------------------


def test_describe_model_shows_the_known_spaces_inputs(space: Space) -> None:
    from llmrelay import Client

    fake, url = space
    fake.script = SpaceScript(version="6")
    with Client(base_urls={"hf_spaces": url}) as client:
        described = client.describe_model("hf_spaces:qwen-2-72b")
    assert (described["api_name"], described["fn_index"], described["history_format"]) == (
        "model_chat", 0, "parts"
    )  # fmt: skip
    assert [(i["role"], i["component"], i["label"], i["default"], i["visible"])
            for i in described["inputs"]] == [
        ("message", "textbox", "Input", None, True),
        ("history", "chatbot", "qwen2-72B-instruct", [], True),
        ("system", "textbox", None, "You are a helpful assistant.", False),
    ]  # fmt: skip
    assert fake.joins == []  # described, not called


def test_describe_model_of_a_provider_that_declares() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", "models", "huggingface:some/model", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert (described["provider"], described["model"]) == ("huggingface", "some/model")
    assert "temperature" in described["parameters"]
    unknown = subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", "models", "nosuch:model"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("llmrelay: error:")


@pytest.mark.parametrize(
    ("position", "eta", "shown"),
    [
        (2, 12.4, "queued 3rd, ~12 s"),
        (0, None, "queued 1st"),
        (10, 0.3, "queued 11th, <1 s"),
        (11, 61.0, "queued 12th, ~61 s"),
        (20, None, "queued 21st"),
        (None, 5.0, "queued, ~5 s"),
    ],
)
def test_queued_status_text(position: int | None, eta: float | None, shown: str) -> None:
    from llmrelay.cli._text import queued_text

    assert queued_text(position, eta) == shown
