"""Where a Hugging Face Space is served, and waking it: the Hub's Space API.

As the official clients do (``@gradio/client`` ``client/js/src/helpers/spaces.ts``;
``gradio_client`` through ``huggingface_hub.space_info(space).host``)::

    GET {hub}/api/spaces/{owner}/{name}      (Authorization: Bearer <token> if set)
        -> {"id", "host"?, "subdomain"?, "runtime": {"stage": ...}, ...}

The Space's app is served from ``host`` (``https://{subdomain}.hf.space``).
``runtime.stage``: ``RUNNING``, ``RUNNING_BUILDING`` and ``RUNNING_APP_STARTING`` are
usable; ``SLEEPING`` and ``STOPPED`` are asleep (a request to the Space wakes it; the
status is then polled every second); ``BUILDING`` and ``APP_STARTING`` are pending
(polled); ``PAUSED`` (paused by its author) and anything else (``RUNTIME_ERROR``,
``BUILD_ERROR``, ``CONFIG_ERROR``, ``NO_APP_FILE``, ...) are errors. Waiting ends at the
request's deadline (or after ``DEFAULT_WAIT`` seconds without one).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import anyio
import httpx

from .. import errors
from .._http import raise_for_status, read_json

__all__ = ["DEFAULT_WAIT", "POLL_INTERVAL", "SpaceHosts", "SpaceInfo"]

POLL_INTERVAL = 1.0
"""Seconds between two status polls of a Space that is waking up or building."""
DEFAULT_WAIT = 300.0
"""How long to wait for a Space when the request has no deadline, in seconds."""
CACHE_TTL = 600.0
CACHE_SIZE = 256
_WAKE_TIMEOUT = 10.0
_INFO_LIMIT = 1024 * 1024

USABLE = frozenset({"RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"})
ASLEEP = frozenset({"SLEEPING", "STOPPED"})
PENDING = frozenset({"BUILDING", "APP_STARTING"})
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class SpaceInfo:
    """What the Hub says of a Space: its app's origin and its runtime stage."""

    host: str
    stage: str


def _origin(value: str) -> str | None:
    """``value`` as a bare ``http(s)://host[:port]`` origin, or ``None``."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError):
        return None
    if url.scheme not in ("http", "https") or not url.host or url.userinfo:
        return None
    if url.path not in ("", "/") or url.query or url.fragment:
        return None
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}"


def parse_space_info(payload: object) -> SpaceInfo:
    """``SpaceInfo`` from the Hub's answer.

    Raises:
        ValueError: not an object, or neither a usable ``host`` nor ``subdomain``.
    """
    if not isinstance(payload, dict):
        raise ValueError("the Hub's Space answer is not an object")
    host = payload.get("host")
    origin = _origin(host) if isinstance(host, str) else None
    if origin is None:
        subdomain = payload.get("subdomain")
        if isinstance(subdomain, str) and _SUBDOMAIN.fullmatch(subdomain):
            origin = f"https://{subdomain}.hf.space"
    if origin is None:
        raise ValueError("the Hub's Space answer names no usable host or subdomain")
    runtime = payload.get("runtime")
    stage = runtime.get("stage") if isinstance(runtime, dict) else None
    # No runtime block (older answers): assume it runs; the Space itself will tell.
    return SpaceInfo(origin, stage if isinstance(stage, str) and stage else "RUNNING")


class SpaceHosts:
    """Looks up Spaces on the Hub, wakes and waits for them; caches running hosts.

    One per provider instance: at most ``CACHE_SIZE`` entries, each kept ``CACHE_TTL``
    seconds; ``forget(space_id)`` drops one (after a failure at the Space). ``headers``
    go to the Hub; ``space_headers`` (default: the same) to a Space being woken.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        hub_url: str,
        headers: Callable[[], Mapping[str, str]],
        provider: str,
        space_headers: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self._http = http
        self._hub = hub_url.rstrip("/")
        self._headers = headers
        self._space_headers = space_headers or headers
        self._provider = provider
        self._cache: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def forget(self, space_id: str) -> None:
        """Ask the Hub again next time."""
        self._cache.pop(space_id, None)

    async def host(self, space_id: str, deadline: float | None) -> str:
        """The running Space's origin (``https://x.hf.space``), waking it if needed.

        Raises:
            llmrelay.errors.ModelNotFoundError: no such Space (or private, no token).
            llmrelay.errors.ProviderUnavailable: paused or broken (not retryable), or
                still asleep/building at the deadline (retryable).
            llmrelay.errors.ProtocolError: the Hub's answer is unusable.
        """
        cached = self._cache.get(space_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        limit = deadline if deadline is not None else now + DEFAULT_WAIT
        woken = False
        while True:
            info = await self.lookup(space_id)
            stage = info.stage
            if stage in USABLE:
                self._remember(space_id, info.host)
                return info.host
            if stage == "PAUSED":
                raise self._unavailable(
                    space_id, "is paused by its author (duplicate it to run it)", False
                )
            if stage in ASLEEP:
                if not woken:
                    await self._wake(info.host)
                    woken = True
            elif stage not in PENDING:
                raise self._unavailable(space_id, f"is not running (stage {stage})", False)
            if time.monotonic() + POLL_INTERVAL > limit:
                doing = "still waking up" if stage in ASLEEP else "still building"
                raise self._unavailable(space_id, f"is {doing} (stage {stage})", True)
            await anyio.sleep(POLL_INTERVAL)

    async def lookup(self, space_id: str) -> SpaceInfo:
        """One ``GET {hub}/api/spaces/{space_id}`` (no cache)."""
        url = f"{self._hub}/api/spaces/{space_id}"
        what = f"Hub lookup of Space {space_id}"
        async with self._http.stream("GET", url, headers=dict(self._headers())) as response:
            await raise_for_status(response, provider=self._provider, model=space_id, what=what)
            if response.status_code != 200:
                raise errors.ProtocolError(
                    f"{what}: unexpected HTTP {response.status_code}",
                    provider=self._provider,
                    model=space_id,
                    status_code=response.status_code,
                )
            payload = await read_json(
                response, provider=self._provider, model=space_id, limit=_INFO_LIMIT, what=what
            )
        try:
            return parse_space_info(payload)
        except ValueError as exc:
            raise errors.ProtocolError(
                f"{what}: {exc}", provider=self._provider, model=space_id
            ) from None

    async def _wake(self, host: str) -> None:
        """A request to the Space wakes it; its answer does not matter."""
        with anyio.move_on_after(_WAKE_TIMEOUT):
            try:
                headers = dict(self._space_headers())
                async with self._http.stream("GET", f"{host}/config", headers=headers):
                    pass
            except httpx.HTTPError:
                pass

    def _remember(self, space_id: str, host: str) -> None:
        self._cache[space_id] = (host, time.monotonic() + CACHE_TTL)
        self._cache.move_to_end(space_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def _unavailable(self, space_id: str, what: str, retryable: bool) -> errors.ProviderUnavailable:
        return errors.ProviderUnavailable(
            f"the Space {space_id} {what}",
            provider=self._provider,
            model=space_id,
            retryable=retryable,
        )
