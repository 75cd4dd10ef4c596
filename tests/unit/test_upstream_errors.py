"""The one place upstream content becomes error text: ``llmrelay._http``'s error mapping.

``retry_after_seconds`` (both RFC 9110 forms), ``error_detail`` (only a provider's
documented error object is relayed, bounded), ``describe_body`` (anything else is
described, never quoted), ``error_for_status`` (3xx, 408, ...) and ``raise_for_status``
(a redirect is never an empty success).
"""

from __future__ import annotations

import email.utils

import httpx
import pytest

from llmrelay import errors
from llmrelay._http import (
    MAX_DETAIL,
    describe_body,
    error_detail,
    error_for_status,
    raise_for_status,
    retry_after_seconds,
    upstream_text,
)

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0
MARKER = "octocat@example.org"
WHOAMI = (
    '{"type":"user","id":"1","name":"octocat","fullname":"The Octocat",'
    f'"email":"{MARKER}","orgs":[{{"name":"acme"}}],"auth":{{"type":"access_token"}}}}'
)
HTML = f"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>{MARKER}</body></html>"


# -- Retry-After ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),  # IMF-fixdate
        ("Tuesday, 14-Nov-23 22:13:50 GMT", 30.0),  # RFC 850 (obsolete)
        ("Tue Nov 14 22:13:50 2023", 30.0),  # asctime (obsolete)
        (email.utils.formatdate(NOW - 600, usegmt=True), 0.0),  # in the past
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
        ("1e9", None),
        ("99999999999999999999", None),
        ("Mon, 99 Foo 2023 99:99:99 GMT", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    value: str | None, expected: float | None
) -> None:
    assert retry_after_seconds(value, now=NOW) == expected


def test_retry_after_date_is_counted_from_the_clock() -> None:
    import time

    value = email.utils.formatdate(time.time() + 60, usegmt=True)
    seconds = retry_after_seconds(value)
    assert seconds is not None
    assert 55 <= seconds <= 60


async def test_raise_for_status_reads_an_http_date_retry_after() -> None:
    import time

    date = email.utils.formatdate(time.time() + 90, usegmt=True)
    response = httpx.Response(
        429, headers={"retry-after": date}, json={"error": "slow down"}, request=_request()
    )
    with pytest.raises(errors.RateLimitError) as info:
        await raise_for_status(response, provider="p", model="m")
    assert info.value.retry_after is not None
    assert 80 <= info.value.retry_after <= 90


# -- what may be relayed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"error": "Model x does not exist"}', "Model x does not exist"),
        ('{"error": ["a", "b"]}', "a; b"),
        ('{"error": {"code": 400, "message": "inappropriate_prompt"}}', "inappropriate_prompt"),
        (
            '{"detail": "You did not pass a valid token", "status": 401}',
            "You did not pass a valid token",
        ),
        ('{"detail": [{"loc": ["body"], "msg": "field required"}]}', "field required"),
        ('{"message": "Model not found"}', "Model not found"),
        ('{"title": "Unauthenticated", "status": 401}', "Unauthenticated"),
        (WHOAMI, None),
        (HTML, None),
        ("Failed to deserialize the JSON body", None),
        ('["a", "b"]', None),
        ('{"error": 42}', None),
        ("", None),
    ],
)
def test_error_detail_relays_only_documented_error_objects(body: str, expected: str | None) -> None:
    assert error_detail(body) == expected


def test_upstream_text_is_one_bounded_printable_line() -> None:
    assert upstream_text("a\nb\r\n\tc\x1b[31m") == "a b c [31m"
    long = upstream_text("x" * 5000)
    assert long is not None
    assert len(long) == MAX_DETAIL
    assert long.endswith("…")
    assert upstream_text("   ") is None
    assert upstream_text(["not", "text"]) is None


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("", None, "an empty body"),
        (HTML, "text/html; charset=utf-8", "an HTML page"),
        (HTML, None, "an HTML page"),
        (WHOAMI, "application/json", "a JSON object ("),
        ("[1, 2]", None, "a JSON array (6 bytes)"),
        ("oops", "text/plain", "a text/plain body (4 bytes)"),
        ("oops", None, "a non-JSON body (4 bytes)"),
    ],
)
def test_describe_body_says_what_it_is_without_quoting(
    body: str, content_type: str | None, expected: str
) -> None:
    described = describe_body(body, content_type)
    assert described.startswith(expected)
    assert MARKER not in described


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 422, 500, 502])
@pytest.mark.parametrize("body", [WHOAMI, HTML, f"plain text {MARKER}", f'{{"weird": "{MARKER}"'])
def test_error_for_status_never_quotes_an_unexpected_body(status: int, body: str) -> None:
    error = error_for_status(status, body, provider="huggingface", model="a/b", what="request")
    assert MARKER not in str(error)
    assert MARKER not in repr(error)
    assert error.body == body  # kept for the library's caller, who asked for it


def test_error_for_status_relays_the_provider_message_bounded() -> None:
    error = error_for_status(
        400, '{"error": "' + "y" * 4000 + '"}', provider="p", model=None, what="chat"
    )
    assert "y" * (MAX_DETAIL - 1) + "…" in str(error)
    assert "y" * MAX_DETAIL not in str(error)


def test_a_detail_read_by_the_provider_wins_and_is_bounded() -> None:
    error = error_for_status(
        400, '{"error": "generic"}', provider="p", model=None, detail="specific\n" + "z" * 999
    )
    assert "specific z" in str(error)
    assert "generic" not in str(error)
    assert "z" * MAX_DETAIL not in str(error)


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (301, errors.ProtocolError, False),
        (307, errors.ProtocolError, False),
        (304, errors.ProtocolError, False),
        (408, errors.ProviderTimeout, True),
        (401, errors.AuthenticationError, False),
        (404, errors.ModelNotFoundError, False),
        (418, errors.InvalidRequestError, False),
        (429, errors.RateLimitError, True),
        (503, errors.ProviderUnavailable, True),
    ],
)
def test_status_classes(status: int, cls: type[errors.ProviderError], retryable: bool) -> None:
    error = error_for_status(status, "", provider="p", model="m")
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.status_code == status


# -- a redirect is never an empty success --------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308, 300, 304])
async def test_raise_for_status_refuses_a_redirect(status: int) -> None:
    response = httpx.Response(
        status, headers={"location": "https://elsewhere.example/x?token=abc"}, request=_request()
    )
    with pytest.raises(errors.ProtocolError) as info:
        await raise_for_status(response, provider="h2o", model="m", what="conversation")
    message = str(info.value)
    assert "redirect" in message
    assert f"HTTP {status}" in message
    assert "does not follow" in message
    assert "h2o base URL" in message
    assert "elsewhere.example" not in message
    assert "token=abc" not in message


async def test_raise_for_status_passes_a_2xx() -> None:
    response = httpx.Response(204, request=_request())
    await raise_for_status(response, provider="p", model="m")


def _request() -> httpx.Request:
    return httpx.Request("GET", "https://provider.example/x")
