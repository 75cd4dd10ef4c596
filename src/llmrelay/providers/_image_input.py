"""Images named in a request: ``data:`` URLs decoded, ``http(s)`` URLs fetched under a policy.

A provider whose service takes an image URL (OpenAI-compatible servers, the Hugging Face
router, a Gradio Space's ``FileData``) gets the URL as it is: llmrelay fetches nothing.
Only where a service needs the bytes and cannot take the URL does a provider fetch it,
and only when the client allows it (``allow_image_fetch``; ``llmrelay serve
--allow-image-fetch``), under ``ImageFetchPolicy``:

* ``http``/``https`` only, no credentials in the URL, no proxy (a proxy would resolve
  the name itself, out of reach of the address check);
* every address the host name resolves to must be public (``public_address``: not
  private, loopback, link-local, shared, reserved, multicast or unspecified, an
  IPv4-mapped IPv6 address judged as its IPv4 address); the connection goes to the
  checked address (the name is not resolved again, so a rebinding DNS answer cannot
  swap it), with the name kept for the ``Host`` header and TLS (SNI, certificate);
* redirects are followed by hand, at most ``max_redirects``, each target checked the
  same way;
* an answer that is not ``200``, not of an image type (``IMAGE_TYPES``), larger than
  ``max_bytes`` or whose bytes are not that image type (magic number) is refused;
  the whole fetch is bounded by ``timeout`` seconds.

``safehttpx`` (Gradio's SSRF guard) was considered: it accepts a host when *one* of its
addresses is public and asks ``dns.google`` over the network when none is, so it does
not give the every-address rule above.

``data:`` URLs (RFC 2397, https://www.rfc-editor.org/rfc/rfc2397) must be
``data:image/<type>[;...];base64,<data>`` (or percent-encoded without ``;base64``) of
an ``IMAGE_TYPES`` type whose bytes match it, at most ``MAX_IMAGE_BYTES`` decoded.

Errors are ``ImageError`` (a ``ValueError`` whose text never quotes the URL: it may
hold a token); providers turn it into ``InvalidRequestError`` naming the message part.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

import anyio
import httpx

__all__ = [
    "IMAGE_TYPES",
    "MAX_IMAGE_BYTES",
    "IPAddress",
    "ImageData",
    "ImageError",
    "ImageFetchPolicy",
    "decode_data_url",
    "fetch_image",
    "is_data_url",
    "is_http_url",
    "public_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""The largest image accepted (decoded bytes): OpenAI's per-image limit for vision input."""

IMAGE_TYPES: dict[str, str] = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
}
"""The image types accepted (OpenAI's vision input types) -> a file name extension."""

_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.DOTALL)
_READ_CHUNK = 64 * 1024


class ImageError(ValueError):
    """An image of the request cannot be used (the text says why, never quoting the URL)."""


