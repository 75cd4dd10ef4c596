"""Each registered provider paired with its wire-level fake, behind one scripting seam.

A ``ContractFake`` (one per provider, in ``fake_<name>.py``) scripts its fake in the terms
the contract needs; adding a provider means adding its entry to ``FAKES``. Every test
here runs once per HTTP transport (``tests/transports.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from tests.contract.fake_ai2 import Ai2ContractFake
from tests.contract.fake_h2o import H2oContractFake
from tests.contract.fake_hf_spaces import SpaceContractFake
from tests.contract.fake_huggingface import HuggingFaceContractFake
from tests.contract.fake_replicate import ReplicateContractFake
from tests.fakes._server import serve
from tests.transports import transport, transport_setting

__all__ = ["FAKES", "ContractFake", "Served", "transport", "transport_setting"]


class ContractFake(Protocol):
    app: Any
    expected_text: str

    def prepare_client_kwargs(self, url: str) -> dict[str, Any]: ...
    def ok(self) -> None: ...
    def http_error(self, status: int, retry_after: float | None = None) -> None: ...
    def malformed(self) -> None: ...
    def disconnect(self) -> None: ...
    def hold_open(self) -> None: ...
    def slow_first_byte(self, seconds: float) -> None: ...
    def wait_closed(self, timeout: float) -> bool: ...
    def state_seen(self) -> Any: ...


FAKES: dict[str, Callable[[], ContractFake]] = {
    "hf_spaces": SpaceContractFake,
    "huggingface": HuggingFaceContractFake,
    "ai2": Ai2ContractFake,
    "h2o": H2oContractFake,
    "replicate": ReplicateContractFake,
}


@dataclass
class Served:
    name: str
    fake: ContractFake
    url: str

    def client_kwargs(self, **extra: Any) -> dict[str, Any]:
        return {**self.fake.prepare_client_kwargs(self.url), **extra}


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
