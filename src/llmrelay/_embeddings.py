"""Embeddings through the one engine: ``AsyncClient.embed`` and ``client.embeddings``.

No second path to providers: the model reference resolves through the client's router
(aliases, candidates, cool-downs) and ``Engine.run_candidates`` tries the candidates
with the fallback policy of chat and images (a missing key skips a candidate, a
retryable error moves on and starts its cool-down, a non-retryable one ends the chain).

Request fidelity (OpenAI's ``POST /v1/embeddings`` fields,
https://platform.openai.com/docs/api-reference/embeddings/create): ``input`` in its four
forms, ``model``, ``dimensions`` and ``user`` reach each provider as given and the
provider sends them in its own terms or refuses them (``InvalidRequestError`` with
``param``, naming the provider); ``encoding_format`` is honoured here, from the float32
values (``llmrelay._openai_embeddings``). A provider without ``Capability.EMBEDDINGS``
refuses with ``param="model"``; an option the provider does not declare in
``embedding_options`` is refused (``param="options.<name>"``) whatever ``strict`` says,
since a dropped embedding option silently changes the vectors.

Usage is what the service reported (``usage`` of an OpenAI-compatible answer,
text-embeddings-inference's ``x-compute-tokens``), never estimated: ``None`` when it
reported nothing (0 in the OpenAI-shaped response, as the chat path does for a count it
was not given).
"""

from __future__ import annotations

import dataclasses
import numbers
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import anyio

from . import errors
from ._engine import Engine, map_exception
from ._router import Target
from .providers import Capability, Provider
from .providers._embeddings import check_vectors
from .types import EmbeddingInput, EmbeddingRequest, EmbeddingResult

if TYPE_CHECKING:
    from ._client import AsyncClient
    from ._openai_embeddings import CreateEmbeddingResponse

__all__ = ["MAX_INPUTS", "AsyncEmbeddings", "embed", "normalize_input"]

MAX_INPUTS = 2048
"""Most texts or token arrays in one request (OpenAI's limit)."""


