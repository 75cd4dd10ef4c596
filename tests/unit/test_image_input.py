"""Images in a request: the parts model, data URLs, and the image-fetch policy.

The policy's address rule is replaced only to let these tests fetch from loopback; the
default rule is tested to refuse loopback, private and link-local addresses, before and
after a redirect, for every address a name resolves to.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from llmrelay import ImagePart, Message
from llmrelay.providers import _image_input
from llmrelay.providers._image_input import (
    ImageError,
    ImageFetchPolicy,
    decode_data_url,
    fetch_image,
    public_address,
)
from llmrelay.providers._openai_stream import chat_payload
from llmrelay.types import ChatRequest, normalize_messages
from tests.images_server import BIG, DOT, ImageServer, serve_images

LOOPBACK = ipaddress.ip_address("127.0.0.1")
TEST_ONLY = ImageFetchPolicy(address_allowed=lambda address: address == LOOPBACK)
"""Loopback allowed (the test server's address), nothing else: for these tests only."""


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# -- the parts model ---------------------------------------------------------------------

PARTS = [
    {"type": "text", "text": "Compare "},
    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
    {"type": "text", "text": " with "},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    {"type": "text", "text": "."},
]


def test_parts_keep_their_order_and_detail() -> None:
    (message,) = normalize_messages([{"role": "user", "content": PARTS}])
    assert message.content == "Compare  with ."
    assert message.images == ("https://example.com/a.png", "data:image/png;base64,AAAA")
    assert message.parts == (
        "Compare ",
        ImagePart("https://example.com/a.png", "low"),
        " with ",
        ImagePart("data:image/png;base64,AAAA"),
        ".",
    )
    assert [j for j, _ in message.image_parts] == [1, 3]
    assert message.to_openai() == {"role": "user", "content": PARTS}


def test_the_openai_body_carries_the_parts_as_given() -> None:
    messages = normalize_messages(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PARTS}]
    )
    body = chat_payload(ChatRequest(messages, model="m"), "m")
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": PARTS},
    ]


def test_a_message_built_from_parts_or_from_images() -> None:
    built = Message("user", "", parts=("Hi ", ImagePart("u")))
    assert (built.content, built.images) == ("Hi ", ("u",))
    legacy = Message("user", "Hi", images=("u", "v"))
    assert legacy.content_parts == ("Hi", ImagePart("u"), ImagePart("v"))
    assert legacy.to_openai()["content"] == [
        {"type": "text", "text": "Hi"},
        {"type": "image_url", "image_url": {"url": "u"}},
        {"type": "image_url", "image_url": {"url": "v"}},
    ]
    with pytest.raises(ValueError, match="must be those of its parts"):
        Message("user", "other", parts=("Hi ", ImagePart("u")))
    with pytest.raises(ValueError, match=r"messages\[0\]\.content\[0\]: an image part's detail"):
        normalize_messages([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "u", "detail": 3}}]}])  # fmt: skip


def test_text_only_parts_stay_plain_text() -> None:
    (message,) = normalize_messages(
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ]
    )
    assert (message.content, message.parts, message.to_openai()["content"]) == ("ab", (), "ab")


# -- data URLs --------------------------------------------------------------------------------


def test_a_data_url_is_decoded_and_checked() -> None:
    image = decode_data_url(data_url(DOT))
    assert (image.data, image.mime_type, image.name) == (DOT, "image/png", "image.png")
    assert decode_data_url(data_url(DOT, "image/jpg").replace("jpg", "png")).data == DOT


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:text/plain;base64,aGk=", "text/plain is not an image type"),
        ("data:image/svg+xml;base64,PHN2Zz4=", r"image/svg\+xml is not an image type"),
        ("data:image/png;base64,!!!!", "base64 is invalid"),
        (data_url(b"GIF89a..."), "declared image/png but its bytes are image/gif"),
        ("data:image/png,plain", "its bytes are of no image type"),
        ("https://example.com/a.png", "not a data: URL"),
    ],
)
def test_a_bad_data_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_data_url(url)


