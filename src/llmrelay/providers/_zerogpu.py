"""ZeroGPU failures of a Hugging Face Space, told from the ``gr.Error`` text.

A Space on ZeroGPU hardware runs its GPU functions through the ``spaces`` package
(``spaces/zero/client.py``, https://pypi.org/project/spaces/), which fails a call with
a ``gr.Error`` before the function runs. The text is the only record of the cause (the
event's ``title`` is Gradio's generic "Error"), so it is read here, and only here:

* ``"You have exceeded your GPU quota (46s left vs. 60s requested). Sign-up on Hugging
  Face to get more quotas or retry in 0:09:48"`` (older wording: ``"(60s requested vs.
  56s left)"``, ``"Try again in 2:05:11"``) -> ``RateLimitError``, ``retry_after`` the
  wait it names (a ``datetime.timedelta`` as text, ``[D day[s], ]H:MM:SS[.ffffff]``),
  else the seconds missing (requested − left) as a lower bound, else unknown;
* ``"No GPU is currently available"`` (also ``"… for you after 60s"`` after queueing)
  and "GPU unavailable" -> ``ProviderUnavailable`` (retryable: another Space may serve).
"""

from __future__ import annotations

import re

from .. import errors

__all__ = ["quota_wait", "space_failure"]

_QUOTA = re.compile(r"exceeded your (?:free )?(?:ZeroGPU|GPU) quota", re.IGNORECASE)
_NO_GPU = re.compile(r"No GPU is currently available|GPU (?:is )?unavailable", re.IGNORECASE)
_WAIT = re.compile(
    r"(?:retry|try again) in (?:(\d{1,6}) days?, )?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)",
    re.IGNORECASE,
)
_LEFT_REQUESTED = re.compile(r"(\d+(?:\.\d+)?)\s*s left vs\.? (\d+(?:\.\d+)?)\s*s requested")
_REQUESTED_LEFT = re.compile(r"(\d+(?:\.\d+)?)\s*s requested vs\.? (\d+(?:\.\d+)?)\s*s left")


def quota_wait(message: str) -> float | None:
    """Seconds to wait before the quota allows the call again, from ``message``.

    The explicit wait (``retry in H:MM:SS``) when given; else ``requested - left``
    seconds (at least that much quota must come back); else ``None``.
    """
    wait = _WAIT.search(message)
    if wait is not None:
        days, hours, minutes, seconds = wait.groups()
        return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    found = _LEFT_REQUESTED.search(message)
    if found is not None:
        left, requested = float(found.group(1)), float(found.group(2))
    else:
        found = _REQUESTED_LEFT.search(message)
        if found is None:
            return None
        requested, left = float(found.group(1)), float(found.group(2))
    return max(requested - left, 0.0)


def space_failure(
    error: str, text: str, *, provider: str, model: str, body: str
) -> errors.ProviderError | None:
    """The typed error of a ZeroGPU failure whose ``gr.Error`` text is ``error``.

    Args:
        error: the Space's error text (unquoted).
        text: the message of the error to raise.
        provider: registry name, for the error.
        model: the Space id, for the error.
        body: the failed event's output, for the error.

    Returns:
        ``RateLimitError`` (quota), ``ProviderUnavailable`` (no GPU), or ``None``.
    """
    if _QUOTA.search(error):
        return errors.RateLimitError(
            text, retry_after=quota_wait(error), provider=provider, model=model, body=body
        )
    if _NO_GPU.search(error):
        return errors.ProviderUnavailable(text, provider=provider, model=model, body=body)
    return None