def normalize_input(value: Any) -> EmbeddingInput:
    """``EmbeddingInput`` from what a caller passed (OpenAI's ``input`` forms).

    A string; a non-empty iterable of strings; a non-empty iterable of token ids
    (``int`` >= 0); or a non-empty iterable of token-id iterables (lists, tuples, a
    numpy array's rows). Iterables become tuples; a token id of another
    ``numbers.Integral`` type (numpy's ``int64``) becomes its Python ``int``.

    Raises:
        llmrelay.errors.ConfigError: anything else: an empty string or list, a mixed or
            nested-too-deep list, a negative or non-integer token id (``bool`` is not an
            id), more than ``MAX_INPUTS`` items.
    """
    if isinstance(value, str):
        if not value:
            raise errors.ConfigError("input: an empty string cannot be embedded", param="input")
        return value
    if isinstance(value, bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        raise errors.ConfigError(
            "input: a string, a list of strings, a list of token ids or a list of token-id "
            f"lists; got {type(value).__name__}",
            param="input",
        )
    items = tuple(value)
    if not items:
        raise errors.ConfigError("input: the list is empty", param="input")
    if len(items) > MAX_INPUTS:
        raise errors.ConfigError(
            f"input: at most {MAX_INPUTS} items; got {len(items)}", param="input"
        )
    if all(isinstance(item, str) for item in items):
        empty = next((i for i, item in enumerate(items) if not item), None)
        if empty is not None:
            raise errors.ConfigError(
                f"input[{empty}]: an empty string cannot be embedded", param=f"input[{empty}]"
            )
        return items
    if all(_token(item) for item in items):
        return tuple(int(item) for item in items)
    if all(_array(item) for item in items):  # token-id lists
        arrays = tuple(tuple(item) for item in items)
        for index, ids in enumerate(arrays):
            if not ids or not all(_token(i) for i in ids):
                raise errors.ConfigError(
                    f"input[{index}]: a token array is a non-empty list of token ids (int >= 0)",
                    param=f"input[{index}]",
                )
        return tuple(tuple(int(i) for i in ids) for ids in arrays)
    raise errors.ConfigError(
        "input: a list holds all strings, all token ids, or all token-id lists, not a mix",
        param="input",
    )


def _token(value: Any) -> bool:
    """A token id: a non-negative ``numbers.Integral`` that is not a ``bool``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 0


def _array(value: Any) -> bool:
    """A token-id array: an iterable that is not text, bytes or a mapping."""
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | bytearray | Mapping)


def _check_fields(dimensions: Any, user: Any, options: Any) -> int | None:
    """Check ``embed``'s fields; return ``dimensions`` as a Python ``int`` (or ``None``).

    A ``numbers.Integral`` of another type (numpy's ``int64``) is taken as its ``int``.

    Raises:
        ConfigError: ``param`` names the field: ``dimensions`` not a positive integer,
            ``user`` not a string, ``options`` not a mapping.
    """
    size: int | None = None
    if dimensions is not None:
        if (
            isinstance(dimensions, bool)
            or not isinstance(dimensions, numbers.Integral)
            or dimensions < 1
        ):
            raise errors.ConfigError(
                f"dimensions: a positive integer; got {dimensions!r:.40}", param="dimensions"
            )
        size = int(dimensions)
    if user is not None and not isinstance(user, str):
        raise errors.ConfigError(f"user: a string; got {type(user).__name__}", param="user")
    if options is not None and not isinstance(options, Mapping):
        raise errors.ConfigError(
            f"options: a mapping; got {type(options).__name__}", param="options"
        )
    return size


def embedding_request(
    engine: Engine,
    target: Target,
    value: EmbeddingInput,
    fields: Mapping[str, Any],
    deadline: float | None,
) -> EmbeddingRequest:
    """The request ``target``'s provider receives.

    Raises:
        llmrelay.errors.InvalidRequestError: the provider cannot create embeddings
            (``param="model"``), or an option it does not declare (``param``
            ``"options.<name>"``).
    """
    cls = engine.registry.get(target.provider)
    if Capability.EMBEDDINGS not in cls.capabilities:
        raise errors.InvalidRequestError(
            f"{target.provider} cannot create embeddings",
            provider=target.provider,
            model=target.model,
            param="model",
        )
    options = dict(fields.get("options") or {})
    for name in options:
        if name not in cls.embedding_options:
            raise errors.InvalidRequestError(
                f"{target.provider} does not take the embedding option {name!r}",
                provider=target.provider,
                model=target.model,
                param=f"options.{name}",
            )
    return EmbeddingRequest(
        input=value,
        model=target.model,
        dimensions=fields.get("dimensions"),
        user=fields.get("user"),
        options=options,
        deadline=deadline,
    )


async def embed(
    engine: Engine,
    input: Any,
    *,
    model: str | None,
    dimensions: int | None = None,
    user: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> EmbeddingResult:
    """Embed ``input`` with ``model``'s first candidate that answers (module docstring).

    The total timeout bounds each attempt (``ProviderTimeout`` ``kind="total"``, which
    moves on to the next candidate, as a timeout does for chat).

    Raises:
        llmrelay.errors.ConfigError: a bad ``input``, ``dimensions``, ``user`` or
            ``options``; an unresolvable model.
        llmrelay.errors.ProviderError: the only candidate's error (``InvalidRequestError``
            with ``param`` for a field it cannot honour), or ``AllProvidersFailed``.
    """
    if not isinstance(model, str):
        raise errors.ConfigError(
            f"model must be a string, not {type(model).__name__}", param="model"
        )
    value = normalize_input(input)
    dimensions = _check_fields(dimensions, user, options)
    fields = {"dimensions": dimensions, "user": user, "options": options}
    total = engine.settings.timeouts.total
    deadline = time.monotonic() + total if total is not None else None

    async def attempt(target: Target, provider: Provider) -> EmbeddingResult:
        request = embedding_request(engine, target, value, fields, deadline)
        late = errors.ProviderTimeout(
            f"no embeddings within the total timeout ({total}s)",
            provider=target.provider,
            model=target.model,
            kind="total",
        )
        try:
            if deadline is None:
                result = await provider.embed(request)
            else:
                left = deadline - time.monotonic()
                if left <= 0:  # an earlier candidate used the time up: do not start
                    raise late
                with anyio.fail_after(left):
                    result = await provider.embed(request)
        except TimeoutError:
            raise late from None
        except Exception as exc:
            mapped = map_exception(exc, target.provider, target.model)
            if mapped is None:
                raise
            raise mapped from exc
        if not isinstance(result, EmbeddingResult):
            raise errors.ProtocolError(
                f"embed() returned {type(result).__name__}, not an EmbeddingResult",
                provider=target.provider,
                model=target.model,
            )
        check_vectors(result.vectors, request, provider=target.provider, model=target.model)
        return result

    attempts: list[errors.Attempt] = []
    target, result = await engine.run_candidates(model, attempt, attempts)
    return dataclasses.replace(
        result, provider=target.provider, model=target.model, attempts=tuple(attempts)
    )


class AsyncEmbeddings:
    """``client.embeddings`` (openai-python's resource shape)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        input: Any,
        model: str,
        encoding_format: Literal["float", "base64"] = "float",
        dimensions: int | None = None,
        user: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> CreateEmbeddingResponse:
        """Create embeddings, as OpenAI's ``embeddings.create``.

        Args:
            input: a string, a list of strings, a list of token ids, or a list of
                token-id lists (a provider that takes text refuses token ids).
            model: a model reference (``provider:model``, an alias for a fallback
                chain, ...).
            encoding_format: ``"float"`` (lists of numbers) or ``"base64"`` (each vector
                as base64 of its little-endian float32 bytes, as OpenAI sends it).
            dimensions: the vector size to ask for (models that can shorten theirs);
                refused by a provider that cannot honour it.
            user: an end-user identifier, sent where the service takes one.
            options: provider-specific embedding options (``embedding_options``).

        Returns:
            ``llmrelay.CreateEmbeddingResponse``; ``model`` is ``"provider:model"``.

        Raises:
            llmrelay.errors.ConfigError: a bad ``encoding_format``, and what
                ``AsyncClient.embed`` raises.
        """
        if encoding_format not in ("float", "base64"):
            raise errors.ConfigError(
                f"encoding_format: 'float' or 'base64'; got {encoding_format!r:.40}"
            )
        result = await self._client.embed(
            input, model=model, dimensions=dimensions, user=user, options=options
        )
        from ._openai_embeddings import to_embedding_response

        return to_embedding_response(result, encoding_format)