def test_a_data_url_over_the_cap_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="larger than 100 bytes"):
        decode_data_url(data_url(DOT + b"\0" * 200), max_bytes=100)


# -- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("fe80::1", False),
        ("fd00::1", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_public_address(address: str, public: bool) -> None:
    assert public_address(ipaddress.ip_address(address)) is public


# -- fetching ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    with serve_images() as served:
        yield served


@pytest.mark.anyio
async def test_the_default_policy_refuses_loopback(images: ImageServer) -> None:
    with pytest.raises(ImageError, match=r"resolves to a non-public address \(127\.0\.0\.1\)"):
        await fetch_image(f"{images.url}/dot.png", ImageFetchPolicy())
    assert images.hits["/dot.png"] == 0  # refused before connecting


@pytest.mark.anyio
async def test_a_fetch_under_the_policy(images: ImageServer) -> None:
    image = await fetch_image(f"{images.url}/dot.png?x=1", TEST_ONLY)
    assert (image.data, image.mime_type, image.name) == (DOT, "image/png", "dot.png")


@pytest.mark.anyio
async def test_a_redirect_is_followed_and_checked(images: ImageServer) -> None:
    port = images.url.rsplit(":", 1)[1]
    image = await fetch_image(f"{images.url}/to?url=/dot.png", TEST_ONLY)
    assert image.data == DOT
    # to another loopback address, which the policy does not allow: refused, not fetched
    with pytest.raises(ImageError, match=r"non-public address \(127\.0\.0\.2\)"):
        await fetch_image(f"{images.url}/to?url=http://127.0.0.2:{port}/dot.png", TEST_ONLY)
    with pytest.raises(ImageError, match="redirected more than 3 times"):
        await fetch_image(f"{images.url}/loop", TEST_ONLY)
    assert images.hits["/loop"] == 4


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/text", "text/plain is not an image type"),
        ("/liar.png", "declared image/png but its bytes are of no image type"),
        ("/missing.png", "answered HTTP 404"),
        ("/big.png", f"larger than {BIG - 1} bytes"),
    ],
)
async def test_what_is_not_an_image_is_refused(
    images: ImageServer, path: str, message: str
) -> None:
    policy = ImageFetchPolicy(max_bytes=BIG - 1, address_allowed=TEST_ONLY.address_allowed)
    with pytest.raises(ImageError, match=message):
        await fetch_image(f"{images.url}{path}", policy)


@pytest.mark.anyio
async def test_a_slow_image_times_out(images: ImageServer) -> None:
    policy = ImageFetchPolicy(timeout=0.3, address_allowed=TEST_ONLY.address_allowed)
    with pytest.raises(ImageError, match=r"not fetched within 0\.3s"):
        await fetch_image(f"{images.url}/slow.png", policy)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/a.png", "must be http"),
        ("http://user:pw@127.0.0.1/a.png", "with credentials is not fetched"),
        ("http://[::1", "not a valid URL"),
    ],
)
async def test_urls_that_are_not_fetched(url: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        await fetch_image(url, TEST_ONLY)


def _resolving(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        assert host == "images.example"
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    monkeypatch.setattr(_image_input.anyio, "getaddrinfo", getaddrinfo)


@pytest.mark.anyio
async def test_every_resolved_address_is_checked(
    images: ImageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = images.url.rsplit(":", 1)[1]
    _resolving(monkeypatch, "127.0.0.1", "10.0.0.7")  # one allowed, one private
    with pytest.raises(ImageError, match=r"non-public address \(10\.0\.0\.7\)"):
        await fetch_image(f"http://images.example:{port}/dot.png", TEST_ONLY)


@pytest.mark.anyio
async def test_the_connection_goes_to_the_checked_address(
    images: ImageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = images.url.rsplit(":", 1)[1]
    _resolving(monkeypatch, "127.0.0.1")
    image = await fetch_image(f"http://images.example:{port}/dot.png", TEST_ONLY)
    assert image.data == DOT
    assert images.hosts[-1] == f"images.example:{port}"  # the name kept in Host
