"""In-process scripted providers registered through the public seam
``llmrelay.AsyncClient(providers=[...])``; the server under test serves them.

Each provider plays ``SCRIPTS[name]`` (a list of steps: an event is yielded, an exception
instance is raised, ``Pause(seconds)`` paces the stream, ``Busy(seconds)`` blocks the loop,
``HOLD`` waits until the stream is closed, ``Gate()`` waits until the test opens it). What each stream received and whether it was closed is recorded in
``LOG[name]`` (thread-safe: the server runs in another thread).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from llmrelay.providers import Capability, Provider
from llmrelay.types import (
    ChatRequest,
    ConversationState,
    Event,
    FinishReason,
    ImageRequest,
    ImageResult,
    Usage,
)

# 1x1 transparent PNG
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Busy:
    """Step: keep the event loop busy for ``seconds`` without yielding to it (as parsing
    a large upstream read does)."""

    seconds: float


HOLD = object()
"""Step: keep the stream open until the consumer closes it."""


@dataclass(frozen=True)
class Gate:
    """Step: wait until the test calls ``open()`` (from its own thread), at most 30 s."""

    event: threading.Event = field(default_factory=threading.Event)

    def open(self) -> None:
        self.event.set()

    async def wait(self) -> None:
        deadline = time.monotonic() + 30
        while not self.event.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110 (set from another thread)
            await asyncio.sleep(0.01)


@dataclass
class StreamLog:
    requests: list[ChatRequest] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_closed(self, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.opened and self.closed == self.opened, timeout)

    def wait_opened(self, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.opened > self.closed, timeout)


SCRIPTS: dict[str, list[Any]] = {}
LOG: dict[str, StreamLog] = {}


def ok_script(*pieces: str, usage: bool = True) -> list[Any]:
    steps: list[Any] = list(pieces or ("Hello", ", world", "!"))
    if usage:
        steps.append(Usage(prompt_tokens=5, completion_tokens=3, total_tokens=8))
    steps.append(FinishReason("stop"))
    return steps


def reset() -> None:
    SCRIPTS.clear()
    LOG.clear()
    for cls in (*ALL, Seer):
        SCRIPTS[cls.name] = ok_script()
        LOG[cls.name] = StreamLog()


# the tool-calling engine's capabilities, where it has them: the scripted providers play
# tool calls and structured answers (tests/server/test_responses_api.py and friends)
_AGENTIC = frozenset(c for c in Capability if c.value in ("tools", "structured_output"))


class _Scripted(Provider):
    label: ClassVar[str] = "Scripted"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CHAT, Capability.STREAM, *_AGENTIC}
    )
    endpoints: ClassVar[Any] = MappingProxyType({"base_url": "https://scripted.invalid"})
    default_model: ClassVar[str] = "m"
    models: ClassVar[tuple[str, ...]] = ("m", "long")
    aliases: ClassVar[Any] = MappingProxyType({"short": "m"})
    parameters: ClassVar[frozenset[str]] = frozenset(
        {"temperature", "max_tokens", "top_p", "stop", "seed"}
    )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        log = LOG[self.name]
        with log.cond:
            log.requests.append(request)
            log.opened += 1
            log.cond.notify_all()
        try:
            for step in SCRIPTS[self.name]:
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, Pause):
                    await asyncio.sleep(step.seconds)
                elif isinstance(step, Busy):
                    time.sleep(step.seconds)  # noqa: ASYNC251 (blocks the loop on purpose)
                elif step is HOLD:
                    await asyncio.Event().wait()
                elif isinstance(step, Gate):
                    await step.wait()
                else:
                    yield step
        finally:
            with log.cond:
                log.closed += 1
                log.cond.notify_all()


class Alpha(_Scripted):
    name: ClassVar[str] = "alpha"
    label: ClassVar[str] = "Alpha"


class Beta(_Scripted):
    name: ClassVar[str] = "beta"
    label: ClassVar[str] = "Beta"


class Stateful(_Scripted):
    """Keeps a conversation on its side: each answer carries its turn number as state."""

    name: ClassVar[str] = "stateful"
    label: ClassVar[str] = "Stateful"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CHAT, Capability.STREAM, Capability.SERVER_STATE}
    )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        turn = 1 if request.state is None else int(request.state.data["turn"]) + 1
        async for event in super().stream(request):
            if isinstance(event, FinishReason):
                yield ConversationState(self.name, {"turn": turn, "parent": f"msg-{turn}"})
            yield event


class Painter(_Scripted):
    """Generates images (a 1x1 PNG)."""

    name: ClassVar[str] = "painter"
    label: ClassVar[str] = "Painter"
    models: ClassVar[tuple[str, ...]] = ("m", "canvas")
    image_models: ClassVar[tuple[str, ...]] = ("canvas",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CHAT, Capability.STREAM, Capability.IMAGES}
    )

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        return ImageResult(data=PNG, mime_type="image/png", seed=request.seed, width=1, height=1)


class Seer(_Scripted):
    """Takes images in messages (``Capability.VISION``); not in ``ALL``: a test adds it."""

    name: ClassVar[str] = "seer"
    label: ClassVar[str] = "Seer"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CHAT, Capability.STREAM, Capability.VISION}
    )


ALL: tuple[type[_Scripted], ...] = (Alpha, Beta, Stateful, Painter)
reset()
