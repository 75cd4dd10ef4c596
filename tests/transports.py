"""Both HTTP transports, for the suites that must hold on each (contract, faults, HTTP).

A conftest that imports ``transport`` and ``transport_setting`` runs each of its tests
once per transport: ``LLMRELAY_TRANSPORT`` is set for the test (so ``AsyncClient``,
``Client``, the CLI and the server all use it), and ``http_client`` builds the bare
``httpx.AsyncClient`` a provider-direct test hands a provider.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llmrelay import Timeouts
from llmrelay._transport import make_http_client

TRANSPORTS = ("httpx", "aiohttp")


@pytest.fixture(scope="session", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """The transport of this run of the test (session-scoped: each runs as one block)."""
    return str(request.param)


@pytest.fixture(autouse=True)
def transport_setting(transport: str, isolated_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``LLMRELAY_TRANSPORT`` for the test (after the root conftest clears LLMRELAY_*)."""
    monkeypatch.setenv("LLMRELAY_TRANSPORT", transport)


def http_client(transport: str, timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
    """llmrelay's HTTP client on ``transport`` (default timeouts, or ``timeout``)."""
    client = make_http_client(Timeouts(), transport=transport)
    if timeout is not None:
        client.timeout = timeout
    return client
