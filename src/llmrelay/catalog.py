"""Live model catalogues (public): what a service says it serves right now.

``AsyncClient.live_models(provider)`` returns ``LiveModel`` rows read from a provider's
own catalogue -- today the Hugging Face router's ``GET /v1/models``
(https://huggingface.co/docs/inference-providers/index; the fields are those Hugging
Face's chat-ui reads, ``src/lib/server/models.ts`` in https://github.com/huggingface/chat-ui):
each model with the inference providers serving it, their context length, tool and
structured-output support and price. The rows are cached by the provider with a TTL,
and the per-model capabilities (``supports_tools``, ``vision``) are what request checks
can consult.

``openai_model_rows`` turns rows into OpenAI model objects with an ``llmrelay``
extension field (for a server's ``GET /v1/models?live=1``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LiveModel", "LiveOffer", "openai_model_rows"]


@dataclass(frozen=True, slots=True)
class LiveOffer:
    """One inference provider serving a model, as the catalogue reports it.

    Attributes:
        provider: the inference provider's name (``"novita"``, ``"together"`` ...); it
            is also the model id's ``:<provider>`` suffix that pins it.
        status: ``"live"``, ``"staging"`` ..., or ``None`` when not given.
        context_length: the context window in tokens, or ``None``.
        input_price: USD per million input tokens, or ``None`` when not given.
        output_price: USD per million output tokens, or ``None``.
        supports_tools: whether it accepts tool (function) calls, or ``None``.
        supports_structured_output: whether it accepts a JSON schema response
            format, or ``None``.
    """

    provider: str
    status: str | None = None
    context_length: int | None = None
    input_price: float | None = None
    output_price: float | None = None
    supports_tools: bool | None = None
    supports_structured_output: bool | None = None


@dataclass(frozen=True, slots=True)
class LiveModel:
    """One model of a live catalogue.

    Attributes:
        provider: the llmrelay provider whose catalogue it is (``"huggingface"``).
        id: the model id to send (a Hub id such as ``"meta-llama/Llama-3.1-8B-Instruct"``).
        offers: the inference providers serving it.
        input_modalities: e.g. ``("text", "image")``; empty when not given.
        output_modalities: e.g. ``("text",)``; empty when not given.
    """

    provider: str
    id: str
    offers: tuple[LiveOffer, ...] = ()
    input_modalities: tuple[str, ...] = ()
    output_modalities: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        """``provider:id``, as ``-m`` and ``model=`` take it."""
        return f"{self.provider}:{self.id}"

    @property
    def context_length(self) -> int | None:
        """The smallest context window of its offers (any of them may serve a request)."""
        lengths = [o.context_length for o in self.offers if o.context_length]
        return min(lengths) if lengths else None

    @property
    def supports_tools(self) -> bool:
        """Whether at least one offer accepts tool calls."""
        return any(o.supports_tools for o in self.offers)

    @property
    def vision(self) -> bool:
        """Whether it takes image input (``"image"`` among ``input_modalities``)."""
        return any(m.lower() in ("image", "vision") for m in self.input_modalities)

    def offer(self, name: str) -> LiveOffer | None:
        """The offer of inference provider ``name``, or ``None``."""
        return next((o for o in self.offers if o.provider == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields, the derived ``context_length``/``supports_tools``/``vision``."""
        return {
            "provider": self.provider,
            "id": self.id,
            "reference": self.reference,
            "context_length": self.context_length,
            "supports_tools": self.supports_tools,
            "vision": self.vision,
            "input_modalities": list(self.input_modalities),
            "output_modalities": list(self.output_modalities),
            "offers": [asdict(o) for o in self.offers],
        }


def openai_model_rows(models: Iterable[LiveModel]) -> list[dict[str, Any]]:
    """OpenAI model objects (``id``, ``object``, ``created``, ``owned_by``) for ``models``.

    ``id`` is the ``provider:id`` reference; the catalogue's details are in an extra
    ``llmrelay`` field (``LiveModel.to_dict``), which OpenAI clients ignore.
    """
    return [
        {
            "id": m.reference,
            "object": "model",
            "created": 0,
            "owned_by": m.provider,
            "llmrelay": m.to_dict(),
        }
        for m in models
    ]
