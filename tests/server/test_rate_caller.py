"""Who the rate limit counts: the server key's holder, else the client address — never a
header the client picks (a fresh bearer per request, or an untrusted X-Forwarded-For)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from llmrelay.server._guard import caller

HI = [{"role": "user", "content": "hi"}]


def _statuses(url: str, n: int, headers: Any) -> list[int]:
    return [
        httpx.post(
            url + "/v1/chat/completions",
            json={"model": "alpha:m", "messages": HI},
            headers=headers(i),
            timeout=10,
        ).status_code
        for i in range(n)
    ]


def test_a_fresh_bearer_per_request_does_not_dodge_the_limit(make_server: Any) -> None:
    url = make_server(rate_limit=3, rate_window=1e6)  # no server key: any bearer is accepted
    statuses = _statuses(url, 10, lambda i: {"Authorization": f"Bearer {secrets.token_hex(8)}"})
    # before: keyed on the client's own header, 10 of 10 allowed
    assert statuses == [200] * 3 + [429] * 7


def test_with_a_server_key_its_holders_share_one_bucket(make_server: Any) -> None:
    url = make_server(rate_limit=2, rate_window=1e6, api_key="k-123")
    statuses = _statuses(url, 4, lambda i: {"Authorization": "Bearer k-123"})
    assert statuses == [200, 200, 429, 429]
    wrong = _statuses(url, 1, lambda i: {"Authorization": "Bearer nope"})
    assert wrong == [401]  # refused before it is counted


@pytest.mark.parametrize(
    ("client", "who"),
    [
        (("203.0.113.7", 5000), "addr:203.0.113.7"),
        (("2001:db8:1:2::1", 5000), "addr:2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff::9", 5000), "addr:2001:db8:1:2::/64"),
        (("::ffff:203.0.113.7", 5000), "addr:203.0.113.7"),
        (None, "addr:unknown"),
        (("unix-socket", 0), "addr:unix-socket"),
    ],
)
def test_the_client_address_counts_an_ipv6_host_as_its_slash_64(client: Any, who: str) -> None:
    headers = [(b"authorization", b"Bearer whatever")]
    assert caller({"type": "http", "client": client, "headers": headers}) == who
