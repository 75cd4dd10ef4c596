"""The keyword parameters of the chat and image calls, typed once for every layer.

Each is a ``TypedDict`` that the methods take as ``**params: Unpack[...]`` (PEP 692, the
way openai-python types its ``*CreateParams``): ``AsyncClient`` and ``Client`` (``stream``,
``open``, ``complete``, ``generate_image``), ``chat.completions.create`` and
``images.generate`` of both clients, the server and the CLI share them. Every key is
optional and ``None`` (or the default in ``DEFAULTS``) means "not given".

At run time ``check`` refuses a keyword a method does not take (``TypeError``, as Python
would for an explicit signature), and ``keywords`` gives each method the explicit
signature (``inspect.signature``, ``help()``) its parameters make.
"""

# No ``from __future__ import annotations`` here: ``TypedDict`` reads ``Required`` from
# evaluated annotations (Python 3.11).
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Required, TypedDict, TypeVar, get_args, get_origin

from ._conversation import Conversation
from .types import ConversationState, ResponseFormat, Tool, ToolChoice

ToolsInput = Iterable[Tool | Mapping[str, Any]]
"""``tools``: ``llmrelay.Tool`` values or OpenAI's ``{"type": "function", "function":
{...}}`` objects."""
ToolChoiceInput = Literal["auto", "none", "required"] | ToolChoice | Mapping[str, Any]
"""``tool_choice``: ``"auto"``, ``"none"``, ``"required"``, a ``ToolChoice`` or OpenAI's
``{"type": "function", "function": {"name"}}``."""
ResponseFormatInput = ResponseFormat | Mapping[str, Any]
"""``response_format``: a ``ResponseFormat`` or OpenAI's ``{"type": ...}`` object."""

__all__ = [
    "ChatParams",
    "CompletionCreateParams",
    "ImageParams",
    "ImagesGenerateParams",
    "ResponseFormatInput",
    "ToolChoiceInput",
    "ToolsInput",
    "check",
    "keywords",
]

F = TypeVar("F", bound=Callable[..., Any])


class ChatParams(TypedDict, total=False):
    """Keyword arguments of a chat turn (``stream``, ``open``, ``complete`` of both clients).

    Attributes:
        model: model reference (``"provider:model"``, a provider name, an alias or a
            bare model); default: the client's.
        system: a system prompt, placed before the messages (with a conversation:
            replaces its system prompt).
        temperature: sampling temperature.
        max_tokens: maximum tokens to generate.
        top_p: nucleus sampling mass.
        stop: a stop sequence or an iterable of them (a bare string is one sequence,
            as in OpenAI's ``stop``, never its characters).
        seed: random seed.
        options: provider-specific options (names the provider declares).
        conversation: an ``llmrelay.Conversation`` to continue; the turn is appended to it
            when the stream finishes.
        state: a provider's ``ConversationState`` from a previous turn (without a
            conversation); only that provider receives it.
        tools: function tools the model may call (``llmrelay.Tool`` or OpenAI's tool
            objects); the answer then may stream ``ToolCallDelta`` events and finish
            with ``"tool_calls"``.
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a named function
            (``ToolChoice`` or OpenAI's object).
        parallel_tool_calls: whether several calls may come in one answer.
        response_format: ``{"type": "json_object"}``, ``{"type": "json_schema",
            "json_schema": {...}}`` (or a ``ResponseFormat``).
        frequency_penalty: OpenAI's frequency penalty, -2 to 2.
        presence_penalty: OpenAI's presence penalty, -2 to 2.
        tool_emulation: ``True``: a provider without native tools or JSON answers gets
            them emulated (described in the prompt, the answer parsed and validated:
            ``llmrelay._emulation``); ``False``: refused there; ``None``: as the
            ``tool_emulation`` setting says for the provider or alias.
    """

    model: str | None
    system: str | None
    temperature: float | None
    max_tokens: int | None
    top_p: float | None
    stop: str | Iterable[str] | None
    seed: int | None
    options: Mapping[str, Any] | None
    conversation: Conversation | None
    state: ConversationState | None
    tools: ToolsInput | None
    tool_choice: ToolChoiceInput | None
    parallel_tool_calls: bool | None
    response_format: ResponseFormatInput | None
    frequency_penalty: float | None
    presence_penalty: float | None
    tool_emulation: bool | None