def public_address(address: IPAddress) -> bool:
    """Whether ``address`` is a public unicast address (the default fetch rule).

    Private (RFC 1918, ``fc00::/7``), loopback, link-local, shared (``100.64/10``),
    reserved, multicast and unspecified addresses are not; an IPv4-mapped IPv6 address
    is judged as its IPv4 address.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return bool(address.is_global) and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True, slots=True)
class ImageFetchPolicy:
    """How an ``http(s)`` image URL may be fetched (see the module docstring).

    Attributes:
        max_bytes: the largest image read, in bytes.
        timeout: seconds for the whole fetch, redirects included.
        max_redirects: redirects followed (each target checked).
        address_allowed: the rule every resolved address must pass
            (``public_address``); replacing it is for tests on loopback only.
    """

    max_bytes: int = MAX_IMAGE_BYTES
    timeout: float = 10.0
    max_redirects: int = 3
    address_allowed: Callable[[IPAddress], bool] = field(default=public_address, repr=False)


@dataclass(frozen=True, slots=True)
class ImageData:
    """An image's bytes, checked.

    Attributes:
        data: the encoded image.
        mime_type: one of ``IMAGE_TYPES``, matching the bytes.
        name: a file name for an upload (``image.png``, or the URL's last segment).
    """

    data: bytes = field(repr=False)
    mime_type: str
    name: str


def is_data_url(url: str) -> bool:
    """Whether ``url`` is a ``data:`` URL."""
    return url[:5].lower() == "data:"


def is_http_url(url: str) -> bool:
    """Whether ``url`` is an ``http://`` or ``https://`` URL."""
    return url[:7].lower() == "http://" or url[:8].lower() == "https://"


def _magic(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return None


def _checked(data: bytes, mime: str, name: str) -> ImageData:
    actual = _magic(data)
    if actual != mime:
        what = actual if actual else "of no image type llmrelay knows"
        raise ImageError(f"the image is declared {mime} but its bytes are {what}")
    return ImageData(data, mime, name)


def _image_type(value: str) -> str:
    mime = value.partition(";")[0].strip().lower()
    if mime == "image/jpg":
        mime = "image/jpeg"
    if mime not in IMAGE_TYPES:
        shown = mime[:60] or "no type"
        raise ImageError(f"{shown} is not an image type taken here ({', '.join(IMAGE_TYPES)})")
    return mime


def decode_data_url(url: str, max_bytes: int = MAX_IMAGE_BYTES) -> ImageData:
    """The image of a ``data:`` URL.

    Args:
        url: ``data:image/png;base64,...`` (or percent-encoded without ``;base64``).
        max_bytes: the largest decoded size accepted.

    Raises:
        ImageError: not a data URL of an ``IMAGE_TYPES`` image, invalid base64, bytes
            of another type, or more than ``max_bytes``.
    """
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise ImageError("not a data: URL (data:image/<type>;base64,<data>)")
    mime = _image_type(match["type"])
    encoded = match["data"]
    if ";base64" in match["params"].lower():
        if len(encoded) // 4 * 3 > max_bytes + 3:
            raise ImageError(f"the image is larger than {max_bytes} bytes")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ImageError("the data: URL's base64 is invalid") from None
    else:
        if len(encoded) > 3 * max_bytes:
            raise ImageError(f"the image is larger than {max_bytes} bytes")
        data = unquote_to_bytes(encoded)
    if len(data) > max_bytes:
        raise ImageError(f"the image is larger than {max_bytes} bytes")
    return _checked(data, mime, "image" + IMAGE_TYPES[mime])


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """Connects to one checked address; the name stays in ``Host`` and TLS (SNI)."""

    def __init__(self, address: IPAddress) -> None:
        super().__init__(retries=0)
        self._address = address

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        request.url = request.url.copy_with(host=str(self._address))
        request.extensions = {**request.extensions, "sni_hostname": host}
        return await super().handle_async_request(request)


async def _checked_address(url: httpx.URL, policy: ImageFetchPolicy) -> IPAddress:
    """The address to connect to: every address the host resolves to must be allowed."""
    if url.scheme not in ("http", "https") or not url.host:
        raise ImageError("an image URL must be http(s) with a host")
    if url.userinfo:
        raise ImageError("an image URL with credentials is not fetched")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await anyio.getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise ImageError(f"the image URL's host {url.host[:100]} does not resolve") from None
    addresses: list[IPAddress] = []
    for family, *_, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if not policy.address_allowed(address):
            raise ImageError(
                f"the image URL's host {url.host[:100]} resolves to a non-public address "
                f"({address}): not fetched"
            )
        addresses.append(address)
    if not addresses:
        raise ImageError(f"the image URL's host {url.host[:100]} has no IP address")
    return addresses[0]


async def _get_once(url: httpx.URL, policy: ImageFetchPolicy) -> httpx.URL | ImageData:
    """One hop: the redirect's target, or the image."""
    address = await _checked_address(url, policy)
    headers = {"accept": ", ".join(IMAGE_TYPES)}
    async with (
        httpx.AsyncClient(
            transport=_PinnedTransport(address), trust_env=False, follow_redirects=False
        ) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        if response.is_redirect and "location" in response.headers:
            return url.join(response.headers["location"])
        if response.status_code != 200:
            raise ImageError(f"the image URL answered HTTP {response.status_code}")
        mime = _image_type(response.headers.get("content-type", ""))
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > policy.max_bytes:
            raise ImageError(f"the image is larger than {policy.max_bytes} bytes")
        body = bytearray()
        async for chunk in response.aiter_raw(_READ_CHUNK):
            body += chunk
            if len(body) > policy.max_bytes:
                raise ImageError(f"the image is larger than {policy.max_bytes} bytes")
    name = url.path.rstrip("/").rpartition("/")[2][:100] or "image"
    if "." not in name:
        name += IMAGE_TYPES[mime]
    return _checked(bytes(body), mime, name)


async def fetch_image(url: str, policy: ImageFetchPolicy) -> ImageData:
    """Fetch the image at ``url`` under ``policy`` (see the module docstring).

    Raises:
        ImageError: a refused URL or address, a redirect too many, an HTTP error, a
            non-image answer, more than ``max_bytes``, a transport failure, or no answer
            within ``timeout`` seconds.
    """
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        raise ImageError("the image URL is not a valid URL") from None
    try:
        with anyio.fail_after(policy.timeout):
            for _ in range(policy.max_redirects + 1):
                hop = await _get_once(target, policy)
                if isinstance(hop, ImageData):
                    return hop
                target = hop
    except TimeoutError:
        raise ImageError(f"the image was not fetched within {policy.timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise ImageError(f"the image could not be fetched ({type(exc).__name__})") from None
    raise ImageError(f"the image URL redirected more than {policy.max_redirects} times")
