"""The test-wide guard (tests/conftest.py): only loopback connections are allowed."""

from __future__ import annotations

import socket

import anyio
import httpx
import pytest

from llmrelay import AsyncClient, TransportError


def test_the_guard_refuses_other_hosts_and_allows_loopback() -> None:
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="loopback only"):
        sock.connect(("198.51.100.7", 443))
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client.connect(server.getsockname())  # loopback is allowed


def test_a_provider_at_a_public_address_is_refused_by_the_guard() -> None:
    async def main() -> None:
        async with AsyncClient(base_urls={"hf_spaces": "http://198.51.100.7:7860"}) as client:
            with pytest.raises(TransportError):
                await client.complete("Hi", model="hf_spaces")

    anyio.run(main)
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://198.51.100.7:9/", timeout=2)
