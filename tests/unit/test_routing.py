from __future__ import annotations

import pytest

from llmrelay import UnknownModelError, UnknownProviderError
from llmrelay._routing import Target, resolve


def test_provider_and_alias() -> None:
    assert resolve("hf_spaces:qwen-2-72b") == [Target("hf_spaces", "qwen-qwen2-72b-instruct")]


def test_provider_and_model_id() -> None:
    assert resolve("hf_spaces:qwen-qwen2-72b-instruct") == [
        Target("hf_spaces", "qwen-qwen2-72b-instruct")
    ]


def test_bare_alias_and_bare_provider() -> None:
    assert resolve("qwen-2-72b") == [Target("hf_spaces", "qwen-qwen2-72b-instruct")]
    assert resolve("hf_spaces") == [Target("hf_spaces", "qwen-qwen2-72b-instruct")]


def test_default_reference_used_when_none_given() -> None:
    assert resolve(None, "hf_spaces:qwen-2-72b") == [Target("hf_spaces", "qwen-qwen2-72b-instruct")]
    assert resolve(None)[0].provider == "hf_spaces"


def test_unknown_provider_lists_valid_ones() -> None:
    with pytest.raises(UnknownProviderError) as info:
        resolve("nosuch:model")
    assert "hf_spaces" in str(info.value)


def test_unknown_model_lists_valid_ones() -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve("hf_spaces:gpt-5")
    assert info.value.valid == ("qwen-qwen2-72b-instruct", "qwen-2-72b")
    with pytest.raises(UnknownModelError, match="hf_spaces:qwen-2-72b"):
        resolve("gpt-5")
