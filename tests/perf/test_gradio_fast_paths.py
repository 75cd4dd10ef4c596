"""hf_spaces' token path shortcuts give what the code they replaced gave.

``_apply_output`` keeps an output whose diff is empty without calling ``apply_diff``, and
``reply_text`` tests a chatbot message for ``dict`` before the ``Mapping`` ABC. The
references are the former functions (verbatim); random outputs, diffs and chatbot values
must give the same value or the same error.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmrelay.providers._gradio_diff import _content_text, apply_diff, reply_text
from llmrelay.providers.hf_spaces import _apply_output


def reference_apply_output(values: list[Any] | None, message: Mapping[str, Any]) -> list[Any]:
    data = message["output"]["data"]
    if not isinstance(data, list):
        raise TypeError("output data is not a list")
    if values is None:
        return list(data)
    if len(data) != len(values):
        raise ValueError(f"{len(data)} diffs for {len(values)} outputs")
    return [apply_diff(value, edits) for value, edits in zip(values, data, strict=True)]


def reference_reply_text(value: Any, kind: str) -> str | None:
    if kind == "text":
        if value is None or isinstance(value, str):
            return value
        raise ValueError(f"expected a text output, got {type(value).__name__}")
    if value is None:
        return None
    if kind == "json":
        if isinstance(value, str):
            return value
        if isinstance(value, Mapping):
            return _content_text(value.get("content"))
    if not isinstance(value, list):
        raise ValueError(f"expected a chatbot list, got {type(value).__name__}")
    if not value:
        return None
    last = value[-1]
    if isinstance(last, list) and len(last) == 2:
        bot = last[1]
        return None if bot is None else _content_text(bot)
    if isinstance(last, Mapping):
        if last.get("role") != "assistant":
            return None
        return _content_text(last.get("content"))
    raise ValueError(f"unrecognised chatbot message {type(last).__name__}")


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "a", "bc"]))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["role", "content", "text", "type"]), inner, max_size=3),
    ),
    max_leaves=8,
)
MESSAGES = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {"role": st.sampled_from(["assistant", "user"]), "content": VALUES | st.text(max_size=4)}
    ),
    st.lists(st.sampled_from(["u", None, "b"]), min_size=2, max_size=2),
)
EDIT = st.tuples(
    st.sampled_from(["append", "replace", "add", "delete", "odd"]),
    st.lists(st.one_of(st.integers(-2, 2), st.sampled_from(["content", "x"])), max_size=3),
    VALUES,
).map(list)
DIFF = st.one_of(st.just([]), st.lists(EDIT, max_size=2), SCALARS)


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*copy.deepcopy(args)))
    except (KeyError, IndexError, TypeError, ValueError, RecursionError) as exc:
        return ("error", type(exc).__name__, str(exc))


@settings(max_examples=500, deadline=None)
@example([["a"], "x"], [[], ["y"]])
@example(["a", ["b"]], [[], 5])
@given(st.none() | st.lists(VALUES | st.lists(MESSAGES), max_size=3), st.lists(DIFF, max_size=3))
def test_apply_output_equals_the_reference(values: list[Any] | None, data: list[Any]) -> None:
    message = {"output": {"data": data}}
    assert outcome(_apply_output, values, message) == outcome(
        reference_apply_output, values, message
    )


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(st.lists(MESSAGES, max_size=3), VALUES), st.sampled_from(["chatbot", "json", "text"])
)
def test_reply_text_equals_the_reference(value: Any, kind: str) -> None:
    assert outcome(reply_text, value, kind) == outcome(reference_reply_text, value, kind)
