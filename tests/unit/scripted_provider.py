"""In-process providers with scripted event sequences, for the engine's own tests.

They are registered under test-only names by the ``scripted`` fixture; each instance
plays ``SCRIPTS[name]``: a list of events, where an exception instance is raised.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import MappingProxyType
from typing import Any, ClassVar

from llmrelay.providers import Provider
from llmrelay.types import ChatRequest, Event

SCRIPTS: dict[str, list[Any]] = {}
CLOSED: list[str] = []


class _Scripted(Provider):
    endpoints: ClassVar[Any] = MappingProxyType({"base_url": "https://scripted.invalid"})
    default_model: ClassVar[str] = "shared-model"
    models: ClassVar[tuple[str, ...]] = ("shared-model",)
    aliases: ClassVar[Any] = MappingProxyType({"shared": "shared-model"})

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        try:
            for item in SCRIPTS[self.name]:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            CLOSED.append(self.name)


class First(_Scripted):
    """Scripted provider ``first``."""

    name: ClassVar[str] = "first"
    label: ClassVar[str] = "First"


class Second(_Scripted):
    """Scripted provider ``second``."""

    name: ClassVar[str] = "second"
    label: ClassVar[str] = "Second"
