"""Safe by default: the server key, limits, no upstream from a body, no secret leaks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from tests.fakes._server import serve
from tests.server import scripted

import llmrelay
from llmrelay.server import ServerConfig
from llmrelay.server._guard import Guard

KEY = "srv-key-3f9a1c"
CHAT = {"model": "alpha:m", "messages": [{"role": "user", "content": "hi"}]}


def test_key_required_on_the_api_but_not_on_the_page(make_server: Any) -> None:
    url = make_server(api_key=KEY)
    with httpx.Client(base_url=url, timeout=10) as http:
        missing = http.post("/v1/chat/completions", json=CHAT)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = http.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        prefix = http.get("/v1/models", headers={"Authorization": f"Bearer {KEY[:-1]}"})
        assert prefix.status_code == 401
        assert http.get("/metrics").status_code == 401
        assert http.get("/health").status_code == 200
        assert http.get("/").status_code == 200
        assert http.get("/static/app.js").status_code == 200
        good = http.post(
            "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert good.status_code == 200
    sdk = openai.OpenAI(base_url=url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()
    sdk = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    assert any(m.id == "alpha:m" for m in sdk.models.list())


def test_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    import hmac

    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    guard = Guard(lambda *a: None, api_key=KEY, max_body_bytes=10)  # type: ignore[arg-type,return-value]
    scope = {"path": "/v1/models", "method": "GET", "headers": [(b"authorization", b"Bearer abc")]}
    assert guard._authorized(scope) is False
    assert calls == [(b"abc", KEY.encode())]


def test_body_over_the_limit_is_413(make_server: Any) -> None:
    url = make_server(max_body_bytes=4096)
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    with httpx.Client(base_url=url, timeout=10) as http:
        declared = http.post("/v1/chat/completions", json=big)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "request_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
            body = httpx.Request("POST", "/", json=big).read()
            for i in range(0, len(body), 1000):
                yield body[i : i + 1000]

        chunked = http.post("/v1/chat/completions", content=chunks())
        assert chunked.status_code == 413
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert scripted.LOG["alpha"].opened == 1  # only the small request reached a provider


def test_too_many_messages_is_400(make_server: Any) -> None:
    url = make_server(max_messages=3)
    many = {**CHAT, "messages": [{"role": "user", "content": str(i)} for i in range(4)]}
    response = httpx.post(url + "/v1/chat/completions", json=many, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_messages"
    assert scripted.LOG["alpha"].opened == 0


def test_cors_is_off_unless_configured(make_server: Any, server_url: str) -> None:
    preflight = {
        "Origin": "http://app.test",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    off = httpx.options(server_url + "/v1/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    url = make_server(cors_origins=("http://app.test",), api_key=KEY)
    on = httpx.options(url + "/v1/chat/completions", headers=preflight)
    assert on.status_code == 200
    assert on.headers["access-control-allow-origin"] == "http://app.test"
    other = httpx.options(
        url + "/v1/chat/completions", headers={**preflight, "Origin": "http://evil.test"}
    )
    assert other.headers.get("access-control-allow-origin") != "http://evil.test"


class Trap:
    """An HTTP server that records any request: nothing should ever reach it."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.hits.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
def trap() -> Iterator[tuple[Trap, str]]:
    app = Trap()
    with serve(app) as url:
        yield app, url


def test_no_upstream_url_proxy_or_key_taken_from_a_body(
    server_url: str, trap: tuple[Trap, str], space: Any
) -> None:
    app, trap_url = trap
    smuggled = {
        "base_url": trap_url,
        "api_base": trap_url,
        "proxy": trap_url,
        "api_key": "smuggled",
        "endpoints": {"base_url": trap_url},
        "base_urls": {"alpha": trap_url, "hf_spaces": trap_url},
        "extra_headers": {"x": "y"},
    }
    with httpx.Client(base_url=server_url, timeout=20) as http:
        for model in ("alpha:m", "hf_spaces:qwen-2-72b"):
            response = http.post(
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "hi"}], **smuggled},
            )
            assert response.status_code == 200, response.text
        assert space.joins, "the Space request went to the configured Space"
        assert scripted.LOG["alpha"].requests[-1].options == {}
        # an option the provider does not declare never reaches it (the library drops it)
        undeclared = http.post(
            "/v1/chat/completions", json={**CHAT, "options": {"base_url": trap_url}}
        )
        assert undeclared.status_code in (200, 400), undeclared.text
        assert trap_url not in undeclared.text
        assert "base_url" not in scripted.LOG["alpha"].requests[-1].options
    assert app.hits == []


