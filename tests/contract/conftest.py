"""Each registered provider paired with its wire-level fake, behind one scripting seam.

A ``ContractFake`` scripts the fake in the terms the contract needs (``ok``,
``http_error``, ``malformed``, ``disconnect``, ``hold_open``); adding a provider means
adding its entry to ``FAKES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from tests.fakes._server import serve
from tests.fakes.gradio_space import FakeSpace, SpaceScript


class ContractFake(Protocol):
    app: Any
    expected_text: str

    def ok(self) -> None: ...
    def http_error(self, status: int) -> None: ...
    def malformed(self) -> None: ...
    def disconnect(self) -> None: ...
    def hold_open(self) -> None: ...
    def wait_closed(self, timeout: float) -> bool: ...


@dataclass
class SpaceContractFake:
    """``hf_spaces`` over the fake Gradio Space."""

    fake: FakeSpace

    @property
    def app(self) -> Any:
        return self.fake.app

    @property
    def expected_text(self) -> str:
        import inspect

        return inspect.cleandoc("".join(SpaceScript().chunks))

    def ok(self) -> None:
        self.fake.script = SpaceScript()

    def http_error(self, status: int) -> None:
        self.fake.script = SpaceScript(
            join_status=status, join_body={"detail": f"scripted {status}"}
        )

    def malformed(self) -> None:
        self.fake.script = SpaceScript(mode="malformed", fail_after=0)

    def disconnect(self) -> None:
        self.fake.script = SpaceScript(mode="disconnect", fail_after=3)

    def hold_open(self) -> None:
        self.fake.script = SpaceScript(hold_open=True)

    def wait_closed(self, timeout: float) -> bool:
        return self.fake.wait_streams_closed(timeout)


FAKES: dict[str, Callable[[], ContractFake]] = {
    "hf_spaces": lambda: SpaceContractFake(FakeSpace()),
}


@dataclass
class Served:
    name: str
    fake: ContractFake
    url: str


@pytest.fixture(scope="module", params=sorted(FAKES))
def _served(request: pytest.FixtureRequest) -> Iterator[Served]:
    fake = FAKES[request.param]()
    with serve(fake.app) as url:
        yield Served(request.param, fake, url)


@pytest.fixture
def served(_served: Served) -> Iterator[Served]:
    _served.fake.ok()
    yield _served
    assert _served.fake.wait_closed(5), "a connection was left open"
