"""``hf_spaces``'s ContractFake: the fake Gradio Space scripted in the contract's terms.

Moved here from ``tests/contract/conftest.py`` (``SpaceContractFake``) and completed with
``http_error(status, retry_after)``, ``slow_first_byte``, ``state_seen`` and
``prepare_client_kwargs``. The Space is stateless (history is flattened into the prompt),
so ``state_seen()`` is always ``None``.
"""

from __future__ import annotations

import inspect
from typing import Any

from tests.fakes.gradio_space import FakeSpace, SpaceScript

__all__ = ["SpaceContractFake"]


class SpaceContractFake:
    """``hf_spaces`` over the fake Gradio Space (a Gradio 5 Qwen-shaped Blocks app)."""

    provider = "hf_spaces"

    def __init__(self, fake: FakeSpace | None = None) -> None:
        self.fake = fake if fake is not None else FakeSpace()

    @property
    def app(self) -> Any:
        return self.fake.app

    @property
    def expected_text(self) -> str:
        # Gradio's Chatbot passes each message through inspect.cleandoc
        return inspect.cleandoc("".join(SpaceScript().chunks))

    def ok(self) -> None:
        self.fake.script = SpaceScript()

    def http_error(self, status: int, retry_after: float | None = None) -> None:
        self.fake.script = SpaceScript(
            join_status=status, join_body={"detail": f"scripted {status}"},
            join_retry_after=retry_after,
        )  # fmt: skip

    def malformed(self) -> None:
        self.fake.script = SpaceScript(mode="malformed", fail_after=0)

    def disconnect(self) -> None:
        self.fake.script = SpaceScript(mode="disconnect", fail_after=3)

    def hold_open(self) -> None:
        self.fake.script = SpaceScript(hold_open=True)

    def heartbeats_only(self, interval: float = 0.05) -> None:
        """A stuck queue: the join succeeds, then only heartbeats (first-token timeout)."""
        self.fake.script = SpaceScript(mode="heartbeats_only", heartbeat_interval=interval)

    def slow_first_byte(self, seconds: float) -> None:
        self.fake.script = SpaceScript(first_event_delay=seconds)

    def wait_closed(self, timeout: float) -> bool:
        return self.fake.wait_streams_closed(timeout)

    def state_seen(self) -> Any:
        return None

    def prepare_client_kwargs(self, url: str) -> dict[str, Any]:
        return {"base_urls": {"hf_spaces": url}}
