"""Typed messages, requests and the event stream.

A chat stream is an async iterator of ``Event`` values:

* ``str`` — a text delta: the next piece of the answer, exactly as generated
  (never trimmed; a whitespace-only or repeated delta is real text);
* ``ProviderInfo`` — always first: which provider and model answer;
* ``Reasoning`` — a piece of the model's visible reasoning, when a provider exposes it;
* ``Usage`` — token counts, when the provider reports them;
* ``ConversationState`` — provider-side state to carry to the next turn;
* ``Queued`` — the request waits in the service's queue (position and estimate), before
  any content;
* ``ImageResult`` — a generated image;
* ``FinishReason`` — exactly one per stream, always the last event.

All event classes are frozen, slotted dataclasses: cheap to create on the token path,
hashable and safe to share between threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from .errors import Attempt

__all__ = [
    "ChatRequest",
    "Completion",
    "ConversationState",
    "EmbeddingInput",
    "EmbeddingRequest",
    "EmbeddingResult",
    "Event",
    "FinishReason",
    "ImageRequest",
    "ImageResult",
    "Message",
    "MessagesInput",
    "ProviderDescription",
    "ProviderInfo",
    "Queued",
    "Reasoning",
    "Role",
    "Usage",
    "event_to_dict",
    "normalize_messages",
]

Role: TypeAlias = Literal["system", "user", "assistant"]
_ROLES: frozenset[str] = frozenset({"system", "user", "assistant"})
_INPUT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message, in the OpenAI chat-completions shape.

    Attributes:
        role: ``"system"``, ``"user"`` or ``"assistant"`` (OpenAI's ``"developer"`` is
            accepted on input and stored as ``"system"``).
        content: the message text (text parts of a list-of-parts content, joined).
        images: the URLs (``https://`` or ``data:``) of the message's ``image_url``
            parts, in order; a provider without ``Capability.VISION`` refuses them.

    Raises:
        ValueError: on an unknown role or a non-string content.
    """

    role: Role
    content: str
    images: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(
                f"message role must be one of system, developer, user, assistant; got {self.role!r}"
            )
        if not isinstance(self.content, str):
            raise ValueError(f"message content must be a string; got {type(self.content).__name__}")


MessagesInput: TypeAlias = (
    "str | Message | Mapping[str, Any] | Iterable[Message | Mapping[str, Any]]"
)
"""What the clients accept as ``messages``: a prompt string (one user message), one
``Message``, one ``{"role", "content"}`` mapping, or an iterable of those."""


def _content_of(index: int, content: Any) -> tuple[str, tuple[str, ...]]:
    """Text and image URLs of an OpenAI ``content``: a string or a list of parts."""
    if isinstance(content, str):
        return content, ()
    if content is None:
        return "", ()
    if not isinstance(content, (list, tuple)):
        raise ValueError(
            f"messages[{index}].content must be a string or a list of parts; "
            f"got {type(content).__name__}"
        )
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        where = f"messages[{index}].content[{j}]"
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, Mapping):
            raise ValueError(f"{where} must be a content part object")
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if not isinstance(url, str) or not url:
                raise ValueError(f"{where} (image_url) has no url")
            images.append(url)
        else:
            raise ValueError(f"{where} has an unsupported type {kind!r} (text or image_url)")
    return "".join(texts), tuple(images)


