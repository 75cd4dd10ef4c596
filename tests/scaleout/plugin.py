"""In-process fake providers for ``llmrelay serve`` subprocesses (two-worker test, load).

They reach a server process through the ``llmrelay.providers`` entry-point group: the
tests write a ``*.dist-info`` folder naming them onto the subprocess's ``PYTHONPATH``
(``plugin_site``), so the real ``llmrelay serve`` command runs unchanged.

* ``remembering``: answers ``turn N`` where N is one more than the turn in the
  ``ConversationState`` it got back (1 without one), and returns ``{"turn": N}``.
* ``flaky``: always fails with a retryable ``ProviderUnavailable``.
* ``steady``: answers ``steady answer``.
* ``paced``: for the load driver: answers ``<prompt>#0 <prompt>#1 ...`` with
  ``LLMRELAY_TEST_TOKENS`` tokens (default 20), one each ``LLMRELAY_TEST_PACE`` seconds
  (default 0.02); counts started, finished and cancelled streams into the JSON file
  ``LLMRELAY_TEST_COUNTERS`` (when set).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from types import MappingProxyType

from llmrelay import errors
from llmrelay.providers import Provider
from llmrelay.types import ChatRequest, ConversationState, Event, FinishReason

ENTRY_POINTS = {
    "remembering": "tests.scaleout.plugin:Remembering",
    "flaky": "tests.scaleout.plugin:Flaky",
    "steady": "tests.scaleout.plugin:Steady",
    "paced": "tests.scaleout.plugin:Paced",
}


def plugin_site(directory: Path) -> Path:
    """Write a dist-info naming these providers into ``directory``; put it on PYTHONPATH."""
    info = directory / "llmrelay_scaleout_fakes-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: llmrelay-scaleout-fakes\nVersion: 0\n"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in ENTRY_POINTS.items())
    (info / "entry_points.txt").write_text("[llmrelay.providers]\n" + lines)
    return directory


class _Fake(Provider):
    label = "Fake"
    endpoints = MappingProxyType({"base_url": "https://fake.invalid"})
    default_model = "m"
    models = ("m",)


class Remembering(_Fake):
    name = "remembering"
    label = "Remembering"

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        turn = 1
        if request.state is not None:
            turn = int(request.state.data.get("turn", 0)) + 1
        yield f"turn {turn}"
        yield ConversationState(self.name, {"turn": turn})
        yield FinishReason("stop")


class Flaky(_Fake):
    name = "flaky"
    label = "Flaky"

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        raise errors.ProviderUnavailable("flaky is down", provider=self.name, model="m")
        yield ""  # pragma: no cover (makes this a generator)


class Steady(_Fake):
    name = "steady"
    label = "Steady"

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        yield "steady answer"
        yield FinishReason("stop")


class _Counters:
    def __init__(self) -> None:
        self.started = self.finished = self.cancelled = 0
        path = os.environ.get("LLMRELAY_TEST_COUNTERS")
        self.path = Path(path) if path else None

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {"started": self.started, "finished": self.finished, "cancelled": self.cancelled}
            )
        )
        tmp.replace(self.path)


COUNTERS = _Counters()


class Paced(_Fake):
    name = "paced"
    label = "Paced"

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        tokens = int(os.environ.get("LLMRELAY_TEST_TOKENS", "20"))
        pace = float(os.environ.get("LLMRELAY_TEST_PACE", "0.02"))
        content = request.messages[-1].content if request.messages else ""
        prompt = content if isinstance(content, str) else ""
        COUNTERS.started += 1
        COUNTERS.save()
        done = False
        try:
            for i in range(tokens):
                if i:
                    await asyncio.sleep(pace)
                yield f"{prompt}#{i} "
            yield FinishReason("stop")
            done = True
        finally:
            if done:
                COUNTERS.finished += 1
            else:
                COUNTERS.cancelled += 1
            COUNTERS.save()
