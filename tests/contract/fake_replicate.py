"""``replicate`` over the fake Replicate (``tests.fakes.replicate``), as a ContractFake.

Register in ``tests/contract/conftest.py``::

    from tests.contract.fake_replicate import ReplicateContractFake
    FAKES["replicate"] = ReplicateContractFake
"""

from __future__ import annotations

from typing import Any

from tests.fakes.replicate import DEFAULT_TOKENS, FakeReplicate, ReplicateScript

__all__ = ["ReplicateContractFake"]

KEY = "r8_contract"


class ReplicateContractFake:
    """Scripts ``FakeReplicate`` in the terms of the provider contract."""

    def __init__(self) -> None:
        self.fake = FakeReplicate()

    @property
    def app(self) -> Any:
        """The ASGI app to serve."""
        return self.fake.app

    @property
    def expected_text(self) -> str:
        """The whole answer of an ``ok()`` run (nchan-framed tokens joined exactly)."""
        return "".join(DEFAULT_TOKENS)

    def ok(self) -> None:
        self.fake.reset(ReplicateScript())

    def http_error(self, status: int, retry_after: float | None = None) -> None:
        """The creation request answers ``status`` with a problem+json body."""
        self.fake.reset(
            ReplicateScript(
                mode="http_error",
                error_status=status,
                retry_after=None if retry_after is None else str(int(retry_after)),
            )
        )

    def malformed(self) -> None:
        """The creation answer is 201 with a body that is not JSON."""
        self.fake.reset(ReplicateScript(mode="malformed"))

    def disconnect(self) -> None:
        """The stream drops (unterminated chunked body) after 4 tokens."""
        self.fake.reset(ReplicateScript(mode="disconnect", fail_after=4))

    def hold_open(self) -> None:
        """3 tokens, then keep-alive comments until the client goes (or cancels)."""
        self.fake.reset(ReplicateScript(mode="hold_open", fail_after=3))

    def slow_first_byte(self, seconds: float) -> None:
        """The stream's first byte comes after ``seconds``."""
        self.fake.reset(ReplicateScript(first_byte_delay=seconds))

    def wait_closed(self, timeout: float) -> bool:
        """True once no prediction stream is open (within ``timeout`` seconds)."""
        return self.fake.wait_streams_closed(timeout)

    def state_seen(self) -> Any:
        """Replicate keeps no conversation state: always ``None``."""
        return None

    def prepare_client_kwargs(self, url: str) -> dict[str, Any]:
        """``AsyncClient`` keyword arguments pointing ``replicate`` at the fake."""
        return {"base_urls": {"replicate": f"{url}/v1"}, "api_keys": {"replicate": KEY}}
