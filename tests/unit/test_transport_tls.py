"""TLS of ``make_http_client``, on both transports: verification unchanged, the context
built on first use.

A local https server with a certificate from a throw-away CA (``trustme``): refused with
the default verification, accepted with that CA as the bundle or with ``verify=False``;
building the client loads no CA bundle (about 0.1 s at CLI start-up), the first https
connection does, once per process.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from llmrelay import Timeouts, _transport, errors
from llmrelay._transport import make_http_client, map_httpx_error
from tests.fakes.raw import one_response_server
from tests.transports import TRANSPORTS

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("transport", TRANSPORTS)]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_url(ca: trustme.CA) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client refused our certificate, or hung up
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}/"
    server.close()


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A fresh per-process TLS cache; record each context httpx builds."""
    monkeypatch.setattr(_transport, "_TLS_CONTEXTS", {})
    calls: list[Any] = []
    original = httpx.create_ssl_context

    def spy(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        calls.append(kwargs.get("verify", args[0] if args else True))
        return original(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", spy)
    return calls


async def test_an_unknown_ca_is_refused_by_default(
    transport: str, https_url: str, built: list[Any]
) -> None:
    client = make_http_client(Timeouts(connect=5, read=5), transport=transport)
    assert built == []  # building the client loaded no CA bundle
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            await client.get(https_url)
    finally:
        await client.aclose()
    assert built == [True]  # the verifying context, built at the first https connection
    mapped = map_httpx_error(caught.value, "p", "m")
    assert isinstance(mapped, errors.TransportError)


async def test_the_ca_bundle_is_trusted(
    transport: str, https_url: str, ca: trustme.CA, tmp_path: Path, built: list[Any]
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    client = make_http_client(Timeouts(connect=5, read=5), transport=transport, verify=str(bundle))
    assert list(_transport._TLS_CONTEXTS) == []  # no bundle loaded yet (SSL_CERT_FILE)
    try:
        assert (await client.get(https_url)).text == "secret"
        assert (await client.get(https_url)).text == "secret"
    finally:
        await client.aclose()
    assert built == []  # httpx's own contexts are not involved
    assert [key[0] for key in _transport._TLS_CONTEXTS if isinstance(key, tuple)] == ["bundle"]


async def test_a_bundle_that_is_not_one_is_refused_at_the_first_https_request(
    transport: str, https_url: str, tmp_path: Path, built: list[Any]
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    client = make_http_client(Timeouts(connect=5, read=5), transport=transport, verify=str(bundle))
    try:
        with pytest.raises(errors.ConfigError, match="CA bundle"):
            await client.get(https_url)
    finally:
        await client.aclose()


def test_an_unreadable_bundle_is_refused_when_the_client_is_built(
    transport: str, tmp_path: Path
) -> None:
    with pytest.raises(errors.ConfigError, match="CA bundle"):
        make_http_client(Timeouts(), verify=str(tmp_path / "missing.pem"), transport=transport)


async def test_verify_false_accepts_any_certificate(
    transport: str, https_url: str, built: list[Any]
) -> None:
    client = make_http_client(Timeouts(connect=5, read=5), transport=transport, verify=False)
    try:
        assert (await client.get(https_url)).text == "secret"
        assert (await client.get(https_url)).text == "secret"
    finally:
        await client.aclose()
    assert built == [False]


async def test_the_context_is_built_once_per_process(
    transport: str, https_url: str, built: list[Any]
) -> None:
    for _ in range(3):
        client = make_http_client(Timeouts(connect=5, read=5), transport=transport)
        try:
            with pytest.raises(httpx.ConnectError):
                await client.get(https_url)
        finally:
            await client.aclose()
    assert built == [True]


async def test_plain_http_never_builds_a_context(transport: str, built: list[Any]) -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    async with one_response_server(answer) as url:
        client = make_http_client(Timeouts(connect=5, read=5), transport=transport)
        try:
            assert (await client.get(url)).text == "ok"
        finally:
            await client.aclose()
    assert built == []


async def test_through_a_proxy_the_tunnelled_origin_is_verified_too(
    transport: str, https_url: str, built: list[Any]
) -> None:
    """The proxy pool gets the same lazy, verifying context (CONNECT tunnel to https)."""
    port = int(https_url.rsplit(":", 1)[1].strip("/"))

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # CONNECT 127.0.0.1:port
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(a: asyncio.StreamReader, b: asyncio.StreamWriter) -> None:
            try:
                while data := await a.read(65536):
                    b.write(data)
                    await b.drain()
            except ConnectionError:
                pass
            finally:
                b.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy = await asyncio.start_server(tunnel, "127.0.0.1", 0)
    proxy_url = f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
    client = make_http_client(Timeouts(connect=5, read=5), transport=transport, proxy=proxy_url)
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(https_url)
    finally:
        await client.aclose()
        proxy.close()
    assert built == [True]


@pytest.fixture
def contexts(monkeypatch: pytest.MonkeyPatch) -> list[ssl.SSLContext]:
    """Every ``ssl.SSLContext`` made from now on (httpcore's, ours, ``create_default_context``).

    Ask for it after ``https_url`` (whose server context is not the client's).
    """
    made: list[ssl.SSLContext] = []
    original = ssl.SSLContext.__new__

    def counted(cls: type[ssl.SSLContext], *args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = original(cls, *args, **kwargs)
        made.append(context)
        return context

    monkeypatch.setattr(ssl.SSLContext, "__new__", staticmethod(counted))
    return made


async def test_plain_http_creates_no_ssl_context_at_all(
    transport: str, https_url: str, contexts: list[ssl.SSLContext]
) -> None:
    """Not even an empty one for the plain pool (~2.5 ms at its first use); https still
    builds the verifying context and refuses an unknown CA."""
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    _transport._TLS_CONTEXTS.clear()
    async with one_response_server(answer) as url:
        client = make_http_client(Timeouts(connect=5, read=5), transport=transport)
        try:
            assert (await client.get(url)).text == "ok"
            assert contexts == []
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(https_url)
        finally:
            await client.aclose()
    assert len(contexts) == 1  # the verifying one, at the first https request
    assert contexts[0].verify_mode == ssl.CERT_REQUIRED
