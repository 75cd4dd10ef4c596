"""The keys a client sends, kept out of everything it produces (errors, reprs, log lines).

Each client owns a ``Secrets`` (its engine adds every key it gives a provider). While the
client runs provider code (opening a stream, reading it, closing it) it makes its
secrets *active* in a context variable (https://docs.python.org/3/library/contextvars.html),
so two clients in one process, even in one event loop, never see each other's keys and
nothing is kept process-wide. Every ``llmrelay.errors.ProviderError`` built meanwhile
keeps the active secrets and replaces each with ``[REDACTED]`` in its message, body,
``str`` and ``repr`` (an upstream that echoes the key back does not get it printed), and
so do the log lines that show such an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar, Token

__all__ = ["REDACTED", "Secrets", "active", "redact"]

REDACTED = "[REDACTED]"
MIN_LENGTH = 8
"""Values shorter than this are not secrets to redact (they would redact ordinary words)."""

_ACTIVE: ContextVar[frozenset[str]] = ContextVar("llmrelay_secrets", default=frozenset())


def active() -> frozenset[str]:
    """The secrets active in this context (empty outside any client's work)."""
    return _ACTIVE.get()


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` replaced by ``[REDACTED]``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class Secrets:
    """The keys one client sends (never shown: its ``repr`` counts them).

    Args:
        values: keys to start with; values shorter than 8 characters are ignored.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        self._values: frozenset[str] = frozenset()
        for value in values:
            self.add(value)

    def __repr__(self) -> str:
        return f"<Secrets: {len(self._values)}>"

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def add(self, value: str | None) -> None:
        """Keep ``value`` (a key this client sends) from now on."""
        if value and len(value) >= MIN_LENGTH and value not in self._values:
            self._values = self._values | {value}

    def activate(self) -> Token[frozenset[str]] | None:
        """Make these secrets active in this context (with any already active).

        Returns:
            The token ``deactivate`` takes back (in the same context); ``None`` when
            there is nothing to activate (a client without keys pays nothing).
        """
        values = self._values
        if not values:
            return None
        current = _ACTIVE.get()
        if current:
            values = current if values <= current else current | values
        return _ACTIVE.set(values)

    @staticmethod
    def deactivate(token: Token[frozenset[str]] | None) -> None:
        """Undo the ``activate`` that gave ``token``."""
        if token is not None:
            _ACTIVE.reset(token)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """These secrets are active inside the ``with`` block."""
        token = self.activate()
        try:
            yield
        finally:
            self.deactivate(token)
