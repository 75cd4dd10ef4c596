"""The fake Gradio Space against plain httpx: routes, error bodies and every script mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes._server import serve
from tests.fakes.gradio_space import (
    DEFAULT_CHUNKS,
    FakeSpace,
    SpaceScript,
    Version,
    api_prefix,
    diff,
)

SESSION = "abc123def456"
JOIN = {"data": ["Привет 👋", [], "Be brief."], "event_data": None, "fn_index": 0,
        "trigger_id": 11, "session_hash": SESSION}  # fmt: skip


@pytest.fixture
def space() -> Iterator[tuple[FakeSpace, httpx.Client]]:
    fake = FakeSpace()
    with serve(fake.app) as url, httpx.Client(base_url=url, timeout=5) as client:
        yield fake, client


def _join(client: httpx.Client, version: str, body: Any = None) -> httpx.Response:
    return client.post(f"{api_prefix(version)}/queue/join?", json=JOIN if body is None else body)


def _read(client: httpx.Client, version: str, session: str = SESSION) -> list[str]:
    """The ``data:`` payloads of one stream (raises if the server drops it)."""
    path = f"{api_prefix(version)}/queue/data"
    with client.stream("GET", path, params={"session_hash": session}) as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        raw = b"".join(response.iter_raw()).decode("utf-8")
    assert raw.endswith("\n\n")
    return [block.removeprefix("data: ") for block in raw[:-2].split("\n\n")]


def _run(fake: FakeSpace, client: httpx.Client, **script: Any) -> list[dict[str, Any]]:
    fake.script = SpaceScript(**script)
    assert _join(client, fake.script.version).status_code == 200
    return [json.loads(line) for line in _read(client, fake.script.version)]


@pytest.mark.parametrize("version", ["4", "5", "6"])
def test_ok_stream(space: tuple[FakeSpace, httpx.Client], version: Version) -> None:
    fake, client = space
    fake.script = SpaceScript(version=version)
    config = client.get("/config").json()
    assert config["protocol"] == "sse_v3"
    assert ("api_prefix" in config) == (version != "4")
    event_id = _join(client, version).json()["event_id"]
    assert len(event_id) == 32
    int(event_id, 16)
    lines = _read(client, version)
    assert all(line == json.dumps(json.loads(line), ensure_ascii=False, separators=(",", ":"))
               for line in lines)  # fmt: skip
    messages = [json.loads(line) for line in lines]
    n = len(DEFAULT_CHUNKS)
    assert [m["msg"] for m in messages] == [
        "heartbeat", "estimation", "process_starts", *["process_generating"] * n,
        "process_completed", "close_stream",
    ]  # fmt: skip
    assert messages[1] == {"msg": "estimation", "event_id": event_id, "rank": 0,
                           "queue_size": 1, "rank_eta": None}  # fmt: skip
    completed = messages[-2]
    assert completed["success"] is True
    chat = completed["output"]["data"][1]
    reply = "".join(DEFAULT_CHUNKS)
    expected = {
        "4": [["Привет 👋", reply]],
        "5": [{"role": "user", "metadata": None, "content": "Привет 👋", "options": None},
              {"role": "assistant", "metadata": None, "content": reply, "options": None}],
        "6": [{"role": "user", "metadata": None, "content": [{"text": "Привет 👋", "type": "text"}],
               "options": None},
              {"role": "assistant", "metadata": None, "content": [{"text": reply, "type": "text"}],
               "options": None}],
    }  # fmt: skip
    assert chat == expected[version]
    path = {"4": [0, 1], "5": [1, "content"], "6": [1, "content", 0, "text"]}[version]
    second = messages[4]["output"]["data"]
    assert second == [[], [["append", path, ","]], []]
    empty = messages[3 + DEFAULT_CHUNKS.index("")]["output"]["data"]
    assert empty == [[], [], []]
    assert fake.joins[0].json == JOIN
    assert fake.wait_streams_closed(5)


def test_other_prefix_and_errors(space: tuple[FakeSpace, httpx.Client]) -> None:
    fake, client = space
    assert client.post("/queue/join", json=JOIN).json() == {"detail": "Not Found"}
    assert client.get("/queue/data", params={"session_hash": "x"}).status_code == 404
    fake.script.version = "4"
    assert client.post("/gradio_api/queue/join", json=JOIN).status_code == 404
    no_hash = {k: v for k, v in JOIN.items() if k != "session_hash"}
    response = _join(client, "4", no_hash)
    assert (response.status_code, response.json()) == (400, {"detail": "Session hash not found."})
    response = _join(client, "4", {**JOIN, "fn_index": 99})
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    response = _join(client, "4", {**JOIN, "data": "x"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "data"]
    fake.script.join_status = 503
    response = _join(client, "4")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("Queue is full")
    fake.script.config_status = 404
    assert client.get("/config").status_code == 404


@pytest.mark.parametrize("version", ["4", "6"])
def test_unknown_session_drops_connection(
    space: tuple[FakeSpace, httpx.Client], version: str
) -> None:
    fake, client = space
    fake.script.version = version  # type: ignore[assignment]
    path = f"{api_prefix(version)}/queue/data"
    seen: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("GET", path, params={"session_hash": "nope"}) as response:
            seen.extend(response.iter_raw())
    message = json.loads(b"".join(seen).decode().removeprefix("data: "))
    assert message["msg"] == "unexpected_error"
    assert message["message"] == ("404: Session not found." if version == "4" else "404: Not Found")
    assert message.get("session_not_found", False) is (version != "4")
    assert fake.wait_streams_closed(5)


@pytest.mark.parametrize("version", ["4", "5", "6"])
def test_fail_modes(space: tuple[FakeSpace, httpx.Client], version: str) -> None:
    fake, client = space
    messages = _run(fake, client, version=version, mode="fail", error_message="Boom 💥")
    completed = messages[-2]
    assert [m["msg"] for m in messages[-2:]] == ["process_completed", "close_stream"]
    assert completed["success"] is False
    if version == "4":
        assert completed["output"] == {"error": "'Boom 💥'", "duration": 10, "visible": True}
    else:
        assert completed["output"]["error"] == "Boom 💥"
        assert completed["output"]["title"] == "Error"
    hidden = _run(fake, client, version=version, mode="fail_hidden")[-2]
    assert (hidden["success"], hidden["output"]) == (False, {"error": None})


def test_malformed_close_early_queue_full(space: tuple[FakeSpace, httpx.Client]) -> None:
    fake, client = space
    fake.script = SpaceScript(mode="malformed", fail_after=2)
    _join(client, "5")
    lines = _read(client, "5")
    bad = [line for line in lines if not line.startswith("{") or not line.endswith("}")]
    assert len(bad) == 1
    assert json.loads(lines[-2])["msg"] == "process_completed"
    early = _run(fake, client, mode="close_early", fail_after=3)
    assert [m["msg"] for m in early[-2:]] == ["process_generating", "close_stream"]
    assert sum(m["msg"] == "process_generating" for m in early) == 3
    full = _run(fake, client, mode="queue_full_msg")
    assert [m["msg"] for m in full] == ["heartbeat", "queue_full"]


@pytest.mark.parametrize("mode", ["disconnect", "unexpected_error"])
def test_abrupt_modes(space: tuple[FakeSpace, httpx.Client], mode: str) -> None:
    fake, client = space
    fake.script = SpaceScript(mode=mode, fail_after=2)  # type: ignore[arg-type]
    _join(client, "5")
    seen: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": SESSION}) as r:
            seen.extend(r.iter_raw())
    text = b"".join(seen).decode()
    assert text.count('"process_generating"') == 2
    assert ('"unexpected_error"' in text) is (mode == "unexpected_error")
    assert fake.wait_streams_closed(5)


def test_early_close_is_seen_by_the_server(space: tuple[FakeSpace, httpx.Client]) -> None:
    fake, client = space
    fake.script = SpaceScript(hold_open=True, chunks=["a", "b"])
    _join(client, "5")
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": SESSION}) as r:
        for line in r.iter_lines():
            if '"process_generating"' in line and '"b"' in line:
                assert fake.open_streams == 1
                break
    assert fake.wait_streams_closed(5)
    assert fake.open_streams == 0
    assert fake.streams_opened == 1


def test_other_session_events_and_delays(space: tuple[FakeSpace, httpx.Client]) -> None:
    fake, client = space
    messages = _run(fake, client, other_session_events=True, chunk_delay=0.01)
    mine = messages[2]["event_id"]
    ids = {m["event_id"] for m in messages if m["msg"] == "process_generating"}
    assert len(ids) == 2
    completions = [m for m in messages if m["msg"] == "process_completed"]
    assert [m["event_id"] == mine for m in completions] == [False, True]


def test_diff_actions() -> None:
    assert diff("ab", "abc") == [["append", [], "c"]]
    assert diff("ab", "xb") == [["replace", [], "xb"]]
    assert diff([1, 2, 3], [1]) == [["delete", [1], None], ["delete", [1], None]]
    assert diff([1], [1, {"a": 2}]) == [["add", [1], {"a": 2}]]
    assert diff({"a": 1, "b": 2}, {"b": "x", "c": 3}) == [
        ["delete", ["a"], None], ["replace", ["b"], "x"], ["add", ["c"], 3],
    ]  # fmt: skip
    assert diff([["q", "r"]], [["q", "r!"]]) == [["append", [0, 1], "!"]]
