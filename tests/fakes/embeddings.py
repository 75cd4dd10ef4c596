"""Vectors the embedding fakes answer: deterministic, float32, as the real servers send them.

Ground truth for the numbers on the wire: text-embeddings-inference (Rust) serialises
``Vec<f32>`` with serde_json, which writes each float32 in its shortest round-trip form
(``0.12345679``, never the float64 expansion); OpenAI's ``base64`` is the packed
little-endian float32 bytes (openai-python ``lib/_parsing/_embeddings.py`` decodes it with
``numpy.frombuffer(..., dtype="float32")``). The values come from a hash of the model and
the input, so a test can compute what any request must return.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Sequence
from typing import Any

__all__ = ["F32Json", "b64", "f32", "f32_text", "vector_for"]


def f32(value: float) -> float:
    """``value`` rounded to float32 (as a Python float)."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def f32_text(value: float) -> str:
    """The shortest decimal that reads back as the same float32 (serde_json's form)."""
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if f32(float(text)) == value:
            break
    if "e" not in text and "." not in text:
        text += ".0"
    return text


class F32Json:
    """A JSON list of float32 values in their shortest form (``dumps`` via ``text``)."""

    def __init__(self, values: Sequence[float]) -> None:
        self.values = list(values)

    def text(self) -> str:
        return "[" + ",".join(f32_text(v) for v in self.values) + "]"


def vector_for(model: str, item: Any, dims: int, *, normalize: bool = True) -> list[float]:
    """A deterministic float32 vector for ``item`` (a text or token ids) under ``model``."""
    seed = hashlib.sha256(f"{model}\x00{item!r}".encode()).digest()
    raw: list[float] = []
    counter = 0
    while len(raw) < dims:
        block = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        raw.extend((b - 127.5) / 127.5 for b in block)
        counter += 1
    values = raw[:dims]
    if normalize:
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        values = [v / norm for v in values]
    return [f32(v) for v in values]


def b64(vector: Sequence[float]) -> str:
    """OpenAI's base64 form of a vector (packed little-endian float32)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
