"""llmrelay's own token counts (``llmrelay._usage``): a model's cached tokenizer, else bytes/4."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import llmrelay
from llmrelay import Message, ToolCall
from llmrelay._usage import _tokenizer, count_tokens, estimate_usage


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    _tokenizer.cache_clear()
    yield
    _tokenizer.cache_clear()


def test_the_estimate_counts_bytes_framing_and_calls() -> None:
    assert count_tokens("") == 0
    assert count_tokens("abcd") == 1
    assert count_tokens("abcde") == 2
    assert count_tokens("é" * 4) == 2  # 8 UTF-8 bytes
    usage = estimate_usage(
        [Message("system", "x" * 8), Message("user", "y" * 4)],
        "z" * 12,
        [ToolCall("call_1", "abcd", "{}")],
    )
    # prompt: 3 (reply) + 2 messages x 3 + 2 + 1; completion: 3 + 1 + 1
    assert usage == llmrelay.Usage(12, 5, 17)


def test_a_cached_tokenizer_of_the_model_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    repo = tmp_path / "models--acme--tiny"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    model = tokenizers.models.WordLevel(vocab, unk_token="[UNK]")
    tokenizer = tokenizers.Tokenizer(model)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(snapshot / "tokenizer.json"))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    text = "hello world hello, world"  # 4 words and a comma: 5 tokens; 24 bytes
    assert count_tokens(text, "acme/tiny") == 5
    assert count_tokens(text, "acme/tiny:fastest") == 5  # a router suffix is not the repo
    assert count_tokens(text, "acme/other") == 6 == 24 // 4  # no tokenizer: bytes / 4
    assert count_tokens("hello hello hello hello world", "acme/tiny") == 5
    assert count_tokens("hello hello hello hello world", None) == 8
