"""The llmrelay error hierarchy.

::

    LLMRelayError
    ├── ConfigError
    │   ├── UnknownModelError
    │   ├── UnknownProviderError
    │   └── MissingCredentialsError(provider, env_var)
    ├── ProviderError(provider, model, status_code, body, retryable)
    │   ├── AuthenticationError        HTTP 401/403
    │   │   └── CaptchaRequired        the service wants a CAPTCHA token (retryable)
    │   ├── RateLimitError             HTTP 429 (retry_after)
    │   ├── ModelNotFoundError         HTTP 404
    │   ├── InvalidRequestError(param) HTTP 400/422, or a part it cannot honour
    │   │   ├── ContextLengthExceeded  the prompt does not fit the model (next candidate)
    │   │   └── ContentPolicyViolation the provider's safety system refused (chain stops)
    │   ├── ProviderUnavailable        HTTP 5xx, queue full, Space asleep
    │   ├── ProviderTimeout(kind)      connect / first_token / silence / read (idle) / stall / total
    │   ├── TransportError             connection refused, reset, dropped
    │   └── ProtocolError              malformed payload or stream, missing finish
    ├── StreamInterrupted(cause, text)  failed after content, and no rescue completed it
    ├── AllProvidersFailed(attempts)    every candidate failed or was skipped
    └── ClientClosed                    the client was closed (also a RuntimeError)

Every ``ProviderError`` names the provider and model, carries the HTTP status and the
(truncated) response body when there was one, and says whether retrying — or falling
back to another provider — can help (``retryable``). The original exception is the
``__cause__``. Secrets never appear in messages or reprs: the HTTP layer never puts
request headers into errors, and a ``ProviderError`` built while a client runs provider
code keeps that client's keys (``llmrelay._redact``: per client, never process-wide) and
replaces them with ``[REDACTED]`` in its message, body, ``str`` and ``repr`` — an
upstream that echoes the key back does not get it printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from . import _redact

__all__ = [
    "AllProvidersFailed",
    "Attempt",
    "AuthenticationError",
    "CaptchaRequired",
    "ClientClosed",
    "ConfigError",
    "ContentPolicyViolation",
    "ContextLengthExceeded",
    "InvalidOutputError",
    "InvalidRequestError",
    "LLMRelayError",
    "MissingCredentialsError",
    "ModelNotFoundError",
    "ProtocolError",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimitError",
    "StreamInterrupted",
    "TransportError",
    "UnknownModelError",
    "UnknownProviderError",
]

_BODY_LIMIT = 2000


class LLMRelayError(Exception):
    """Base of every error llmrelay raises."""


class ConfigError(LLMRelayError):
    """Bad configuration or arguments: nothing was sent.

    Attributes:
        param: the request field at fault (OpenAI's error ``param``: ``"tools"``,
            ``"messages[2].tool_call_id"``), or ``None``.
    """

    def __init__(self, *args: object, param: str | None = None) -> None:
        self.param = param
        super().__init__(*args)


class UnknownProviderError(ConfigError):
    """A provider name that is not registered.

    Attributes:
        provider: the name asked for.
        valid: the registered names.
    """

    def __init__(self, provider: str, valid: Sequence[str]) -> None:
        self.provider = provider
        self.valid = tuple(valid)
        super().__init__(f"unknown provider {provider!r}; valid providers: {', '.join(valid)}")


class UnknownModelError(ConfigError):
    """A model name no provider (or not the named provider) offers.

    The message names the closest few valid names (``difflib``'s similarity; all of them
    when there are at most ``SHOWN``) and where to see the rest.

    Attributes:
        model: the name asked for.
        provider: the provider asked, or ``None`` when the name was bare.
        valid: the valid names (models and aliases), all of them.
    """

    SHOWN = 5
    """Valid names a message shows at most."""

    def __init__(self, model: str, valid: Sequence[str], provider: str | None = None) -> None:
        self.model = model
        self.provider = provider
        self.valid = tuple(valid)
        where = f"provider {provider!r}" if provider else "any provider"
        if len(self.valid) <= self.SHOWN:
            listed = f"valid models: {', '.join(self.valid)}"
        else:
            import difflib  # only for this message (not at every `import llmrelay`)

            close = difflib.get_close_matches(model, self.valid, n=self.SHOWN, cutoff=0.3)
            listed = (f"closest: {', '.join(close)}; " if close else "") + (
                f"{len(self.valid)} valid names: `llmrelay models"
                + (f" {provider}`" if provider else "`")
                + " lists them (GET /v1/models on a server)"
            )
        super().__init__(f"unknown model {model!r} for {where}; {listed}")


class MissingCredentialsError(ConfigError):
    """A provider that needs a key was used without one.

    Attributes:
        provider: registry name.
        env_var: the environment variable the key is read from.
    """

    def __init__(self, provider: str, env_var: str | None) -> None:
        self.provider = provider
        self.env_var = env_var
        how = f"set {env_var}, " if env_var else ""
        super().__init__(
            f"{provider} needs an API key: {how}pass api_keys={{{provider!r}: ...}}, "
            f"or add it to the config file"
        )


class ProviderError(LLMRelayError):
    """A provider failed to answer.

    Attributes:
        provider: registry name of the provider.
        model: the provider's model id, when known.
        status_code: HTTP status, when the failure was an HTTP response.
        body: the response body (text, truncated to 2000 characters), when there was one.
        retryable: whether retrying or falling back to another provider can help.
        code: the provider's machine-readable error code (OpenAI's ``error.code``,
            TGI's ``error_type``), when it gave one: ``"context_length_exceeded"``,
            ``"content_policy_violation"``, ...
        tries: how many times llmrelay sent the request upstream before giving up with
            this error: its same-candidate retries and the fallback candidates tried
            (not the skipped ones), this attempt included. Set by the engine on the
            error that ends a chain (raised as is, or the ``__cause__`` of
            ``AllProvidersFailed``); 1 on any other.
    """

    default_retryable = False
    tries: int = 1

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str | None = None,
        status_code: int | None = None,
        body: str | None = None,
        retryable: bool | None = None,
        code: str | None = None,
    ) -> None:
        # the keys of the client whose provider code runs now: an upstream may echo one
        self._secrets = _redact.active()
        message = _redact.redact(message, self._secrets)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.body = _redact.redact(body, self._secrets)[:_BODY_LIMIT] if body is not None else None
        self.retryable = self.default_retryable if retryable is None else retryable
        self.code = code
        super().__init__(message)

    def __str__(self) -> str:
        who = f"{self.provider} ({self.model})" if self.model else self.provider
        status = f" [HTTP {self.status_code}]" if self.status_code is not None else ""
        return _redact.redact(f"{who}: {self.message}{status}", self._secrets)

    def __repr__(self) -> str:
        return _redact.redact(
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"model={self.model!r}, status_code={self.status_code!r}, "
            f"retryable={self.retryable!r})",
            self._secrets,
        )


class AuthenticationError(ProviderError):
    """The provider rejected the credentials (HTTP 401/403)."""


class CaptchaRequired(AuthenticationError):
    """The service wants a CAPTCHA token (e.g. reCAPTCHA) that only its web page can make.

    Retryable: another provider can answer, so fallback moves on.
    """

    default_retryable = True


class RateLimitError(ProviderError):
    """Too many requests (HTTP 429).

    Attributes:
        retry_after: seconds to wait, from the ``Retry-After`` header, when given.
    """

    default_retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ModelNotFoundError(ProviderError):
    """The model (or Space) does not exist at the provider (HTTP 404)."""


class InvalidRequestError(ProviderError):
    """The request is invalid (HTTP 400/422), or the provider cannot honour part of it.

    A part llmrelay knows a provider cannot honour (tools, a response format, an
    embedding's ``dimensions``, a parameter under ``strict``) is refused before anything
    is sent; ``param`` names it, as OpenAI's error object does.

    Attributes:
        param: the request field at fault (``"tools"``, ``"messages[2]"``,
            ``"dimensions"``, ...), or ``None``.
    """

    def __init__(self, message: str, *, param: str | None = None, **kwargs: object) -> None:
        self.param = param
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ContextLengthExceeded(InvalidRequestError):
    """The prompt (with the tokens asked for) does not fit the model's context window.

    OpenAI's ``context_length_exceeded`` code, TGI's "inputs tokens + max_new_tokens must
    be <= N" validation error, and the same from the Hugging Face APIs and Replicate.
    Not ``retryable`` (the same request never fits this model), but the chain moves to
    the next candidate, which may have a larger window; it is never resent unchanged to
    the same one.
    """


class ContentPolicyViolation(InvalidRequestError):
    """The provider's safety system refused the request (``content_policy_violation``).

    The chain stops: the same request is refused elsewhere too, and routing around a
    refusal is not llmrelay's call. The provider's ``code`` is kept (``code``).
    """


class ProviderUnavailable(ProviderError):
    """The provider is down, overloaded, asleep or its queue is full (HTTP 5xx)."""

    default_retryable = True


class ProviderTimeout(ProviderError):
    """A timeout expired.

    Attributes:
        kind: ``"connect"``, ``"first_token"`` (no content within the first-token
            timeout), ``"read"`` (idle: no bytes for that long), ``"write"``, ``"total"``
            (the whole stream's deadline), or ``""`` when the provider did not say.
    """

    default_retryable = True

    def __init__(self, message: str, *, kind: str = "", **kwargs: object) -> None:
        self.kind = kind
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class TransportError(ProviderError):
    """The connection failed: refused, reset or dropped mid-response."""

    default_retryable = True


class ProtocolError(ProviderError):
    """The provider sent something that does not follow its protocol."""


class InvalidOutputError(ProtocolError):
    """An emulated tool call or structured answer the model got wrong (tool emulation).

    With tool emulation (``llmrelay._emulation``) the model is asked, in its prompt, to
    answer with a tool-call block or with JSON; an answer that does not parse, names no
    offered tool, breaks ``tool_choice`` or ``parallel_tool_calls``, or whose arguments
    (or JSON) fail the JSON Schema is this error, never text passed off as a call. It is
    not retried (asking again costs a request and may fail the same way); a caller may.

    Attributes:
        param: what was wrong: ``"tool_calls"`` or ``"response_format"``.
        body: the model's whole answer (bounded like every ``body``), to inspect.
    """

    def __init__(self, message: str, *, param: str, **kwargs: object) -> None:
        self.param = param
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class StreamInterrupted(LLMRelayError):
    """The stream failed after text had already been yielded; no fallback is possible.

    Attributes:
        cause: the underlying ``ProviderError`` (also the ``__cause__``).
        text: the text yielded before the failure.
    """

    def __init__(self, cause: ProviderError, text: str) -> None:
        self.cause = cause
        self.text = text
        super().__init__(f"stream interrupted after {len(text)} characters: {cause}")

    @property
    def provider(self) -> str:
        """Registry name of the provider whose stream broke."""
        return self.cause.provider

    @property
    def model(self) -> str | None:
        """The provider's model id."""
        return self.cause.model


@dataclass(frozen=True, slots=True)
class Attempt:
    """One candidate of a model reference, and what became of it.

    Attributes:
        provider: registry name.
        model: the provider's model id.
        outcome: ``"ok"`` (it answered), ``"failed"``, ``"skipped"`` (not tried:
            missing key), ``"interrupted"`` (its stream broke after content; a rescue
            was tried), ``"rescued"`` (it completed an interrupted answer: ``message``
            says how, continuation or regeneration) or ``"diverged"`` (a regenerated
            answer that did not begin with the text already delivered: not used).
        error_type: the error's class name (``"ProviderUnavailable"``), or ``None``.
        message: the error text or the reason for the skip, or ``None``.
        error: the error itself, when there was one (not part of equality).
    """

    provider: str
    model: str
    outcome: Literal["ok", "failed", "skipped", "interrupted", "rescued", "diverged"]
    error_type: str | None = None
    message: str | None = None
    error: LLMRelayError | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Attempt):
            return NotImplemented
        return (self.provider, self.model, self.outcome, self.error_type, self.message) == (
            other.provider,
            other.model,
            other.outcome,
            other.error_type,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.provider, self.model, self.outcome, self.error_type, self.message))

    def to_dict(self) -> dict[str, str | None]:
        """``{"provider", "model", "outcome", "error_type", "message"}`` (JSON-ready)."""
        return {
            "provider": self.provider,
            "model": self.model,
            "outcome": self.outcome,
            "error_type": self.error_type,
            "message": self.message,
        }


class AllProvidersFailed(LLMRelayError):
    """Every candidate of a model reference failed or was skipped.

    Attributes:
        attempts: each candidate in the order tried: provider, model, outcome,
            error type and message (``Attempt``).
        errors: ``(provider, error)`` of the candidates that raised, in order.
    """

    def __init__(self, attempts: Sequence[Attempt]) -> None:
        self.attempts = list(attempts)
        self.errors: list[tuple[str, LLMRelayError]] = [
            (a.provider, a.error) for a in self.attempts if a.error is not None
        ]
        lines = "; ".join(
            f"{a.provider}:{a.model} {a.outcome}"
            + (f" ({a.error_type}: {a.message})" if a.error_type else f" ({a.message})")
            for a in self.attempts
        )
        super().__init__(f"all {len(self.attempts)} candidates failed: {lines}")


class ClientClosed(LLMRelayError, RuntimeError):
    """The client was closed before or during the call."""
