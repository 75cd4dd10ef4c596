"""``huggingface`` for the provider contract: the TGI inference fake and the hub fake on one app."""

from __future__ import annotations

from typing import Any

from tests.fakes._streaming import Fault, combine
from tests.fakes.hub import FakeHub, HubScript
from tests.fakes.tgi import FakeTGI, TGIScript

__all__ = ["HuggingFaceContractFake"]


class HuggingFaceContractFake:
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

    def ok(self) -> None:
        self._script()

    def http_error(self, status: int, retry_after: float | None = None) -> None:
        retry = None if retry_after is None else f"{retry_after:g}"
        self._script(Fault("http_error", status=status, retry_after=retry))

    def malformed(self) -> None:
        self._script(Fault("malformed", after=0))

    def disconnect(self) -> None:
        self._script(Fault("disconnect", after=3))

    def hold_open(self) -> None:
        self._script(Fault("hold_open", after=2))

    def slow_first_byte(self, seconds: float) -> None:
        self._script(Fault(first_byte_delay=seconds))

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