def _capture_llmrelay_logs(caplog: pytest.LogCaptureFixture, level: int) -> None:
    """Capture llmrelay's logs whatever an earlier test (the CLI's) set its level to."""
    caplog.set_level(level)
    caplog.set_level(level, logger="llmrelay")
    caplog.set_level(level, logger="llmrelay.server.access")


def test_no_secret_in_any_response_or_log_line(
    make_server: Any, base_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    provider_key = "prov-secret-77aa"
    upstream = "https://upstream.internal.test:8443/v1/secret-path"
    kwargs = {**base_config.client_kwargs, "api_keys": {"alpha": provider_key}}
    url = make_server(api_key=KEY, client_kwargs=kwargs)
    _capture_llmrelay_logs(caplog, logging.DEBUG)
    prompt = "PROMPT-SENTINEL-123"
    auth = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "alpha:m", "messages": [{"role": "user", "content": prompt}]}
    seen: list[str] = []
    with httpx.Client(base_url=url, timeout=10) as http:

        def record(response: httpx.Response) -> None:
            seen.append(response.text)
            seen.extend(f"{k}: {v}" for k, v in response.headers.items())

        record(http.post("/v1/chat/completions", json=body, headers=auth))
        record(http.post("/v1/chat/completions", json={**body, "stream": True}, headers=auth))
        record(
            http.post(
                "/v1/chat/completions",
                json=body,
                headers={"Authorization": "Bearer " + provider_key},
            )
        )
        scripted.SCRIPTS["alpha"] = [
            llmrelay.ProviderUnavailable(
                f"connect to {upstream} failed",
                provider="alpha",
                model="m",
                status_code=503,
                body=f"key={provider_key}",
            )
        ]
        record(http.post("/v1/chat/completions", json=body, headers=auth))
        scripted.SCRIPTS["alpha"] = [
            "x",
            llmrelay.TransportError(f"reset by {upstream}", provider="alpha"),
        ]
        record(http.post("/v1/chat/completions", json={**body, "stream": True}, headers=auth))
        record(http.get("/v1/models", headers=auth))
        record(http.get("/metrics", headers=auth))
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "POST /v1/chat/completions" in logs  # the access log was captured
    everything = "\n".join(seen) + "\n" + logs
    for secret in (KEY, provider_key, upstream, "upstream.internal.test"):
        assert secret not in everything
    assert prompt not in logs


def test_prompts_logged_only_when_asked(make_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    url = make_server(log_prompts=True)
    _capture_llmrelay_logs(caplog, logging.INFO)
    httpx.post(
        url + "/v1/chat/completions",
        json={**CHAT, "messages": [{"role": "user", "content": "SENTINEL-9"}]},
    )
    assert "SENTINEL-9" in caplog.text


def test_a_refused_upstream_names_the_provider_and_setting_not_the_config_file(
    make_server: Any, tmp_path: Any
) -> None:
    folder = tmp_path / "operator-private-dir"
    folder.mkdir()
    config = folder / "llmrelay.toml"
    config.write_text(
        '[providers.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["m"]\n'
    )
    url = make_server(client_kwargs={"config_path": str(config)})
    for stream in (False, True):
        body = {
            "model": "local:m",
            "stream": stream,
            "messages": [{"role": "user", "content": "x"}],
        }
        response = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
        assert response.status_code == 502, response.text
        message = response.json()["error"]["message"]
        assert "config file [providers.local] base_url" in message  # provider and setting
        assert "operator-private-dir" not in response.text
        assert str(tmp_path) not in response.text
        assert "127.0.0.1:9" not in response.text
