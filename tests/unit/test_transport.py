"""The two HTTP transports behave alike, and the ``transport`` setting picks one.

Each behaviour of the default transport is checked on both against plain asyncio
servers on loopback: redirects are not followed, cookies are not kept, there is no
connection limit, the request leaves as httpx built it (headers, URL bytes), proxy
credentials are sent, and each fault maps to the same ``llmrelay.errors`` type (connect
timeout, read timeout, refused, reset). TLS is ``test_transport_tls.py``'s, bodies and
gzip ``test_http.py``'s, the provider contract and the fault matrix run on both too.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmrelay import AsyncClient, Timeouts, errors
from llmrelay._aiohttp import AiohttpTransport
from llmrelay._pool import HttpcoreTransport
from llmrelay._settings import Settings
from llmrelay._transport import choose_transport, make_http_client, translate_errors
from tests.transports import TRANSPORTS, read_head, server

pytestmark = pytest.mark.anyio


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def client(transport: str, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    http = make_http_client(Timeouts(connect=2, read=2), transport=transport, **kwargs)
    try:
        yield http
    finally:
        await http.aclose()


# -- the defaults -------------------------------------------------------------------------


async def test_a_redirect_is_not_followed(transport: str) -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await read_head(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(head.split(b" ")[1])
            writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /elsewhere\r\n")
            writer.write(b"content-length: 0\r\n\r\n")
        writer.close()

    async with server(handle) as url, client(transport) as http:
        response = await http.post(url + "/start", json={"a": 1})
    assert response.status_code == 307
    assert response.headers["location"] == "/elsewhere"
    assert seen == [b"/start"]


async def test_cookies_are_not_kept(transport: str) -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                seen.append(await read_head(reader))
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\nset-cookie: session=abc; Path=/\r\n")
            writer.write(b"content-length: 2\r\n\r\nok")
        writer.close()

    async with server(handle) as url, client(transport) as http:
        # a host name: aiohttp's own jar would not store a cookie of an IP address
        url = url.replace("127.0.0.1", "localhost")
        for _ in range(2):
            assert (await http.get(url + "/")).text == "ok"
    assert len(seen) == 2
    assert b"cookie" not in seen[1].lower().replace(b"set-cookie", b"")


def _ok_recording_targets(
    seen: list[bytes],
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A keep-alive handler answering ``ok`` to each request, recording its target."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                seen.append((await read_head(reader)).split(b" ")[1])
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        writer.close()

    return handle


async def test_each_url_object_is_sent_to_its_own_target(transport: str) -> None:
    """The aiohttp transport keeps the yarl URL of each URL it sent (by its parts,
    bounded): each URL object reaches its own path, userinfo never in the target."""
    seen: list[bytes] = []
    handle = _ok_recording_targets(seen)

    async with server(handle) as url, client(transport) as http:
        for i in range(300):
            request = http.build_request("GET", httpx.URL(f"{url}/p{i}?q={i}"))
            assert (await http.send(request)).text == "ok"
            del request
        shared = f"{url}/same"
        for _ in range(3):
            assert (await http.get(shared)).text == "ok"
        with_user = httpx.URL(shared.replace("://", "://u:p@"))
        for _ in range(2):
            assert (await http.get(with_user)).text == "ok"
        targets = getattr(http._transport, "_targets", {})  # type: ignore[attr-defined]
        assert len(targets) <= 256
    assert seen == [b"/p%d?q=%d" % (i, i) for i in range(300)] + [b"/same"] * 5


async def test_a_url_string_is_parsed_once_and_each_request_keeps_its_own(
    transport: str,
) -> None:
    seen: list[bytes] = []
    handle = _ok_recording_targets(seen)

    plain = httpx.AsyncClient()  # what httpx itself builds from the same arguments
    async with server(handle) as url, client(transport) as http:
        calls: list[dict[str, Any]] = [{}, {"params": {"y": "2"}}, {}]
        requests = [http.build_request("GET", url + "/a?x=1", **kw) for kw in calls]
        expected = [plain.build_request("GET", url + "/a?x=1", **kw).url for kw in calls]
        assert [r.url for r in requests] == expected
        for request in requests:
            assert (await http.send(request)).text == "ok"
        assert (await http.get(url + "/a?x=1", params={"z": "3"})).text == "ok"
        assert (await http.get(url + "/a?x=1")).text == "ok"
    await plain.aclose()
    assert seen == [b"/a?x=1", expected[1].raw_path, b"/a?x=1", b"/a?z=3", b"/a?x=1"]


async def test_there_is_no_connection_limit(transport: str) -> None:
    """150 requests at once are all on the wire at once (aiohttp's default is 100)."""
    total = 150
    arrived = 0
    everyone = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal arrived
        await read_head(reader)
        arrived += 1
        if arrived == total:
            everyone.set()
        try:
            await asyncio.wait_for(everyone.wait(), 5)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        except TimeoutError:
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with server(handle) as url:
        http = make_http_client(Timeouts(connect=10, read=10), transport=transport)
        try:
            responses = await asyncio.gather(*(http.get(url + "/") for _ in range(total)))
        finally:
            await http.aclose()
    assert [r.status_code for r in responses] == [200] * total


async def test_the_request_leaves_as_httpx_built_it(transport: str) -> None:
    """Method, target (percent-encoding untouched), header names, values and order, body."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with server(handle) as url, client(transport) as http:
        await http.post(
            url + "/v1/a%2Fb/%7Euser?q=a%20b&r=%2F",
            content=b'{"x": "\xc3\xa9"}',
            headers={"Authorization": "Bearer k", "X-Custom": "1"},
        )
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/a%2Fb/%7Euser?q=a%20b&r=%2F HTTP/1.1"
    headers = [tuple(line.split(b": ", 1)) for line in lines[1:]]
    assert [name.lower() for name, _ in headers] == [
        b"host",
        b"accept",
        b"connection",
        b"user-agent",
        b"accept-encoding",
        b"authorization",
        b"x-custom",
        b"content-length",
    ]
    values = {name.lower(): value for name, value in headers}
    assert values[b"accept-encoding"] == b"gzip, deflate"
    assert values[b"user-agent"].startswith(b"llmrelay/")
    assert values[b"authorization"] == b"Bearer k"
    assert body == b'{"x": "\xc3\xa9"}'


async def test_proxy_credentials_are_sent(transport: str) -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nproxied")
        await writer.drain()
        writer.close()

    async with server(handle) as url:
        proxy = url.replace("http://", "http://user:p%40ss@")
        async with client(transport, proxy=proxy) as http:
            response = await http.get("http://provider.invalid/x")
    assert response.text == "proxied"
    head = seen[0].decode()
    assert head.startswith("GET http://provider.invalid/x HTTP/1.1")
    credentials = base64.b64encode(b"user:p@ss").decode()
    assert f"proxy-authorization: basic {credentials}".lower() in head.lower()


# -- one error mapping --------------------------------------------------------------------


async def _mapped(http: httpx.AsyncClient, url: str) -> errors.LLMRelayError:
    with pytest.raises(errors.LLMRelayError) as info, translate_errors("p", "m"):
        async with http.stream("GET", url) as response:
            async for _ in response.aiter_raw():
                pass
    return info.value


async def test_refused_is_a_transport_error_from_a_connect_error(transport: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once it is closed
    async with client(transport) as http:
        error = await _mapped(http, f"http://127.0.0.1:{port}/")
    assert type(error) is errors.TransportError
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert error.retryable


async def test_a_handshake_that_never_ends_is_a_connect_timeout(transport: str) -> None:
    """The TLS handshake counts against the connect timeout, on both transports."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # reads the ClientHello, never answers

    async with server(handle) as url:
        http = make_http_client(Timeouts(connect=0.3, read=5), transport=transport)
        try:
            error = await _mapped(http, url.replace("http://", "https://") + "/")
        finally:
            await http.aclose()
    assert isinstance(error, errors.ProviderTimeout)
    assert error.kind == "connect"
    assert isinstance(error.__cause__, httpx.ConnectTimeout)


async def test_a_silence_before_the_head_is_a_read_timeout(transport: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(2)
        writer.close()

    async with server(handle) as url:
        http = make_http_client(Timeouts(connect=2, read=0.2), transport=transport)
        try:
            error = await _mapped(http, url + "/")
        finally:
            await http.aclose()
    assert isinstance(error, errors.ProviderTimeout)
    assert error.kind == "read"
    assert isinstance(error.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize("when", ["before the head", "mid-body"])
async def test_a_reset_is_a_transport_error(transport: str, when: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        if when == "mid-body":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN

    async with server(handle) as url, client(transport) as http:
        error = await _mapped(http, url + "/")
    assert type(error) is errors.TransportError
    assert isinstance(error.__cause__, httpx.TransportError)
    assert not isinstance(error.__cause__, httpx.TimeoutException)


async def test_a_malformed_head_is_a_transport_error(transport: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    async with server(handle) as url, client(transport) as http:
        error = await _mapped(http, url + "/")
    assert type(error) is errors.TransportError
    assert isinstance(error.__cause__, httpx.RemoteProtocolError)


# -- the setting ----------------------------------------------------------------------------


def _settings(tmp_path: Path, config: str = "", **kwargs: Any) -> Settings:
    from llmrelay._settings import load_config

    path = tmp_path / "config.toml"
    path.write_text(config)
    _, doc = load_config(path)
    return Settings.load(providers={}, config=doc, config_path=path, **kwargs)


def test_the_setting_resolves_argument_env_config_then_httpx(tmp_path: Path) -> None:
    assert _settings(tmp_path).transport == "httpx"
    assert _settings(tmp_path, 'transport = "aiohttp"').transport == "aiohttp"
    env = {"LLMRELAY_TRANSPORT": "httpx"}
    assert _settings(tmp_path, 'transport = "aiohttp"', env=env).transport == "httpx"
    assert _settings(tmp_path, transport="aiohttp", env=env).transport == "aiohttp"


def test_auto_as_an_argument_yields_to_the_env_and_config(tmp_path: Path) -> None:
    """``llmrelay serve`` passes auto: a user's variable or config key still decides."""
    assert _settings(tmp_path, transport="auto").transport == "auto"
    env = {"LLMRELAY_TRANSPORT": "httpx"}
    assert _settings(tmp_path, transport="auto", env=env).transport == "httpx"
    assert _settings(tmp_path, 'transport = "httpx"', transport="auto").transport == "httpx"


@pytest.mark.parametrize(
    ("config", "env"),
    [('transport = "fast"', {}), ("", {"LLMRELAY_TRANSPORT": "aiohtp"})],
)
def test_an_unknown_transport_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str, env: dict[str, str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(errors.ConfigError, match=r"unknown transport .*valid transports"):
        AsyncClient(config_path=str(path))


async def test_the_client_builds_the_transport_chosen() -> None:
    for name, cls in (("httpx", HttpcoreTransport), ("aiohttp", AiohttpTransport)):
        async with AsyncClient(transport=name) as relay:
            assert isinstance(relay._engine.http._transport, cls)  # type: ignore[attr-defined]


def test_auto_is_aiohttp_when_installed_and_httpx_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert choose_transport("auto", None) == "aiohttp"
    assert choose_transport("auto", "http://127.0.0.1:3128") == "aiohttp"
    monkeypatch.setattr("llmrelay._http_setup.fast_installed", lambda: False)
    assert choose_transport("auto", None) == "httpx"
    with pytest.raises(errors.ConfigError, match=r"pip install 'llmrelay\[fast\]'"):
        choose_transport("aiohttp", None)


def test_a_socks_proxy_falls_back_to_httpx_on_auto_and_is_refused_on_aiohttp(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        assert choose_transport("auto", "socks5://127.0.0.1:1080") == "httpx"
    assert "socks proxy is set, so the httpx transport is used" in caplog.text
    with pytest.raises(errors.ConfigError, match="no socks proxies"):
        choose_transport("aiohttp", "socks5h://127.0.0.1:1080")
    with pytest.raises(errors.ConfigError, match="no socks proxies"):
        AsyncClient(transport="aiohttp", proxy="socks5://127.0.0.1:1080")


def test_the_default_transport_never_imports_aiohttp() -> None:
    """A default client, built, imports no aiohttp; an aiohttp one imports it when built."""
    code = (
        "import sys, llmrelay\n"
        "llmrelay.AsyncClient()._engine\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'\n"
        "fast = llmrelay.AsyncClient(transport='aiohttp')\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported at construction'\n"
        "fast._engine\n"
        "assert 'aiohttp' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
