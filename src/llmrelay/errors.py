"""The llmrelay error hierarchy.

::

    LLMRelayError
    ├── ConfigError
    │   ├── UnknownModelError
    │   ├── UnknownProviderError
    │   └── MissingCredentialsError(provider, env_var)
    ├── ProviderError(provider, model, status_code, body, retryable)
    │   ├── AuthenticationError        HTTP 401/403
    │   ├── RateLimitError             HTTP 429 (retry_after)
    │   ├── ModelNotFoundError         HTTP 404
    │   ├── InvalidRequestError        HTTP 400/422
    │   ├── ProviderUnavailable        HTTP 5xx, queue full, Space asleep
    │   ├── ProviderTimeout            connect/read/total timeout
    │   ├── TransportError             connection refused, reset, dropped
    │   └── ProtocolError              malformed payload or stream
    ├── StreamInterrupted(cause, text)  failed after text was yielded: no fallback
    └── AllProvidersFailed(errors=[(provider, error), ...])

Every ``ProviderError`` names the provider and model, carries the HTTP status and the
(truncated) response body when there was one, and says whether retrying — or falling
back to another provider — can help (``retryable``). The original exception is the
``__cause__``. Secrets never appear in messages or reprs: the HTTP layer never puts
request headers into errors.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AllProvidersFailed",
    "AuthenticationError",
    "ConfigError",
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
    """Bad configuration or arguments: nothing was sent."""


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

    Attributes:
        model: the name asked for.
        provider: the provider asked, or ``None`` when the name was bare.
        valid: the valid names (models and aliases).
    """

    def __init__(self, model: str, valid: Sequence[str], provider: str | None = None) -> None:
        self.model = model
        self.provider = provider
        self.valid = tuple(valid)
        where = f"provider {provider!r}" if provider else "any provider"
        super().__init__(f"unknown model {model!r} for {where}; valid models: {', '.join(valid)}")


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
    """

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str | None = None,
        status_code: int | None = None,
        body: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.body = body[:_BODY_LIMIT] if body is not None else None
        self.retryable = self.default_retryable if retryable is None else retryable
        super().__init__(message)

    def __str__(self) -> str:
        who = f"{self.provider} ({self.model})" if self.model else self.provider
        status = f" [HTTP {self.status_code}]" if self.status_code is not None else ""
        return f"{who}: {self.message}{status}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"model={self.model!r}, status_code={self.status_code!r}, "
            f"retryable={self.retryable!r})"
        )


class AuthenticationError(ProviderError):
    """The provider rejected the credentials (HTTP 401/403)."""


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
    """The provider rejected the request as invalid (HTTP 400/422)."""


class ProviderUnavailable(ProviderError):
    """The provider is down, overloaded, asleep or its queue is full (HTTP 5xx)."""

    default_retryable = True


class ProviderTimeout(ProviderError):
    """A connect, read (idle) or total timeout expired."""

    default_retryable = True


class TransportError(ProviderError):
    """The connection failed: refused, reset or dropped mid-response."""

    default_retryable = True


class ProtocolError(ProviderError):
    """The provider sent something that does not follow its protocol."""


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


class AllProvidersFailed(LLMRelayError):
    """Every candidate of a fallback chain failed.

    Attributes:
        errors: ``(provider, error)`` pairs, in the order they were tried.
    """

    def __init__(self, errors: Sequence[tuple[str, LLMRelayError]]) -> None:
        self.errors = list(errors)
        lines = "; ".join(f"{name}: {error}" for name, error in self.errors)
        super().__init__(f"all {len(self.errors)} providers failed: {lines}")
