"""Conversations: chat -c / --cid carry the history; every exchange leaves a log row."""

from __future__ import annotations

import inspect
import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.cli.conftest import Space, run
from tests.fakes.gradio_space import DEFAULT_CHUNKS, SpaceScript

ANSWER = inspect.cleandoc("".join(DEFAULT_CHUNKS))


def _sent(join: Any) -> str:
    """The message and the history a join sent, as one text."""
    return json.dumps(join.json["data"][:2], ensure_ascii=False)


def _rows(home: Path) -> list[dict[str, object]]:
    with sqlite3.connect(home / "logs.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM exchanges ORDER BY id")]


def test_three_turns_with_continue_send_the_history_and_log_each_turn(
    space: Space, home: Path
) -> None:
    fake, _ = space
    assert run("chat", "-m", "qwen-2-72b", "-s", "Be brief.", "first question")[0] == 0
    assert run("chat", "-c", "second question")[0] == 0
    code, out, err = run("chat", "-c", "third question")
    assert code == 0, err
    assert out == ANSWER + "\n"

    # hf_spaces sends each later turn's question as the message and every earlier
    # question and answer, in order, as the Space's chatbot value (Gradio 5 messages)
    assert [join.json["data"][0] for join in fake.joins] == [
        "first question", "second question", "third question"
    ]  # fmt: skip
    turn_one = [{"role": "user", "content": "first question"},
                {"role": "assistant", "content": ANSWER}]  # fmt: skip
    turn_two = [{"role": "user", "content": "second question"},
                {"role": "assistant", "content": ANSWER}]  # fmt: skip
    assert [join.json["data"][1] for join in fake.joins] == [[], turn_one, turn_one + turn_two]
    # the system prompt of the conversation is kept when -s is not given again
    assert [join.json["data"][2] for join in fake.joins] == ["Be brief."] * 3

    rows = _rows(home)
    assert [r["prompt"] for r in rows] == ["first question", "second question", "third question"]
    assert len({r["conversation_id"] for r in rows}) == 1
    # the continued turns keep the conversation's model and system prompt
    assert [r["system"] for r in rows] == ["Be brief."] * 3
    assert [r["model_requested"] for r in rows] == ["qwen-2-72b"] * 3
    for row in rows:
        assert row["answer"] == ANSWER
        assert (row["provider"], row["model"]) == ("hf_spaces", "Qwen/Qwen2-72B-Instruct")
        assert row["finish_reason"] == "stop"
        assert row["error"] is None
        assert isinstance(row["first_token_ms"], int)
        assert row["duration_ms"] >= row["first_token_ms"] >= 0
        assert json.loads(row["attempts"])[0]["provider"] == "hf_spaces"


def test_a_new_chat_starts_a_new_conversation_and_cid_picks_one(space: Space, home: Path) -> None:
    fake, _ = space
    run("chat", "alpha")
    run("chat", "beta")
    first, second = (r["conversation_id"] for r in _rows(home))
    assert first != second
    code, _, err = run("chat", "--cid", str(first), "gamma")
    assert code == 0, err
    assert "alpha" in _sent(fake.joins[-1])
    assert "beta" not in _sent(fake.joins[-1])
    assert _rows(home)[-1]["conversation_id"] == first


def test_unknown_cid_is_a_usage_error(space: Space) -> None:
    code, out, err = run("chat", "--cid", "nosuch", "hi")
    assert code == 2
    assert out == ""
    assert "no conversation 'nosuch'" in err


def test_continue_without_any_conversation_starts_one(space: Space, home: Path) -> None:
    code, out, _ = run("chat", "-c", "hello")
    assert code == 0
    assert out == ANSWER + "\n"
    assert len(_rows(home)) == 1


def test_failed_turn_is_logged_with_its_error_and_not_added_to_history(
    space: Space, home: Path
) -> None:
    fake, _ = space
    run("chat", "one")
    fake.script = SpaceScript(join_status=503)
    assert run("chat", "-c", "two")[0] == 1
    fake.script = SpaceScript()
    run("chat", "-c", "three")
    rows = _rows(home)
    assert rows[1]["error_type"] == "ProviderUnavailable"
    assert "503" in str(rows[1]["error"])
    assert rows[1]["answer"] == ""
    assert "two" not in _sent(fake.joins[-1])
    assert "one" in _sent(fake.joins[-1])


def test_no_log_and_logs_off_write_nothing(space: Space, home: Path) -> None:
    assert run("chat", "--no-log", "hi")[0] == 0
    assert not (home / "logs.db").exists()
    assert run("logs", "off")[0] == 0
    assert run("chat", "hi")[0] == 0
    assert not (home / "logs.db").exists()
    assert run("logs", "on")[0] == 0
    assert run("chat", "hi")[0] == 0
    assert len(_rows(home)) == 1


def test_logs_lists_searches_and_filters(space: Space, home: Path) -> None:
    run("chat", "tell me about pelicans")
    run("chat", "tell me about walruses")
    run("chat", "-c", "and their tusks?")
    code, out, _ = run("logs", "--json", "-n", "0")
    assert code == 0
    entries = json.loads(out)
    assert [e["prompt"] for e in entries] == [
        "tell me about pelicans",
        "tell me about walruses",
        "and their tusks?",
    ]
    code, out, _ = run("logs", "--json", "-q", "pelicans")
    assert [e["prompt"] for e in json.loads(out)] == ["tell me about pelicans"]
    code, out, _ = run("logs", "--json", "-q", 'tusks" OR "x')  # FTS syntax is quoted away
    assert json.loads(out) == []
    code, out, _ = run("logs", "--json", "--cid", entries[1]["conversation_id"])
    assert [e["prompt"] for e in json.loads(out)] == ["tell me about walruses", "and their tusks?"]
    code, out, _ = run("logs", "-n", "1")
    assert "## Prompt\n\nand their tusks?" in out
    assert "hf_spaces:Qwen/Qwen2-72B-Instruct" in out
    code, out, _ = run("logs", "path")
    assert out.strip() == str(home / "logs.db")
