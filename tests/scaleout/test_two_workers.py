"""Two ``llmrelay serve`` workers sharing a real Redis and a real PostgreSQL.

One conversation continues across both workers (its provider state is in Redis), a
provider that failed on one worker is tried last (here: not at all) by the other, and
every exchange of both is in PostgreSQL. ``pytest -s`` prints the transcript.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from llmrelay.log import ExchangeLog
from tests.scaleout.workers import Worker, serve_worker

CONFIG = 'retries = 0\n[aliases]\npair = ["flaky:m", "steady:m"]\n'  # no same-candidate retry
# 8 chat requests per caller, counted across both workers (one window for the whole test)
RATE = ("--rate-limit", "8", "--rate-window", "1000000000")


def _chat(
    worker: Worker, name: str, messages: list[dict[str, str]], model: str, stream: bool
) -> str:
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    print(f"--> worker {name}: POST /v1/chat/completions {json.dumps(body)}")
    with httpx.Client(timeout=30) as http:
        if not stream:
            reply = http.post(worker.url + "/v1/chat/completions", json=body)
            assert reply.status_code == 200, reply.text
            data = reply.json()
            text = str(data["choices"][0]["message"]["content"])
            print(f"<-- worker {name}: 200 model={data['model']} content={text!r}")
            return text
        pieces: list[str] = []
        with http.stream("POST", worker.url + "/v1/chat/completions", json=body) as reply:
            assert reply.status_code == 200, reply.read().decode()
            lines = [line for line in reply.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        model_seen = ""
        for line in lines[:-1]:
            chunk = json.loads(line[len("data: ") :])
            model_seen = chunk["model"]
            for choice in chunk["choices"]:
                pieces.append(choice["delta"].get("content") or "")
        text = "".join(pieces)
        print(
            f"<-- worker {name}: 200 (SSE, {len(lines)} frames) model={model_seen} content={text!r}"
        )
        return text


def _wait_for(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_two_workers_share_conversations_health_and_the_log(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    env = {"LLMRELAY_REDIS_URL": redis_url, "LLMRELAY_DATABASE_URL": pg_url}
    shared = redis.Redis.from_url(redis_url)
    with (
        serve_worker(tmp_path / "a", "a", config=CONFIG, env=env, args=RATE) as a,
        serve_worker(tmp_path / "b", "b", config=CONFIG, env=env, args=RATE) as b,
        shared,
    ):
        # one conversation, turn 1 on worker A, turn 2 on worker B, turn 3 on A again
        history = [{"role": "user", "content": "hello"}]
        first = _chat(a, "A", history, "remembering", stream=True)
        assert first == "turn 1"
        history += [{"role": "assistant", "content": first}, {"role": "user", "content": "and?"}]
        second = _chat(b, "B", history, "remembering", stream=False)
        assert second == "turn 2"  # B got A's provider state from Redis
        history += [{"role": "assistant", "content": second}, {"role": "user", "content": "more"}]
        assert _chat(a, "A", history, "remembering", stream=True) == "turn 3"

        # flaky fails on A (A falls back to steady) ...
        assert _chat(a, "A", [{"role": "user", "content": "x"}], "pair", stream=True) == (
            "steady answer"
        )
        _wait_for(lambda: shared.zscore("llmrelay:health", "flaky:m") is not None, "the cool-down")
        print(
            f"redis: llmrelay:health = {shared.zrange('llmrelay:health', 0, -1, withscores=True)}"
        )
        # ... so B orders it last and never tries it
        assert _chat(b, "B", [{"role": "user", "content": "y"}], "pair", stream=True) == (
            "steady answer"
        )

        with httpx.Client(timeout=30) as http:
            # a failed exchange is logged too
            body = {"model": "flaky", "messages": [{"role": "user", "content": "boom"}]}
            failed = http.post(b.url + "/v1/chat/completions", json=body)
            print(f"<-- worker B: {failed.status_code} {failed.json()['error']['message']!r}")
            assert failed.status_code == 503
            # the rate limit is shared: 6 requests so far, 2 more are allowed on either worker
            body = {"model": "steady", "messages": [{"role": "user", "content": "z"}]}
            statuses = [
                http.post(w.url + "/v1/chat/completions", json=body).status_code for w in (a, b, a)
            ]
            print(f"rate limit 8 across both workers: requests 7-9 -> {statuses}")
            assert statuses == [200, 200, 429]

    with ExchangeLog(pg_url) as log:
        # each worker's writer batches its rows: ids follow write order across workers, the
        # request time (set when the row is queued) follows the requests
        rows = sorted(log.entries(limit=None), key=lambda r: (r.datetime_utc or "", r.id or 0))
    print("postgresql exchanges:")
    for row in rows:
        attempts = [(x["provider"], x["outcome"]) for x in row.attempts]
        print(f"  #{row.id} {row.provider}:{row.model} prompt={row.prompt!r} answer={row.answer!r}")
        print(f"      attempts={attempts} first_token_ms={row.first_token_ms}")
    assert [(r.prompt, r.answer, r.provider) for r in rows] == [
        ("hello", "turn 1", "remembering"),
        ("and?", "turn 2", "remembering"),
        ("more", "turn 3", "remembering"),
        ("x", "steady answer", "steady"),
        ("y", "steady answer", "steady"),
        ("boom", "", "flaky"),
        ("z", "steady answer", "steady"),
        ("z", "steady answer", "steady"),
    ]
    # the turns of one conversation share a conversation id (a digest of its first message)
    assert len({r.conversation_id for r in rows[:3]}) == 1
    assert [(x["provider"], x["outcome"]) for x in rows[3].attempts] == [
        ("flaky", "failed"),
        ("steady", "ok"),
    ]
    assert [(x["provider"], x["outcome"]) for x in rows[4].attempts] == [("steady", "ok")]
    assert (rows[5].error_type, rows[5].error) == (
        "ProviderUnavailable",
        "flaky (m): flaky is down",
    )
    assert all(r.error is None for r in rows[:5] + rows[6:])
