"""An OpenAI-compatible provider from configuration (``kind = "openai"``) for the contract.

Not a built-in: ``prepare_client_kwargs`` injects the configured class through
``AsyncClient(providers=[...])``; ``NAME`` is its registry name.
"""

from __future__ import annotations

from typing import Any

from llmrelay.providers._openai_compat import OpenAICompatible
from tests.contract._fault_modes import FaultModes
from tests.fakes._streaming import Fault
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript

__all__ = ["NAME", "OpenAICompatContractFake"]

NAME = "local"


class OpenAICompatContractFake(FaultModes):
    """Scripts the fake OpenAI-compatible server in the contract's terms."""

    def __init__(self) -> None:
        self.fake = FakeOpenAI()
        self.app: Any = self.fake.app

    @property
    def expected_text(self) -> str:
        return self.fake.expected_text

    def _script(self, fault: Fault | None = None) -> None:
        self.fake.script = OpenAIScript(fault=fault or Fault())
        self.fake.recorder.requests.clear()

    def wait_closed(self, timeout: float) -> bool:
        return self.fake.wait_closed(timeout)

    def state_seen(self) -> Any:
        """Stateless: the whole conversation is sent every turn."""
        return None

    def prepare_client_kwargs(self, url: str) -> dict[str, Any]:
        table = {"kind": "openai", "base_url": f"{url}/v1", "models": ["fake-model"]}
        return {
            "providers": [OpenAICompatible.from_config(NAME, table)],
            "api_keys": {NAME: "test-key"},
        }
