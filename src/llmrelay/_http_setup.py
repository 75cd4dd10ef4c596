"""The HTTP settings a client checks when it is constructed, without importing httpx.

``AsyncClient`` builds its shared HTTP client (``llmrelay._transport.make_http_client``:
httpx, httpcore or aiohttp, the pools) on first use, not when it is constructed
(``import llmrelay`` plus ``AsyncClient()`` would otherwise cost more than ``import
httpx``: issue 21). The settings that can be wrong are still refused at construction,
by the checks here, which import neither httpx nor a transport:

* the transport (``choose_transport``): an unknown name, ``"aiohttp"`` without aiohttp
  installed (``importlib.util.find_spec``: aiohttp is not imported) or with a socks proxy;
* a CA bundle path that cannot be read (``check_ca_bundle``: ``os.stat`` and
  ``os.access``; whether the file *is* a CA bundle is known when the TLS context is
  built, at the first https request, as before).

A proxy URL is the transport's to parse (httpx's ``Proxy``, aiohttp's ``URL``): a client
with a proxy setting builds its HTTP client at construction (``AsyncClient``), so an
unusable proxy is still refused there.
"""

from __future__ import annotations

import importlib.util
import logging
import os

from . import errors

__all__ = ["TRANSPORTS", "check_ca_bundle", "choose_transport", "fast_installed"]

log = logging.getLogger("llmrelay")

TRANSPORTS = ("httpx", "aiohttp", "auto")
"""The values of the ``transport`` setting."""


def fast_installed() -> bool:
    """Whether aiohttp (the ``fast`` extra) can be imported (without importing it)."""
    return importlib.util.find_spec("aiohttp") is not None


def choose_transport(transport: str, proxy: str | None) -> str:
    """The transport ``make_http_client`` uses for the setting ``transport``.

    Returns:
        ``"httpx"`` or ``"aiohttp"``: ``"auto"`` is aiohttp when it is installed and the
        proxy is not a socks proxy (then httpx, with a log line).

    Raises:
        llmrelay.errors.ConfigError: an unknown transport; ``"aiohttp"`` without aiohttp
            installed or with a socks proxy.
    """
    if transport == "httpx":
        return "httpx"
    if transport not in TRANSPORTS:
        raise errors.ConfigError(
            f"unknown transport {transport!r} (transport=, LLMRELAY_TRANSPORT or the config "
            f"file's transport); valid transports: {', '.join(TRANSPORTS)}"
        )
    socks = proxy is not None and proxy.lower().startswith("socks")
    if transport == "aiohttp":
        if not fast_installed():
            raise errors.ConfigError(
                "the aiohttp transport needs aiohttp: pip install 'llmrelay[fast]'"
            )
        if socks:
            raise errors.ConfigError(
                "the aiohttp transport has no socks proxies: use the httpx transport "
                "(or 'auto', which falls back to it)"
            )
        return "aiohttp"
    if socks:
        log.warning("transport auto: a socks proxy is set, so the httpx transport is used")
        return "httpx"
    return "aiohttp" if fast_installed() else "httpx"


def check_ca_bundle(path: str) -> os.stat_result:
    """The status of the CA bundle ``path`` (a PEM file or a directory) if it is readable.

    Raises:
        llmrelay.errors.ConfigError: ``path`` does not exist or cannot be read.
    """
    try:
        status = os.stat(path)
        if not os.access(path, os.R_OK):
            raise PermissionError(f"permission denied: {path!r}")
    except OSError as exc:
        raise errors.ConfigError(f"cannot use CA bundle {path!r}: {exc}") from exc
    return status
