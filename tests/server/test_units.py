"""The server's pure parts: state store, history keys, error mapping, config round trip."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import stat
from pathlib import Path

import pytest

import llmrelay
from llmrelay.server import MemoryStateStore, ServerConfig, worker_settings_file
from llmrelay.server._errors import error_reply, scrub
from llmrelay.server._memory import history_keys
from llmrelay.server._metrics import Metrics


def test_store_is_lru_bounded_and_expires() -> None:
    now = [0.0]
    store = MemoryStateStore(max_entries=2, ttl=10, clock=lambda: now[0])

    async def run() -> None:
        await store.put("a", {"p": {"x": 1}})
        await store.put("b", {"p": {"x": 2}})
        assert await store.get("a") == {"p": {"x": 1}}  # a is now the most recent
        await store.put("c", {"p": {"x": 3}})
        assert await store.get("b") is None  # least recently used went first
        assert len(store) == 2
        now[0] = 10.0
        assert await store.get("a") is None  # expired
        assert await store.get("c") is None

    asyncio.run(run())


def test_store_copies_values() -> None:
    store = MemoryStateStore()
    value = {"p": {"x": [1]}}

    async def run() -> None:
        await store.put("k", value)
        value["p"]["x"].append(2)
        assert await store.get("k") == {"p": {"x": [1]}}

    asyncio.run(run())


def test_history_keys_are_prefix_chained() -> None:
    a = history_keys([("user", "hi"), ("assistant", "hello"), ("user", "more")])
    b = history_keys([("user", "hi"), ("assistant", "hello")])
    assert a[:2] == b
    assert len(set(a)) == 3
    assert history_keys([("developer", "x")]) == history_keys([("system", "x")])
    # no ambiguity between where one message ends and the next begins
    assert history_keys([("user", "a"), ("user", "b")])[-1] != history_keys([("user", "ab")])[-1]
    assert history_keys([("user", "hi")]) != history_keys([("assistant", "hi")])


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (llmrelay.UnknownModelError("x", ["a"]), 404, "model_not_found"),
        (llmrelay.UnknownProviderError("x", ["a"]), 404, "model_not_found"),
        (llmrelay.MissingCredentialsError("p", "P_KEY"), 503, "provider_not_configured"),
        (llmrelay.ConfigError("bad messages"), 400, "invalid_request"),
        (llmrelay.RateLimitError("r", provider="p"), 429, "rate_limit_exceeded"),
        (llmrelay.ProviderTimeout("t", provider="p"), 504, "upstream_timeout"),
        (llmrelay.ProviderUnavailable("u", provider="p"), 503, "upstream_unavailable"),
        (llmrelay.ProtocolError("m", provider="p"), 502, "upstream_error"),
        (RuntimeError("secret internals"), 500, None),
    ],
)
def test_error_reply(error: Exception, status: int, code: str | None) -> None:
    reply = error_reply(error)
    assert reply.status == status
    assert reply.body["error"]["code"] == code
    assert set(reply.body["error"]) >= {"message", "type", "param", "code"}
    if status == 500:
        assert "secret" not in reply.body["error"]["message"]


def test_stream_interrupted_maps_its_cause() -> None:
    cause = llmrelay.ProviderTimeout("idle", provider="p")
    assert error_reply(llmrelay.StreamInterrupted(cause, "some text")).status == 504


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    reply = error_reply(llmrelay.RateLimitError("r", provider="p", retry_after=0.2))
    assert reply.headers == {"Retry-After": "1", "x-should-retry": "true"}
    assert error_reply(llmrelay.RateLimitError("r", provider="p")).headers == {
        "x-should-retry": "true"
    }


def test_scrub_removes_urls() -> None:
    text = scrub(
        "failed: https://user:pw@host.internal:8443/v1/x?key=abc and socks5://proxy:1080 ok"
    )
    assert "host.internal" not in text
    assert "proxy:1080" not in text
    assert "key=abc" not in text
    assert text.endswith("ok")
    assert len(scrub("x" * 10_000)) == 2000


def test_config_round_trip_through_the_workers_settings_file() -> None:
    config = ServerConfig(
        api_key="key-9z9",
        cors_origins=("http://a",),
        max_body_bytes=5000,
        max_messages=3,
        log_prompts=True,
        client_kwargs={"model": "alpha:m"},
    )
    with worker_settings_file(config) as factory:
        module, _, name = factory.partition(":")
        path = Path(bytes.fromhex(name.removeprefix("app_")).decode())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert ServerConfig.from_json(path.read_text()) == config
        assert "key-9z9" not in factory  # the import string does not carry the key
        built = getattr(importlib.import_module(module), name)()
        assert built.state.llmrelay.config == config
    assert not path.exists()  # removed with its folder when serve ends
    assert not path.parent.exists()
    assert "kkkk" not in repr(ServerConfig(api_key="kkkk"))


def test_a_killed_serve_leaves_no_settings_file_past_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys
    import tempfile

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f"llmrelay-serve-{dead_pid}-abc"
    stale.mkdir(mode=0o700)
    (stale / "server.json").write_text('{"api_key": "key-secret"}')
    live = tmp_path / f"llmrelay-serve-{os.getpid()}-def"
    live.mkdir(mode=0o700)
    (live / "server.json").write_text("{}")
    other = tmp_path / "llmrelay-serve-notapid-x"
    other.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with worker_settings_file(ServerConfig()) as factory:
        assert str(os.getpid()) in bytes.fromhex(factory.partition(":app_")[2]).decode()
    assert not stale.exists()
    assert live.exists()
    assert other.exists()


def test_metric_labels_are_bounded() -> None:
    metrics = Metrics(max_label_sets=2)
    assert metrics.labels("a", "1") == ("a", "1")
    assert metrics.labels("a", "2") == ("a", "2")
    assert metrics.labels("a", "3") == ("other", "other")
    assert metrics.labels("a", "1") == ("a", "1")


def test_attempts_header_lists_each_attempt_and_its_cache_keeps_them_apart() -> None:
    from llmrelay.server._errors import ATTEMPTS_HEADER, attempts_header

    ok = llmrelay.Attempt("alpha", "m", "ok")
    failed = llmrelay.Attempt(
        "beta", "m", "failed", "ProviderUnavailable", "503 from https://x.example/v1 " + "y" * 400
    )
    assert attempts_header([]) == {}
    one = attempts_header([ok])[ATTEMPTS_HEADER]
    assert one == (
        '[{"provider":"alpha","model":"m","outcome":"ok","error_type":null,"message":null}]'
    )
    assert attempts_header([ok])[ATTEMPTS_HEADER] == one  # cached: the same answer
    other = attempts_header([llmrelay.Attempt("alpha", "n", "ok")])[ATTEMPTS_HEADER]
    assert '"model":"n"' in other
    both = json.loads(attempts_header([failed, ok])[ATTEMPTS_HEADER])
    assert [a["provider"] for a in both] == ["beta", "alpha"]
    assert both[0]["message"] == ("503 from <url> " + "y" * 400)[:300]
    assert both[0]["error_type"] == "ProviderUnavailable"