def normalize_messages(messages: Any) -> tuple[Message, ...]:
    """Turn any accepted ``messages`` input into a tuple of ``Message``.

    Args:
        messages: a prompt string, a ``Message``, a ``{"role", "content"}`` mapping or an
            iterable of messages/mappings (OpenAI chat-completions shape: roles
            ``system``, ``developer`` (stored as system), ``user``, ``assistant``;
            ``content`` a string or a list of ``text`` / ``image_url`` parts, text
            parts joined; other keys such as ``name`` are ignored).

    Returns:
        A non-empty tuple of ``Message``.

    Raises:
        ValueError: if the input is empty or an item is not a valid message; the error
            names the item's index and what is wrong.
    """
    if isinstance(messages, str):
        return (Message("user", messages),)
    if isinstance(messages, (Message, Mapping)):
        messages = [messages]
    out: list[Message] = []
    for index, item in enumerate(messages):
        if isinstance(item, Message):
            out.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ValueError(
                f"messages[{index}] must be a Message or a mapping with 'role' and "
                f"'content'; got {type(item).__name__}"
            )
        missing = [key for key in ("role", "content") if key not in item]
        if missing:
            raise ValueError(f"messages[{index}] lacks {', '.join(map(repr, missing))}")
        role = item["role"]
        if not isinstance(role, str) or role not in _INPUT_ROLES:
            raise ValueError(
                f"messages[{index}].role must be one of system, developer, user, assistant; "
                f"got {role!r:.40}"
            )
        text, images = _content_of(index, item["content"])
        out.append(Message(_INPUT_ROLES[role], text, images))  # type: ignore[arg-type]
    if not out:
        raise ValueError("messages must contain at least one message")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What a provider receives: messages plus generation parameters.

    Parameters the provider does not declare (``Provider.parameters``) have already
    been dropped by the engine (``None`` / ``()``).

    Attributes:
        messages: the whole conversation, oldest first (system messages included).
        model: the provider's own model id (aliases already resolved).
        temperature: sampling temperature (provider range, usually 0..2), or ``None``.
        max_tokens: upper bound on generated tokens, or ``None``.
        top_p: nucleus-sampling mass in (0, 1], or ``None``.
        stop: stop sequences.
        seed: random seed, or ``None``.
        state: this provider's own state from the previous turn, only while it is
            current (the last answer came from this provider), else ``None``; with it,
            a provider that keeps server-side state sends only the new turn.
        options: provider-specific options, only the names the provider declares.
        deadline: ``time.monotonic()`` value by which the first content (or the whole
            answer, whichever is sooner) is due, or ``None``: a provider that waits
            (a model loading, a Space waking) waits no longer than this.
        strict: the client's ``strict`` setting: a part of the request the provider
            finds it cannot deliver (a system prompt a Space has no input for) is an
            ``InvalidRequestError`` instead of a warning.
        prefill: the start of the assistant's answer, to be continued (a mid-stream
            rescue); ``""`` for a new answer. Only a provider whose
            ``Provider.continues(model)`` is true ever receives one: it sends the text
            as the beginning of the assistant's turn and streams only what follows.
    """

    messages: tuple[Message, ...]
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    state: ConversationState | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    deadline: float | None = None
    strict: bool = False
    prefill: str = ""


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """An image-generation request.

    Attributes:
        prompt: the text prompt.
        model: the provider's own model id.
        width: width in pixels, or ``None`` for the model default.
        height: height in pixels, or ``None``.
        aspect_ratio: ``"1:1"``, ``"16:9"`` or ``"9:16"``, or ``None``.
        seed: random seed, or ``None``.
        negative_prompt: what the image should not show, or ``None``.
        options: provider-specific options, only the names the provider declares.
        deadline: ``time.monotonic()`` value by which the image is due, or ``None``.
    """

    prompt: str
    model: str
    width: int | None = None
    height: int | None = None
    aspect_ratio: str | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """First event of every stream: who answers.

    Attributes:
        provider: registry name, e.g. ``"hf_spaces"``.
        model: the provider's own model id, e.g. ``"Qwen/Qwen2-72B-Instruct"``.
        label: human-readable provider label.
    """

    provider: str
    model: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A delta of visible model reasoning (not part of the answer text)."""

    text: str


@dataclass(frozen=True, slots=True)
class FinishReason:
    """Why generation ended; exactly one per stream, always last.

    Attributes:
        reason: an OpenAI ``finish_reason`` value: ``"stop"`` (natural end or stop
            sequence), ``"length"`` (token limit), ``"content_filter"``.
    """

    reason: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the provider (``None`` where unknown)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Queued:
    """The request is waiting in the service's queue; may repeat as the queue moves.

    Sent before any content by providers whose service queues requests (a Gradio
    Space's ``estimation`` message:
    https://www.gradio.app/guides/querying-gradio-apps-with-curl). It is not content:
    the first-token timeout keeps running while a request is queued.

    Attributes:
        position: requests ahead of this one (``0``: it is next), when known.
        queue_size: requests in the queue, when known.
        eta: estimated seconds until this request starts, when known.
    """

    position: int | None
    queue_size: int | None = None
    eta: float | None = None


