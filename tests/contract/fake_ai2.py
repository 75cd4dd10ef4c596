"""``ai2`` over the wire-level olmo-api fake, in the contract's terms (a ``ContractFake``)."""

from __future__ import annotations

from typing import Any

from tests.fakes.ai2 import DEFAULT_CHUNKS, Ai2Script, FakeAi2

__all__ = ["Ai2ContractFake"]


class Ai2ContractFake:
    """Scripts ``FakeAi2`` for the contract suite (``tests/contract/conftest.py``)."""

    name = "ai2"

    def __init__(self) -> None:
        self.fake = FakeAi2()

    @property
    def app(self) -> Any:
        return self.fake.app

    @property
    def expected_text(self) -> str:
        return "".join(DEFAULT_CHUNKS)

    def ok(self) -> None:
        self.fake.script = Ai2Script()

    def http_error(self, status: int, retry_after: float | None = None) -> None:
        self.fake.script = Ai2Script(
            mode="http_error",
            status=status,
            error_message=f"scripted {status}",
            retry_after=retry_after,
        )

    def malformed(self) -> None:
        self.fake.script = Ai2Script(mode="malformed", fault_after=0)

    def disconnect(self) -> None:
        self.fake.script = Ai2Script(mode="disconnect", fault_after=4)

    def hold_open(self) -> None:
        self.fake.script = Ai2Script(mode="hold_open", fault_after=4)

    def slow_first_byte(self, seconds: float) -> None:
        self.fake.script = Ai2Script(first_byte_delay=seconds)

    def wait_closed(self, timeout: float) -> bool:
        return self.fake.wait_closed(timeout)

    def state_seen(self) -> Any:
        """The ``parent`` message id the last request carried (``None``: a new thread)."""
        return self.fake.received[-1].parent if self.fake.received else None

    def prepare_client_kwargs(self, url: str) -> dict[str, Any]:
        return {"base_urls": {"ai2": url}}
