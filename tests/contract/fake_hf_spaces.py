"""The contract's view of ``hf_spaces`` over the fake Gradio Space."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gradio_space import FakeSpace, SpaceScript


@dataclass
class SpaceContractFake:
    """``hf_spaces`` over the fake Space (stateless: it keeps no conversation)."""

    fake: FakeSpace = field(default_factory=FakeSpace)

    @property
    def app(self) -> Any:
        return self.fake.app

    @property
    def expected_text(self) -> str:
        return inspect.cleandoc("".join(SpaceScript().chunks))

    def prepare_client_kwargs(self, url: str) -> dict[str, Any]:
        return {"base_urls": {"hf_spaces": url}, "api_keys": {"hf_spaces": "test-key"}}

    def ok(self) -> None:
        self.fake.script = SpaceScript()

    def http_error(self, status: int, retry_after: float | None = None) -> None:
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        self.fake.script = SpaceScript(
            join_status=status, join_body={"detail": f"scripted {status}"}, join_headers=headers
        )

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
        return None  # a Space keeps no conversation state
