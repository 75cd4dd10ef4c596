"""llmrelay: many hosted LLM services behind one typed, async-first, streaming interface.

Quick start::

    import llmrelay

    with llmrelay.Client() as client:
        for event in client.stream("Hello!", model="hf_spaces:qwen-2-72b"):
            if isinstance(event, str):
                print(event, end="", flush=True)

Providers are imported lazily, on first use; ``import llmrelay`` loads only the core.
"""

from __future__ import annotations

from ._client import AsyncClient, Completion, ProviderDescription
from ._http import Timeouts
from ._sync import Client
from ._version import __version__
from .errors import (
    AllProvidersFailed,
    AuthenticationError,
    ConfigError,
    InvalidRequestError,
    LLMRelayError,
    MissingCredentialsError,
    ModelNotFoundError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    StreamInterrupted,
    TransportError,
    UnknownModelError,
    UnknownProviderError,
)
from .types import (
    ChatRequest,
    ConversationState,
    Event,
    FinishReason,
    ImageRequest,
    ImageResult,
    Message,
    ProviderInfo,
    Reasoning,
    Usage,
    event_to_dict,
)

__all__ = [
    "AllProvidersFailed",
    "AsyncClient",
    "AuthenticationError",
    "ChatRequest",
    "Client",
    "Completion",
    "ConfigError",
    "ConversationState",
    "Event",
    "FinishReason",
    "ImageRequest",
    "ImageResult",
    "InvalidRequestError",
    "LLMRelayError",
    "Message",
    "MissingCredentialsError",
    "ModelNotFoundError",
    "ProtocolError",
    "ProviderDescription",
    "ProviderError",
    "ProviderInfo",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimitError",
    "Reasoning",
    "StreamInterrupted",
    "Timeouts",
    "TransportError",
    "UnknownModelError",
    "UnknownProviderError",
    "Usage",
    "__version__",
    "event_to_dict",
]
