"""``huggingface`` for the provider contract: the TGI inference fake and the hub fake on one app."""

from __future__ import annotations

from typing import Any

from tests.contract._fault_modes import FaultModes
from tests.fakes._streaming import Fault, combine
from tests.fakes.hub import FakeHub, HubScript
from tests.fakes.tgi import FakeTGI, TGIScript

__all__ = ["HuggingFaceContractFake"]


class HuggingFaceContractFake(FaultModes):
    """Scripts the fake Inference API (the hub always answers) in the contract's terms."""

    def __init__(self) -> None:
        self.tgi = FakeTGI()
        self.hub = FakeHub()
        self.app: Any = combine(self.tgi, self.hub)

    @property
    def expected_text(self) -> str:
        return self.tgi.expected_text

    def _script(self, fault: Fault | None = None) -> None:
        self.tgi.script = TGIScript(fault=fault or Fault())
        self.hub.script = HubScript()
        self.tgi.recorder.requests.clear()
        self.hub.recorder.requests.clear()

    def wait_closed(self, timeout: float) -> bool:
        return self.tgi.wait_closed(timeout)

    def state_seen(self) -> Any:
        """The provider is stateless: it sends the whole conversation every turn."""
        return None

    def prepare_client_kwargs(self, url: str) -> dict[str, Any]:
        return {
            "endpoints": {"huggingface": {"base_url": url, "hub_url": url}},
            "api_keys": {"huggingface": "test-key"},
        }
