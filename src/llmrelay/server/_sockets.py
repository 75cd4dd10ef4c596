"""Socket limits for ``llmrelay serve``: no connection is held for ever, none past a cap.

uvicorn closes a connection idle *between* requests (``timeout_keep_alive``), refuses a
request head larger than ``h11_max_incomplete_event_size`` (h11 only), and answers 503 past
``limit_concurrency`` — but only once a whole request head has arrived. A socket that sends
nothing, or one header line every few seconds (slowloris), was held for ever, and enough of
them took every file descriptor (https://www.uvicorn.org/settings/#timeouts,
https://github.com/encode/uvicorn/blob/master/uvicorn/protocols/http/httptools_impl.py).
``SocketLimits`` and ``uvicorn_options`` add, around uvicorn's own protocol classes
(httptools when installed, else h11):

* ``head_timeout``: a request's head (request line and headers) must be complete within
  this many seconds of the connection opening, or of its first byte after the previous
  answer; otherwise the connection is closed (after a 408 when part of a head came).
* ``max_head_bytes``: a longer head gets 431 and the connection is closed (also given to
  h11 as ``h11_max_incomplete_event_size``).
* ``max_connections``: a connection beyond this many open ones (per worker process) gets
  a 503 and is closed at once, so descriptors stay for upstream connections and the log;
  default half the process's ``nofile`` limit less 64 (480 at 1024).
* ``keep_alive``: uvicorn's ``timeout_keep_alive``.

The body's own deadline (``ServerConfig.body_timeout``, 408) is kept by ``Guard``, where
the body is read.

Each request's scope also gets the extension ``BATCH_WRITES``
(``scope["extensions"]["llmrelay.batch_writes"]``): a context manager under which the
messages the app sends go out in one socket write when it ends (uvicorn writes each
message at once, so a streamed response's head and first frame, ready together, took two
writes, and the client was woken for the head alone). ``EventStreamResponse`` sends its
head and first frame under it; an app that does not know it sends as before. And the
extension ``ON_DISCONNECT``: called with a callback, it has the callback run when the
connection is lost (at once if it is already), and returns a function that forgets it;
``EventStreamResponse`` learns of a client leaving through it instead of a task waiting
on ``receive`` for ``http.disconnect``. And, when the request's whole body came with its
head (uvicorn had parsed the end of the message before the app started), the extension
``BODY_RECEIVED`` (``True``): ``Guard`` then keeps no deadline for a body that is there
(a timer per request, 5-8 µs, that could never fire: ``receive`` returns at once).

The protocol subclasses read uvicorn attributes that are not documented API
(``connections``, ``cycle``, ``cycle.response_complete``, ``cycle.more_body``, ``cycle.scope``,
``cycle.transport``, ``transport``), and stand in for uvicorn's ``connection_made`` (it
sets ``transport``, ``flow``, ``server``, ``client`` and ``scheme``; this one takes the
addresses the event loop read at accept, ``get_extra_info("sockname")`` and
``"peername"``, instead of asking the socket again): uvicorn is pinned to 0.55.x, and
``tests/server/test_sockets.py`` and ``tests/server/test_inbound_cost.py`` fail when they
change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import is_ssl

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover (httptools comes with uvicorn[standard])
    HttpToolsProtocol = H11Protocol  # type: ignore[misc,assignment]

__all__ = [
    "BATCH_WRITES",
    "BODY_RECEIVED",
    "ON_DISCONNECT",
    "SocketLimits",
    "default_max_connections",
    "uvicorn_options",
]

BATCH_WRITES = "llmrelay.batch_writes"
"""The scope extension whose value, called, is a context manager: what the app sends
inside it goes out in one socket write at its end (see the module docstring)."""
ON_DISCONNECT = "llmrelay.on_disconnect"
"""The scope extension whose value, called with a callback, runs it when the connection
is lost and returns a function that forgets it (see the module docstring)."""
BODY_RECEIVED = "llmrelay.body_received"
"""The scope extension set (``True``) when the request's whole body had been received
before its app started: no ``receive`` of the body waits (see the module docstring)."""


def default_max_connections() -> int:
    """Half the process's open-file limit (``RLIMIT_NOFILE``, soft) less 64, at least 16.

    Every streamed answer holds a client socket and an upstream one; the 64 are kept for
    files, the log database and Redis.
    """
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError):  # pragma: no cover (Windows)
        soft = 1024
    if soft < 0:  # RLIM_INFINITY
        soft = 65536
    return max(16, (soft - 64) // 2)


@dataclass(frozen=True)
class SocketLimits:
    """Per-connection bounds of ``llmrelay serve``; see the module docstring.

    Attributes:
        head_timeout: seconds for a request's head to arrive.
        keep_alive: seconds an idle connection is kept between requests.
        max_connections: open connections per worker process; more are refused (503).
        max_head_bytes: largest request head (request line and headers), in bytes.
    """

    head_timeout: float = 10.0
    keep_alive: float = 5.0
    max_connections: int = field(default_factory=default_max_connections)
    max_head_bytes: int = 64 * 1024


def _response(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\ncontent-length: " + str(len(message)).encode() + b"\r\n\r\n"
    ) + message


_BUSY = _response(b"503 Service Unavailable", b"too many connections\n")
_SLOW = _response(b"408 Request Timeout", b"request head not received in time\n")
_LARGE = _response(b"431 Request Header Fields Too Large", b"request head too large\n")


class _Held:
    """A request's transport while a batch is open: writes and a close wait for its end."""

    __slots__ = ("closed", "parts", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed or self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


@contextlib.contextmanager
def _batched(ref: weakref.ref[Any]) -> Iterator[None]:
    """Hold the writes of ``ref``'s uvicorn ``RequestResponseCycle`` and write them as one.

    ``ref`` is a weak reference: the cycle's scope holds this extension, and a strong one
    would make every request's cycle, scope and protocol garbage that only the cyclic
    collector frees (see ``_Bounded``).
    """
    cycle = ref()
    if cycle is None or isinstance(cycle.transport, _Held):  # gone; nested: the outer writes
        yield
        return
    transport = cycle.transport
    held = cycle.transport = _Held(transport)
    try:
        yield
    finally:
        cycle.transport = transport
        if held.parts and not transport.is_closing():
            transport.write(held.parts[0] if len(held.parts) == 1 else b"".join(held.parts))
        if held.closed:
            transport.close()


class _Bounded(asyncio.Protocol):
    """Mixin over a uvicorn HTTP protocol class: the head deadline, head size and cap."""

    connections: set[Any]
    cycle: Any
    transport: asyncio.Transport
    flow: Any
    server: Any
    client: Any
    scheme: Any
    logger: Any

    def __init__(self, *args: Any, limits: SocketLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._cycle_seen: Any = None
        self._on_lost: list[Callable[[], object]] = []
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvicorn's own ``connection_made`` (0.55: the same in both protocol classes), but
        # with the addresses the event loop read when it accepted the connection: uvicorn
        # asks the socket again (``get_extra_info("socket")``: under uvloop four system
        # calls and two socket objects per connection, 12.9 against 2.5 µs)
        self.connections.add(self)
        self.transport = transport = cast(asyncio.Transport, transport)
        self.flow = FlowControl(transport)
        self.server = _address(transport.get_extra_info("sockname"), local=True)
        self.client = _address(transport.get_extra_info("peername"))
        self.scheme = "https" if is_ssl(transport) else "http"
        if self.logger.level <= TRACE_LOG_LEVEL:
            prefix = "{}:{} - ".format(*self.client) if self.client else ""
            self.logger.log(TRACE_LOG_LEVEL, "%sHTTP connection made", prefix)
        if len(self.connections) > self._limits.max_connections:
            self._refuse(_BUSY)
            return
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._start_head_timer()  # the first bytes of the next request
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle is not self._cycle_seen:
            self._cycle_seen = cycle  # a new request's head is complete (its app not started)
            extensions = cycle.scope.setdefault("extensions", {})
            # weak references: the scope must not hold its cycle or protocol (a reference
            # cycle per request: more garbage collections, whose pauses delay answers)
            extensions[BATCH_WRITES] = functools.partial(_batched, weakref.ref(cycle))
            extensions[ON_DISCONNECT] = functools.partial(_when_lost, weakref.ref(self))
            if not cycle.more_body:  # the end of the message was parsed: the body is here
                extensions[BODY_RECEIVED] = True
            self._stop_head_timer()
            return
        if self._head_timer is None:
            return
        self._head_bytes += len(data)
        if self._head_bytes > self._limits.max_head_bytes:
            self._refuse(_LARGE)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)
        self._lost = True
        callbacks, self._on_lost = self._on_lost, []
        for callback in callbacks:
            callback()

    def _when_lost(self, callback: Callable[[], object]) -> Callable[[], None]:
        """``ON_DISCONNECT``: run ``callback`` when the connection is lost; the forgetter."""
        if self._lost:
            callback()
            return _nothing
        self._on_lost.append(callback)

        def forget() -> None:
            on_lost = self._on_lost  # (a new, empty list once the connection is lost)
            if callback in on_lost:
                on_lost.remove(callback)

        return forget

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_bytes = 0
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(self._limits.head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._refuse(_SLOW if self._head_bytes else b"")

    def _refuse(self, response: bytes) -> None:
        self._stop_head_timer()
        if self.transport.is_closing():
            return
        if response:
            self.transport.write(response)
        self.transport.close()


def _nothing() -> None:
    pass


def _address(info: Any, local: bool = False) -> Any:
    """``(host, port)`` of a socket address, as uvicorn gives it.

    As ``get_local_addr`` and ``get_remote_addr`` make it from the socket: an IP
    address's host and port, a Unix socket's path with ``None`` (the local side only),
    else ``None``.
    """
    if isinstance(info, tuple | list) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    if local and isinstance(info, str):
        return (info, None)
    return None


def _when_lost(ref: weakref.ref[_Bounded], callback: Callable[[], object]) -> Callable[[], None]:
    """``ON_DISCONNECT`` of the protocol ``ref`` refers to (gone: the connection was lost)."""
    protocol = ref()
    if protocol is None:
        callback()
        return _nothing
    return protocol._when_lost(callback)


def _protocol_class() -> type[_Bounded]:
    """The httptools protocol when httptools is installed (as ``http="auto"``), else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:  # pragma: no cover (httptools comes with uvicorn[standard])
        return BoundedH11Protocol
    return BoundedHttpToolsProtocol


def protocol_factory(limits: SocketLimits) -> Callable[..., asyncio.Protocol]:
    """What uvicorn's ``http`` setting takes: the bounded protocol class with ``limits``.

    A ``functools.partial`` of a module-level class, so ``--workers`` processes (spawned,
    the config pickled) get it too.
    """
    return functools.partial(_protocol_class(), limits=limits)


def uvicorn_options(limits: SocketLimits, trusted_proxies: Sequence[str] = ()) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` applying ``limits``.

    Args:
        limits: the socket bounds.
        trusted_proxies: addresses or networks (``10.0.0.0/8``) whose ``X-Forwarded-For``
            names the client (uvicorn's proxy headers); empty: the header is ignored
            (uvicorn's own default trusts 127.0.0.1, which would let a local client pick
            its rate-limit bucket).
    """
    return {
        "http": protocol_factory(limits),
        "timeout_keep_alive": limits.keep_alive,
        "h11_max_incomplete_event_size": limits.max_head_bytes,
        "proxy_headers": bool(trusted_proxies),
        "forwarded_allow_ips": list(trusted_proxies) if trusted_proxies else None,
    }


class BoundedH11Protocol(_Bounded, H11Protocol):
    """uvicorn's h11 protocol with ``SocketLimits``."""


class BoundedHttpToolsProtocol(_Bounded, HttpToolsProtocol):
    """uvicorn's httptools protocol with ``SocketLimits``."""
