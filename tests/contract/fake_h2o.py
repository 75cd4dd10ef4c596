"""``h2o`` over the wire-level chat-ui fake, in the contract's terms (a ``ContractFake``)."""

from __future__ import annotations

from typing import Any

from tests.fakes.h2o import DEFAULT_TOKENS, FakeH2o, H2oScript

__all__ = ["H2oContractFake"]


class H2oContractFake:
    """Scripts ``FakeH2o`` for the contract suite (``tests/contract/conftest.py``).

    HTTP errors are scripted on ``POST /conversation`` (after the session was opened).
    """

    name = "h2o"

    def __init__(self) -> None:
        self.fake = FakeH2o()

    @property
    def app(self) -> Any:
        return self.fake.app

    @property
    def expected_text(self) -> str:
        return "".join(DEFAULT_TOKENS)

    def ok(self) -> None:
        self.fake.script = H2oScript()

    def http_error(self, status: int, retry_after: float | None = None) -> None:
        self.fake.script = H2oScript(
            mode="http_error",
            step="conversation",
            status=status,
            error_body={"message": f"scripted {status}"},
            retry_after=retry_after,
        )

    def malformed(self) -> None:
        self.fake.script = H2oScript(mode="malformed", fault_after=0)

    def disconnect(self) -> None:
        self.fake.script = H2oScript(mode="disconnect", fault_after=4)

    def hold_open(self) -> None:
        self.fake.script = H2oScript(mode="hold_open", fault_after=4)

    def slow_first_byte(self, seconds: float) -> None:
        self.fake.script = H2oScript(first_byte_delay=seconds)

    def wait_closed(self, timeout: float) -> bool:
        return self.fake.wait_closed(timeout)

    def state_seen(self) -> Any:
        """The conversation id the last message POST continued (``None``: a new one)."""
        posts = self.fake.of("POST", "/conversation/")
        if not posts or not posts[-1].continued:
            return None
        return posts[-1].path.removeprefix("/conversation/")

    def prepare_client_kwargs(self, url: str) -> dict[str, Any]:
        return {"base_urls": {"h2o": url}}
