"""What a failed attempt means for the next one: retry the same candidate, move on, or stop.

The policy of llmrelay's fallback (``llmrelay._engine``), after the methodology the
failoverbench project publishes (https://github.com/failoverbench/failoverbench,
``METHODOLOGY.md``) and what a careful HTTP client does:

==========================================  ==========  ==================================
failure                                     decision    why
==========================================  ==========  ==================================
``RateLimitError`` (429)                    ``retry``   after ``Retry-After`` when given
                                                        (at most ``RETRY_AFTER_CAP``; a
                                                        longer wait fails over at once),
                                                        else back-off with jitter
``ProviderUnavailable`` (5xx, queue full)   ``retry``   transient: back-off with jitter
``TransportError`` (reset, refused, cut)    ``retry``   the request was not answered
``ProviderTimeout``                         ``next``    a silent or slow service stays so:
                                                        retrying only multiplies the wait
``ContextLengthExceeded``                   ``next``    the same request never fits this
                                                        model; another may be larger
``ContentPolicyViolation``                  ``stop``    refused anywhere; not routed round
other retryable errors (a CAPTCHA)          ``next``
other errors (400, 401, 404, protocol)      ``stop``    the request or the setup is wrong
==========================================  ==========  ==================================

A retry waits ``backoff(n)``: ``BASE_DELAY * 2**(n-1)`` scaled by a random factor in
[0.5, 1] ("equal jitter"), at most ``MAX_DELAY``, or the server's ``Retry-After``; it is
skipped (the chain moves on) when the wait would pass the deadline.

The error ending a chain carries ``tries`` (``tries(attempts)``: every request sent
upstream for it, retries and fallback candidates included), so that whoever passes it on
can tell a client whether asking again at once would only repeat what llmrelay just did
(``llmrelay serve``'s ``x-should-retry``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Literal

from . import errors

__all__ = [
    "BASE_DELAY",
    "MAX_DELAY",
    "RETRY_AFTER_CAP",
    "Decision",
    "backoff",
    "decide",
    "tries",
]

BASE_DELAY = 0.5
"""Seconds before the first retry (before jitter)."""
MAX_DELAY = 8.0
"""The longest back-off between two attempts of one candidate, in seconds."""
RETRY_AFTER_CAP = 10.0
"""The longest ``Retry-After`` honoured by waiting; a longer one fails over at once."""

Decision = Literal["retry", "next", "stop"]


def decide(exc: errors.ProviderError) -> Decision:
    """What to do after ``exc``: retry the same candidate, try the next one, or stop."""
    if isinstance(exc, errors.ContentPolicyViolation):
        return "stop"
    if isinstance(exc, errors.ContextLengthExceeded):
        return "next"
    if isinstance(exc, errors.ProviderTimeout):
        return "next"
    if isinstance(exc, errors.RateLimitError | errors.ProviderUnavailable | errors.TransportError):
        return "retry" if exc.retryable else "stop"
    return "next" if exc.retryable else "stop"


def backoff(
    retry: int, exc: errors.ProviderError, rng: random.Random | None = None
) -> float | None:
    """Seconds to wait before retry number ``retry`` (1-based), or ``None``: do not retry.

    ``Retry-After`` (``RateLimitError.retry_after``) is honoured up to
    ``RETRY_AFTER_CAP``; beyond it ``None`` (the chain moves on rather than wait).
    """
    after: object = getattr(exc, "retry_after", None)
    if isinstance(after, int | float) and after >= 0:
        return float(after) if after <= RETRY_AFTER_CAP else None
    delay: float = min(MAX_DELAY, BASE_DELAY * 2.0 ** (retry - 1))
    jitter: float = (rng or random).uniform(0.5, 1.0)
    return delay * jitter


def tries(attempts: Iterable[errors.Attempt]) -> int:
    """How many of ``attempts`` were sent to a service (all but the ``"skipped"`` ones)."""
    return sum(1 for attempt in attempts if attempt.outcome != "skipped")
