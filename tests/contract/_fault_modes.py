"""The contract's fault modes for fakes built on ``tests.fakes._streaming.Fault``."""

from __future__ import annotations

from tests.fakes._streaming import Fault


class FaultModes:
    """``ok``/``http_error``/``malformed``/``disconnect``/``hold_open``/``slow_first_byte``
    expressed as ``Fault`` scripts; a subclass defines ``_script(fault)``."""

    def _script(self, fault: Fault | None = None) -> None:
        raise NotImplementedError

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
