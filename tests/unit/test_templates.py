"""Chat templates: expected strings written from each family's documented format.

Sources: Mistral-7B-Instruct-v0.2 model card ("Instruction format"), the transformers chat
templating guide (ChatML), Meta's Llama 3 prompt-format page, DeepSeek-R1's
tokenizer_config.json chat_template, HuggingFaceH4/zephyr-7b-beta's chat_template.
"""

from __future__ import annotations

import pytest

from llmrelay import Message
from llmrelay._templates import choose_template, fit, render, token_text

SYS = Message("system", "Be brief.")
CONVERSATION = [
    SYS,
    Message("user", "Hi"),
    Message("assistant", "Hello!"),
    Message("user", "Name a color."),
]
CONTINUED = [*CONVERSATION, Message("assistant", "Blue and")]


def test_mistral() -> None:
    assert render("mistral", CONVERSATION) == (
        "<s>[INST] Be brief.\n\nHi [/INST] Hello!</s>[INST] Name a color. [/INST]"
    )


def test_mistral_continue() -> None:
    assert render("mistral", CONTINUED) == (
        "<s>[INST] Be brief.\n\nHi [/INST] Hello!</s>[INST] Name a color. [/INST] Blue and"
    )


def test_chatml() -> None:
    assert render("chatml", CONVERSATION) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nName a color.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chatml_continue() -> None:
    assert render("chatml", CONTINUED) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nName a color.<|im_end|>\n"
        "<|im_start|>assistant\nBlue and"
    )


def test_llama3() -> None:
    assert render("llama3", CONVERSATION) == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nName a color.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama3_continue() -> None:
    assert render("llama3", CONTINUED) == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nName a color.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nBlue and"
    )


def test_deepseek() -> None:
    assert render("deepseek", CONVERSATION) == (
        "<｜begin▁of▁sentence｜>Be brief."
        "<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"
        "<｜User｜>Name a color.<｜Assistant｜>"
    )


def test_deepseek_continue() -> None:
    assert render("deepseek", CONTINUED) == (
        "<｜begin▁of▁sentence｜>Be brief."
        "<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"
        "<｜User｜>Name a color.<｜Assistant｜>Blue and"
    )


@pytest.mark.parametrize("end", ["</s>", "<|endoftext|>"])
def test_zephyr_with_its_end_token(end: str) -> None:
    assert render("zephyr", CONVERSATION, end) == (
        f"<|system|>\nBe brief.{end}\n"
        f"<|user|>\nHi{end}\n"
        f"<|assistant|>\nHello!{end}\n"
        f"<|user|>\nName a color.{end}\n"
        "<|assistant|>\n"
    )


def test_zephyr_continue() -> None:
    assert render("zephyr", CONTINUED, "<|endoftext|>") == (
        "<|system|>\nBe brief.<|endoftext|>\n"
        "<|user|>\nHi<|endoftext|>\n"
        "<|assistant|>\nHello!<|endoftext|>\n"
        "<|user|>\nName a color.<|endoftext|>\n"
        "<|assistant|>\nBlue and"
    )


def test_plain() -> None:
    assert render("plain", CONVERSATION) == (
        "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: Name a color.\nAssistant:"
    )


def test_plain_continue() -> None:
    assert render("plain", CONTINUED) == (
        "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: Name a color.\nAssistant: Blue and"
    )


@pytest.mark.parametrize(
    ("model_type", "eos", "author", "expected"),
    [
        ("mistral", "</s>", "mistralai", ("mistral", "</s>")),
        ("mixtral", {"content": "</s>", "lstrip": False}, "mistralai", ("mistral", "</s>")),
        ("mistral", "</s>", "HuggingFaceH4", ("zephyr", "</s>")),
        ("qwen2", "<|im_end|>", "Qwen", ("chatml", "<|im_end|>")),
        ("qwen2", {"content": "<|im_end|>"}, "Qwen", ("chatml", "<|im_end|>")),
        ("llama", "<|eot_id|>", "meta-llama", ("llama3", "<|eot_id|>")),
        (
            "deepseek_v3",
            {"content": "<｜end▁of▁sentence｜>"},
            "deepseek-ai",
            ("deepseek", "<｜end▁of▁sentence｜>"),
        ),
        ("stablelm", "<|endoftext|>", "stabilityai", ("zephyr", "<|endoftext|>")),
        ("gemma", "<eos>", "google", ("plain", "")),
        ("gpt2", "<|endoftext|>", "openai-community", ("plain", "")),
        ("falcon", None, None, ("plain", "")),
        ("llama", 42, None, ("plain", "")),
    ],
)
def test_choose_template(
    model_type: str, eos: object, author: str | None, expected: tuple[str, str]
) -> None:
    assert choose_template(model_type, eos, author) == expected


def test_token_text() -> None:
    assert token_text("</s>") == "</s>"
    assert token_text({"content": "<|im_end|>", "special": True}) == "<|im_end|>"
    assert token_text({"id": 2}) is None
    assert token_text(None) is None


def test_fit_keeps_system_and_newest_turns() -> None:
    long_history = [SYS]
    for i in range(20):
        long_history += [
            Message("user", f"question {i} " * 10),
            Message("assistant", f"answer {i}"),
        ]
    long_history.append(Message("user", "last question"))
    prompt = fit(long_history, lambda ms: render("chatml", ms), 600)
    assert len(prompt) <= 600
    assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert prompt.endswith("<|im_start|>user\nlast question<|im_end|>\n<|im_start|>assistant\n")
    assert "question 0 " not in prompt
    assert "answer 19" in prompt
    # turns stay paired: the kept history starts with a user turn after the system
    assert "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>assistant" not in prompt


def test_fit_never_drops_the_last_message() -> None:
    messages = [Message("user", "x" * 50), Message("assistant", "y"), Message("user", "z" * 100)]
    assert fit(messages, lambda ms: render("plain", ms), 10) == "z" * 100


def test_empty_conversation_is_refused() -> None:
    for name in ("mistral", "chatml", "llama3", "deepseek", "zephyr", "plain"):
        with pytest.raises(ValueError, match="empty"):
            render(name, [])