@dataclass(frozen=True, slots=True)
class ConversationState:
    """Provider-side state to send back on the next turn (JSON-serialisable ``data``).

    Attributes:
        provider: registry name of the provider the state belongs to.
        data: JSON-serialisable mapping, opaque to callers.
    """

    provider: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ImageResult:
    """A generated image; saving it is the caller's choice.

    Attributes:
        data: the encoded image bytes.
        mime_type: e.g. ``"image/png"``.
        seed: the seed used, when known.
        width: width in pixels, when known.
        height: height in pixels, when known.
    """

    data: bytes = field(repr=False)
    mime_type: str
    seed: int | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """The collected result of one chat turn.

    Attributes:
        text: the whole answer text.
        finish_reason: the stream's ``FinishReason.reason``.
        provider: registry name of the provider that answered.
        model: that provider's model id.
        usage: token counts, when reported.
        reasoning: concatenated ``Reasoning`` text (``""`` when none).
        state: provider state for the next turn, when the provider keeps any.
        images: generated images, if any.
        attempts: each candidate tried (``llmrelay.Attempt``), the last one ``"ok"``.
    """

    text: str
    finish_reason: str
    provider: str
    model: str
    usage: Usage | None = None
    reasoning: str = ""
    state: ConversationState | None = None
    images: tuple[ImageResult, ...] = field(default=(), repr=False)
    attempts: tuple[Attempt, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class ProviderDescription:
    """What a provider is and whether it is ready to use (no secrets).

    Attributes:
        name: registry name.
        label: human-readable name.
        docs_url: documentation of the service.
        base_url: the URL this client will use (override or default).
        auth: ``"none"``, ``"optional"`` or ``"required"``.
        env_var: the environment variable its key is read from, if any.
        key_set: whether this client has a key for it.
        capabilities: sorted capability names (``chat``, ``stream``, ``images``, ...).
        default_model: model used when none is named.
        models: the provider's model ids.
        aliases: alias -> model id.
        open_catalogue: whether any model id is accepted.
        key_source: where the key came from (``"HF_TOKEN"``, ``"argument api_keys"``,
            the config or keys file), never the key; ``None`` when there is none.
        endpoints: endpoint name -> the URL this client will use.
        parameters: the generation parameters the provider honours.
        options: provider-specific options, ``{name: {"type", "help"}}``.
        image_models: those of ``models`` that generate images rather than text.
        endpoint_sources: endpoint name -> where its override came from (an environment
            variable, ``"argument base_urls"``, ``"config file [providers.NAME]
            base_url"``); an endpoint left at its default is absent.
        proxy_source: where the client's proxy came from (``"LLMRELAY_PROXY"``,
            ``"argument proxy"``, ``"config file proxy"``), never its URL; ``None``
            without a proxy.
    """

    name: str
    label: str
    docs_url: str
    base_url: str
    auth: str
    env_var: str | None
    key_set: bool
    capabilities: tuple[str, ...]
    default_model: str
    models: tuple[str, ...]
    aliases: Mapping[str, str]
    open_catalogue: bool
    key_source: str | None = None
    endpoints: Mapping[str, str] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    image_models: tuple[str, ...] = ()
    endpoint_sources: Mapping[str, str] = field(default_factory=dict)
    proxy_source: str | None = None


Event: TypeAlias = (
    str | ProviderInfo | Reasoning | FinishReason | Usage | ConversationState | ImageResult | Queued
)


def event_to_dict(event: Event) -> dict[str, Any]:
    """Render an event as a JSON-ready dict with a ``type`` field.

    Shapes: ``{"type": "text", "text"}``, ``{"type": "provider", "provider", "model",
    "label"}``, ``{"type": "reasoning", "text"}``, ``{"type": "finish", "reason"}``,
    ``{"type": "usage", "prompt_tokens", "completion_tokens", "total_tokens"}``,
    ``{"type": "state", "provider", "data"}``, ``{"type": "image", "mime_type", "bytes",
    "seed"}`` (``bytes`` is the image size; the data itself is not included),
    ``{"type": "queued", "position", "queue_size", "eta"}``.

    Raises:
        TypeError: if ``event`` is not an event.
    """
    if isinstance(event, str):
        return {"type": "text", "text": event}
    if isinstance(event, ProviderInfo):
        return {
            "type": "provider",
            "provider": event.provider,
            "model": event.model,
            "label": event.label,
        }
    if isinstance(event, Reasoning):
        return {"type": "reasoning", "text": event.text}
    if isinstance(event, FinishReason):
        return {"type": "finish", "reason": event.reason}
    if isinstance(event, Usage):
        return {
            "type": "usage",
            "prompt_tokens": event.prompt_tokens,
            "completion_tokens": event.completion_tokens,
            "total_tokens": event.total_tokens,
        }
    if isinstance(event, ConversationState):
        return {"type": "state", "provider": event.provider, "data": dict(event.data)}
    if isinstance(event, ImageResult):
        return {
            "type": "image",
            "mime_type": event.mime_type,
            "bytes": len(event.data),
            "seed": event.seed,
        }
    if isinstance(event, Queued):
        return {
            "type": "queued",
            "position": event.position,
            "queue_size": event.queue_size,
            "eta": event.eta,
        }
    raise TypeError(f"not an llmrelay event: {type(event).__name__}")


EmbeddingInput: TypeAlias = str | tuple[str, ...] | tuple[int, ...] | tuple[tuple[int, ...], ...]
"""What is embedded, in OpenAI's four forms (``input`` of ``POST /v1/embeddings``): one
text, several texts, one token array, or several token arrays (token ids of the model's
own tokenizer)."""


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """What a provider receives to embed (``Provider.embed``).

    The input keeps the form the caller gave (a single text stays a string) so a
    provider sends it in that form; a provider that cannot take a form or a field
    refuses it (``InvalidRequestError`` with ``param``), never converts it.

    Attributes:
        input: ``EmbeddingInput``: a text, a tuple of texts, a tuple of token ids, or a
            tuple of token-id tuples (never empty; no empty text or array).
        model: the provider's own model id.
        dimensions: the number of dimensions each vector must have (for models that can
            shorten their vectors), or ``None`` for the model's own size.
        user: an end-user identifier to pass to the service, or ``None``.
        options: provider-specific embedding options (only names the provider declares
            in ``Provider.embedding_options``).
        deadline: ``time.monotonic()`` value by which the answer is due, or ``None``.
    """

    input: EmbeddingInput
    model: str
    dimensions: int | None = None
    user: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    deadline: float | None = None

    @property
    def tokens(self) -> bool:
        """Whether the input is token ids rather than text."""
        return not isinstance(self.input, str) and not isinstance(self.input[0], str)

    @property
    def count(self) -> int:
        """How many vectors the answer holds: one per text or token array."""
        if isinstance(self.input, str) or isinstance(self.input[0], int):
            return 1
        return len(self.input)


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """Embedding vectors, one per input, in the order of the input.

    Attributes:
        vectors: one tuple of floats per input, the numbers as the service sent them
            (a JSON number as read, a base64 float32 value decoded): no rounding added.
        provider: registry name of the provider that answered.
        model: that provider's model id.
        usage: token counts as the service reported them (``prompt_tokens`` and
            ``total_tokens``; never estimated), or ``None`` when it reported none.
        attempts: each candidate tried (``llmrelay.Attempt``), the last one ``"ok"``.
    """

    vectors: tuple[tuple[float, ...], ...] = field(repr=False)
    provider: str
    model: str
    usage: Usage | None = None
    attempts: tuple[Attempt, ...] = field(default=(), repr=False)

    @property
    def dimensions(self) -> int:
        """The length of the vectors (0 when there are none)."""
        return len(self.vectors[0]) if self.vectors else 0
