"""The classes of ``llmrelay.types`` that a chat does not need before its first token.

``ImageRequest``, ``Completion``, ``ProviderDescription``, ``EmbeddingRequest`` and
``EmbeddingResult`` are defined here and loaded on their first
use through ``llmrelay.types`` (a module ``__getattr__``, PEP 562:
https://peps.python.org/pep-0562/): each ``@dataclass(frozen=True, slots=True)``
compiles its generated methods (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``,
``__setattr__``, ``__delattr__``) when the class is made, about half a millisecond of
CPU per class, and a plain ``llmrelay chat`` start needs none of these five.

They belong to ``llmrelay.types``: their ``__module__`` is ``"llmrelay.types"`` (reprs,
pickling, ``typing.get_type_hints``), and this module binds each into
``llmrelay.types``' namespace when it loads, so ``llmrelay.types.X`` is
``llmrelay._lazy_types.X`` however it was reached. Import them from ``llmrelay.types``
or ``llmrelay``, never from here.

No field of a class defined in ``llmrelay.types`` names one of these five (``ToolCall``
and ``ImagePart``, named by ``Message``'s fields, stay there), so ``typing.get_type_hints``
of every class resolves in ``llmrelay.types`` as before, loaded or not. Two differences:
``inspect.getsource`` cannot find these classes' source through ``llmrelay.types`` (it
looks in the file of ``__module__``) and raises ``OSError``: read this file; and the
client methods whose return annotation names one (``providers()``, ``embed()``,
``collect()``: postponed annotations, PEP 563) evaluate their hints only with the class
given in ``localns``, as ``complete()``'s always needed ``Message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import types as _types
from .types import _EMPTY, ConversationState, ImageResult, Message, ToolCall, Usage

if TYPE_CHECKING:
    from .errors import Attempt
    from .types import EmbeddingInput

__all__ = [
    "Completion",
    "EmbeddingRequest",
    "EmbeddingResult",
    "ImageRequest",
    "ProviderDescription",
]


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

    __module__ = "llmrelay.types"

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
        tool_calls: the assembled tool calls (``ToolCall``), in ``index`` order; empty
            when the model called none.
        usage_estimated: ``True`` when ``usage`` was counted by llmrelay, not reported
            by the provider.
    """

    __module__ = "llmrelay.types"

    text: str
    finish_reason: str
    provider: str
    model: str
    usage: Usage | None = None
    reasoning: str = ""
    state: ConversationState | None = None
    images: tuple[ImageResult, ...] = field(default=(), repr=False)
    attempts: tuple[Attempt, ...] = field(default=(), repr=False)
    tool_calls: tuple[ToolCall, ...] = ()
    usage_estimated: bool = False

    def message(self) -> Message:
        """The answer as the assistant ``Message`` of a conversation (text and calls)."""
        return Message("assistant", self.text, tool_calls=self.tool_calls)


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
        embedding_models: the model ids that create embeddings rather than chat (not
            in ``models``).
        endpoint_sources: endpoint name -> where its override came from (an environment
            variable, ``"argument base_urls"``, ``"config file [providers.NAME]
            base_url"``); an endpoint left at its default is absent.
        proxy_source: where the client's proxy came from (``"LLMRELAY_PROXY"``,
            ``"argument proxy"``, ``"config file proxy"``), never its URL; ``None``
            without a proxy.
    """

    __module__ = "llmrelay.types"

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
    embedding_models: tuple[str, ...] = ()
    endpoint_sources: Mapping[str, str] = field(default_factory=dict)
    proxy_source: str | None = None


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

    __module__ = "llmrelay.types"

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

    __module__ = "llmrelay.types"

    vectors: tuple[tuple[float, ...], ...] = field(repr=False)
    provider: str
    model: str
    usage: Usage | None = None
    attempts: tuple[Attempt, ...] = field(default=(), repr=False)

    @property
    def dimensions(self) -> int:
        """The length of the vectors (0 when there are none)."""
        return len(self.vectors[0]) if self.vectors else 0


def _adopt() -> None:
    """Make each class ``llmrelay.types``' own: bound there, no source line of this file.

    Python 3.13+ records a class's first line (``__firstlineno__``), which
    ``inspect.getsource`` would read in ``llmrelay.types``' file (``__module__``): that
    line belongs to another class there, so it is dropped and ``getsource`` raises
    ``OSError`` instead of showing the wrong code.
    """
    namespace = vars(_types)
    for name in __all__:
        cls = globals()[name]
        if "__firstlineno__" in vars(cls):  # pragma: no cover - Python 3.13+
            delattr(cls, "__firstlineno__")
        namespace[name] = cls


_adopt()
