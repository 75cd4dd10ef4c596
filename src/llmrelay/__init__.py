"""llmrelay: many hosted LLM services behind one typed, async-first, streaming interface.

Quick start::

    import llmrelay

    with llmrelay.Client() as client:
        for event in client.stream("Hello!", model="hf_spaces:qwen-2-72b"):
            if isinstance(event, str):
                print(event, end="", flush=True)

``import llmrelay`` loads only types (a few request and result types on first use),
errors and settings; the client classes load on
first use of ``AsyncClient`` or ``Client``. Constructing a client reads and checks its
settings; httpx, the transport and the engine load at its first request (or listing),
and each provider when it is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._conversation import Conversation
from ._settings import Timeouts
from ._version import __version__
from .errors import (
    AllProvidersFailed,
    Attempt,
    AuthenticationError,
    CaptchaRequired,
    ClientClosed,
    ConfigError,
    ContentPolicyViolation,
    ContextLengthExceeded,
    InvalidOutputError,
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
    ImagePart,
    ImageResult,
    Message,
    ProviderInfo,
    Queued,
    Reasoning,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    event_to_dict,
)

if TYPE_CHECKING:
    from ._client import AsyncClient
    from ._messages import AsyncMessages, AsyncMessageStream
    from ._openai import (
        ChatCompletion,
        ChatCompletionChunk,
        ImagesResponse,
        Model,
        ModelList,
    )
    from ._openai_embeddings import CreateEmbeddingResponse, Embedding
    from ._params import (
        ChatParams,
        CompletionCreateParams,
        ImageParams,
        ImagesGenerateParams,
    )
    from ._resources import AsyncChatCompletionStream
    from ._response_store import (
        DatabaseResponseStore,
        MemoryResponseStore,
        ResponseStore,
        StoredResponse,
    )
    from ._responses import AsyncResponses, AsyncResponseStream
    from ._shape_models import (
        AnthropicMessage,
        MessageStreamEvent,
        Response,
        ResponseStreamEvent,
    )
    from ._stream import AsyncChatStream
    from ._sync import ChatCompletionStream, ChatStream, Client
    from ._sync_shapes import MessageStream, ResponseStream
    from ._wire.sse import AsyncSSEStream
    from .types import (  # loaded on first use (llmrelay.types.__getattr__)
        Completion,
        EmbeddingRequest,
        EmbeddingResult,
        ImageRequest,
        ProviderDescription,
    )

__all__ = [
    "AllProvidersFailed",
    "AnthropicMessage",
    "AsyncChatCompletionStream",
    "AsyncChatStream",
    "AsyncClient",
    "AsyncMessageStream",
    "AsyncMessages",
    "AsyncResponseStream",
    "AsyncResponses",
    "AsyncSSEStream",
    "Attempt",
    "AuthenticationError",
    "CaptchaRequired",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionStream",
    "ChatParams",
    "ChatRequest",
    "ChatStream",
    "Client",
    "ClientClosed",
    "Completion",
    "CompletionCreateParams",
    "ConfigError",
    "ContentPolicyViolation",
    "ContextLengthExceeded",
    "Conversation",
    "ConversationState",
    "CreateEmbeddingResponse",
    "DatabaseResponseStore",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResult",
    "Event",
    "FinishReason",
    "ImageParams",
    "ImagePart",
    "ImageRequest",
    "ImageResult",
    "ImagesGenerateParams",
    "ImagesResponse",
    "InvalidOutputError",
    "InvalidRequestError",
    "LLMRelayError",
    "MemoryResponseStore",
    "Message",
    "MessageStream",
    "MessageStreamEvent",
    "MissingCredentialsError",
    "Model",
    "ModelList",
    "ModelNotFoundError",
    "ProtocolError",
    "ProviderDescription",
    "ProviderError",
    "ProviderInfo",
    "ProviderTimeout",
    "ProviderUnavailable",
    "Queued",
    "RateLimitError",
    "Reasoning",
    "Response",
    "ResponseFormat",
    "ResponseStore",
    "ResponseStream",
    "ResponseStreamEvent",
    "StoredResponse",
    "StreamInterrupted",
    "Timeouts",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "TransportError",
    "UnknownModelError",
    "UnknownProviderError",
    "Usage",
    "__version__",
    "event_to_dict",
]

_LAZY = {
    "AsyncClient": "._client",
    "Client": "._sync",
    "ChatStream": "._sync",
    "ChatCompletionStream": "._sync",
    "AsyncChatStream": "._stream",
    "AsyncChatCompletionStream": "._resources",
    "AsyncResponses": "._responses",
    "AsyncResponseStream": "._responses",
    "AsyncMessages": "._messages",
    "AsyncMessageStream": "._messages",
    "ResponseStream": "._sync_shapes",
    "MessageStream": "._sync_shapes",
    "ResponseStore": "._response_store",
    "StoredResponse": "._response_store",
    "MemoryResponseStore": "._response_store",
    "DatabaseResponseStore": "._response_store",
    "Response": "._shape_models",
    "ResponseStreamEvent": "._shape_models",
    "AnthropicMessage": "._shape_models",
    "MessageStreamEvent": "._shape_models",
    "AsyncSSEStream": "._wire.sse",
    "ChatCompletion": "._openai",
    "ChatCompletionChunk": "._openai",
    "ImagesResponse": "._openai",
    "Model": "._openai",
    "ModelList": "._openai",
    "ChatParams": "._params",
    "CompletionCreateParams": "._params",
    "ImageParams": "._params",
    "ImagesGenerateParams": "._params",
    "CreateEmbeddingResponse": "._openai_embeddings",
    "Embedding": "._openai_embeddings",
    # llmrelay.types' classes that a chat needs not before its first token
    "Completion": ".types",
    "EmbeddingRequest": ".types",
    "EmbeddingResult": ".types",
    "ImageRequest": ".types",
    "ProviderDescription": ".types",
}


def __getattr__(name: str) -> Any:
    """Load the clients on first use (keeps ``import llmrelay`` light)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'llmrelay' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