class CompletionCreateParams(TypedDict, total=False):
    """Keyword arguments of ``chat.completions.create`` besides ``messages`` and ``stream``.

    Every field of OpenAI's request (https://platform.openai.com/docs/api-reference/chat/create),
    plus ``conversation`` and ``options``. Each is honoured, ignored when harmless
    (``user``, ``metadata``, ``store`` ...), or refused with an ``InvalidRequestError``
    naming it (``param``) and the provider that cannot honour it: the table is
    ``llmrelay._fields.FIELDS`` (the docs list it).

    Attributes:
        model: a model reference (``provider:model``, alias, ...); default: the client's.
        temperature: sampling temperature.
        top_p: nucleus sampling mass.
        max_tokens: maximum tokens to generate (``max_completion_tokens`` wins).
        max_completion_tokens: OpenAI's newer name for ``max_tokens``.
        stop: a stop sequence or a list of them.
        seed: random seed.
        stream_options: ``{"include_usage": true}`` adds a final usage chunk.
        conversation: an ``llmrelay.Conversation`` to continue and record into.
        options: provider-specific options.
        tools: function tools (OpenAI's tool objects or ``llmrelay.Tool``).
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a named function.
        parallel_tool_calls: whether several calls may come in one answer.
        response_format: ``text``, ``json_object`` or ``json_schema``.
        frequency_penalty: sampling, -2 to 2.
        presence_penalty: sampling, -2 to 2.
        logit_bias: token id -> bias; forwarded by OpenAI-compatible providers.
        reasoning_effort: forwarded by OpenAI-compatible providers.
        verbosity: forwarded by OpenAI-compatible providers.
        moderation: forwarded by OpenAI-compatible providers.
        n: 1 only (llmrelay returns one choice).
        logprobs: false only.
        top_logprobs: 0 only.
        modalities: ``["text"]`` only.
        audio: ``None`` only.
        web_search_options: ``None`` only.
        functions: deprecated by OpenAI; refused (use ``tools``).
        function_call: deprecated by OpenAI; refused (use ``tool_choice``).
        user: ignored (harmless).
        safety_identifier: ignored (harmless).
        metadata: ignored (harmless).
        store: ignored (harmless).
        service_tier: ignored (harmless).
        prompt_cache_key: ignored (harmless).
        prompt_cache_retention: ignored (harmless).
        prompt_cache_options: ignored (harmless).
        prediction: ignored (a latency hint).
    """

    model: str | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    max_completion_tokens: int | None
    stop: str | Iterable[str] | None
    seed: int | None
    stream_options: Mapping[str, Any] | None
    conversation: Conversation | None
    options: Mapping[str, Any] | None
    tools: ToolsInput | None
    tool_choice: ToolChoiceInput | None
    parallel_tool_calls: bool | None
    response_format: ResponseFormatInput | None
    frequency_penalty: float | None
    presence_penalty: float | None
    logit_bias: Mapping[str, int] | None
    reasoning_effort: str | None
    verbosity: str | None
    moderation: Mapping[str, Any] | None
    n: int | None
    logprobs: bool | None
    top_logprobs: int | None
    modalities: Iterable[str] | None
    audio: Mapping[str, Any] | None
    web_search_options: Mapping[str, Any] | None
    functions: Iterable[Mapping[str, Any]] | None
    function_call: str | Mapping[str, Any] | None
    user: str | None
    safety_identifier: str | None
    metadata: Mapping[str, str] | None
    store: bool | None
    service_tier: str | None
    prompt_cache_key: str | None
    prompt_cache_retention: str | None
    prompt_cache_options: Mapping[str, Any] | None
    prediction: Mapping[str, Any] | None


class ImageParams(TypedDict, total=False):
    """Keyword arguments of ``generate_image`` (both clients).

    Attributes:
        model: model reference; default: the client's.
        n: how many images, 1 to 10 (default 1).
        width: width in pixels.
        height: height in pixels.
        aspect_ratio: e.g. ``"16:9"`` (providers that take a ratio).
        seed: random seed.
        negative_prompt: what the image should not show.
        options: provider-specific options.
    """

    model: str | None
    n: int
    width: int | None
    height: int | None
    aspect_ratio: str | None
    seed: int | None
    negative_prompt: str | None
    options: Mapping[str, Any] | None


class ImagesGenerateParams(TypedDict, total=False):
    """Keyword arguments of ``images.generate`` (OpenAI's names; ``prompt`` required).

    Attributes:
        prompt: what to draw.
        model: model reference; default: the client's.
        n: how many images, 1 to 10 (default 1).
        size: ``"WIDTHxHEIGHT"`` in pixels.
        response_format: ``"b64_json"`` (the only one).
        seed: random seed.
        negative_prompt: what the image should not show.
        aspect_ratio: e.g. ``"16:9"``.
        options: provider-specific options.
    """

    prompt: Required[str]
    model: str | None
    n: int
    size: str | None
    response_format: Literal["b64_json"]
    seed: int | None
    negative_prompt: str | None
    aspect_ratio: str | None
    options: Mapping[str, Any] | None


DEFAULTS: Mapping[type, Mapping[str, Any]] = {
    ImageParams: {"n": 1},
    ImagesGenerateParams: {"n": 1, "response_format": "b64_json"},
}
"""Defaults that are not ``None``, per parameter set."""

_NAMES: dict[type, frozenset[str]] = {
    params: frozenset(params.__annotations__)
    for params in (ChatParams, CompletionCreateParams, ImageParams, ImagesGenerateParams)
}


def check(params: Mapping[str, Any], allowed: type, where: str) -> None:
    """Refuse a keyword ``where`` does not take, and a missing required one.

    Raises:
        TypeError: as Python raises it for an explicit signature.
    """
    names = _NAMES[allowed]
    for name in params:
        if name not in names:
            raise TypeError(f"{where}() got an unexpected keyword argument {name!r}")
    for name in allowed.__required_keys__:  # type: ignore[attr-defined]
        if name not in params:
            raise TypeError(f"{where}() missing 1 required keyword-only argument: {name!r}")


def keywords(params: type) -> Callable[[F], F]:
    """Give a ``**params: Unpack[...]`` method the explicit signature ``params`` makes.

    ``inspect.signature`` (and ``help()``) then list each keyword with its annotation and
    default, in the ``TypedDict``'s order, in place of ``**params``.
    """

    def apply(func: F) -> F:
        signature = inspect.signature(func)
        kept = [
            p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        required = params.__required_keys__  # type: ignore[attr-defined]
        defaults = DEFAULTS.get(params, {})
        added = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if name in required else defaults.get(name),
                annotation=_unwrap(annotation),
            )
            for name, annotation in params.__annotations__.items()
        ]
        added.sort(key=lambda p: p.default is not inspect.Parameter.empty)  # required first
        func.__signature__ = signature.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
        return func

    return apply


def _unwrap(annotation: Any) -> Any:
    """``T`` for ``Required[T]`` (a signature shows the type; required-ness is the default)."""
    origin: object = get_origin(annotation)
    return get_args(annotation)[0] if origin is Required else annotation
