"""In-process providers with scripted event sequences, registered through the public seam.

``scripted("first", [...])`` returns ``(ProviderClass, Script)``; pass the class to
``AsyncClient(providers=[...])``. Script items: events are yielded, an exception instance
is raised, ``HANG`` waits until cancelled, ``Sleep(s)`` sleeps. The ``Script`` records
every request the provider received and how many of its streams were closed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import anyio

from llmrelay.providers import Auth, AuthMode, Capability, Option, Provider
from llmrelay.types import ChatRequest, Event, ImageRequest, ImageResult

HANG = object()


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass
class Script:
    events: list[Any] = field(default_factory=list)
    received: list[ChatRequest] = field(default_factory=list)
    closed: int = 0
    started: int = 0
    images: list[ImageRequest] = field(default_factory=list)

    @property
    def open(self) -> int:
        return self.started - self.closed


def scripted(
    name: str,
    events: Iterable[Any] = (),
    *,
    models: tuple[str, ...] = ("shared-model",),
    aliases: dict[str, str] | None = None,
    key_required: bool = False,
    parameters: Iterable[str] = ("temperature", "max_tokens"),
    options: dict[str, Option] | None = None,
    images: bool = False,
    label: str | None = None,
) -> tuple[type[Provider], Script]:
    script = Script(list(events))
    caps = {Capability.CHAT, Capability.STREAM}
    if images:
        caps.add(Capability.IMAGES)

    class Scripted(Provider):
        async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
            script.received.append(request)
            script.started += 1
            try:
                for item in list(script.events):
                    if isinstance(item, BaseException):
                        raise item
                    if item is HANG:
                        await anyio.sleep_forever()
                    elif isinstance(item, Sleep):
                        await anyio.sleep(item.seconds)
                    else:
                        yield item
            finally:
                script.closed += 1

        async def generate_image(self, request: ImageRequest) -> ImageResult:
            script.images.append(request)
            for item in script.events:
                if isinstance(item, BaseException):
                    raise item
            return ImageResult(b"\x89PNG\r\n\x1a\n" + name.encode(), "image/png", seed=request.seed)

    attrs: dict[str, Any] = {
        "name": name,
        "label": label or name.title(),
        "endpoints": MappingProxyType({"base_url": f"https://{name}.invalid"}),
        "default_model": models[0],
        "models": models,
        "aliases": MappingProxyType(aliases or {"shared": "shared-model"}),
        "auth": Auth(AuthMode.REQUIRED, f"{name.upper()}_TOKEN") if key_required else Auth(),
        "capabilities": frozenset(caps),
        "parameters": frozenset(parameters),
        "options": MappingProxyType(options or {}),
    }
    for key, value in attrs.items():
        setattr(Scripted, key, value)
    Scripted.__name__ = Scripted.__qualname__ = f"Scripted_{name}"
    return Scripted, script
