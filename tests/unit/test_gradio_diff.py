"""Our streaming-diff application against Gradio's own server-side ``diff``."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from llmrelay.providers._gradio import (
    Const,
    GradioChatSpace,
    MalformedConfig,
    append_to_reply,
    apply_diff,
    endpoint_from_config,
    reply_text,
    validate_prefix,
)

gradio_utils = pytest.importorskip("gradio.utils")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=12,
)


gradio_client_utils = pytest.importorskip("gradio_client.utils")


@settings(max_examples=200, deadline=None)
@given(old=json_values, new=json_values)
def test_gradios_diffs_apply_exactly_as_in_gradio_client(old: Any, new: Any) -> None:
    """Same result as the official client on every diff Gradio's server produces.

    (Gradio's server-side ``diff`` mis-numbers nested list deletes, so the official
    client does not always rebuild ``new`` either; agreement is what matters.)
    """
    edits = gradio_utils.diff(copy.deepcopy(old), copy.deepcopy(new))
    try:
        expected = gradio_client_utils.apply_diff(copy.deepcopy(old), copy.deepcopy(edits))
    except (KeyError, IndexError, TypeError, ValueError):
        with pytest.raises(ValueError, match="cannot apply"):
            apply_diff(copy.deepcopy(old), edits)
        return
    assert apply_diff(copy.deepcopy(old), edits) == expected


flat_values = st.lists(st.text(max_size=6) | st.none(), max_size=5)


@settings(max_examples=150, deadline=None)
@given(old=flat_values, new=flat_values)
def test_applying_gradios_diff_reproduces_flat_values(old: Any, new: Any) -> None:
    edits = gradio_utils.diff(copy.deepcopy(old), copy.deepcopy(new))
    assert apply_diff(copy.deepcopy(old), edits) == new


@settings(max_examples=100, deadline=None)
@given(prefix=st.text(max_size=20), chunks=st.lists(st.text(max_size=5), max_size=10))
def test_streamed_chatbot_appends_rebuild_the_reply(prefix: str, chunks: list[str]) -> None:
    value: Any = [{"role": "user", "content": "q"}, {"role": "assistant", "content": prefix}]
    text = prefix
    for chunk in chunks:
        new = copy.deepcopy(value)
        new[1]["content"] = text + chunk
        value = apply_diff(value, gradio_utils.diff(copy.deepcopy(value), new))
        text += chunk
        assert reply_text(value, "chatbot") == text


@pytest.mark.parametrize(
    "edits",
    [[["explode", [0], 1]], [["append", [5], "x"]], [["replace"]], ["nonsense"], [["add", [], 1]]],
)
def test_bad_edits_are_value_errors(edits: Any) -> None:
    with pytest.raises(ValueError, match=r"diff|cannot apply|needs a path"):
        apply_diff(["a"], edits)


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ([["hi", "hello"]], "chatbot", "hello"),
        ([["hi", None]], "chatbot", None),
        ([{"role": "user", "content": "hi"}], "chatbot", None),
        ([{"role": "assistant", "content": "yo"}], "chatbot", "yo"),
        (
            [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "file"}]}],
            "chatbot",
            "a",
        ),
        ([], "chatbot", None),
        ("plain", "text", "plain"),
        ("reply", "json", "reply"),
        ({"role": "assistant", "content": "y"}, "json", "y"),
        ({"role": "assistant", "content": [{"type": "text", "text": "z"}]}, "json", "z"),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "w"}], "json", "w"),
        (None, "json", None),
    ],
)
def test_reply_text_per_chatbot_format(value: Any, kind: str, expected: str | None) -> None:
    assert reply_text(value, kind) == expected


def test_reply_text_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match="chatbot"):
        reply_text({"not": "a list"}, "chatbot")


# -- the token path: append_to_reply is apply_diff + reply_text, when it applies -----------


def _general(values: list[Any], out: int, data: list[Any], kind: str, skip: int) -> Any:
    """What the general path makes of one message: (values, reply text), or the error."""
    try:
        new = [v if e == [] else apply_diff(v, e) for v, e in zip(values, data, strict=True)]
        return new, reply_text(new[out], kind, skip)
    except ValueError as exc:
        return type(exc)


_texts = st.text(max_size=4)
_messages = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "assistant", "system"]),
        "content": _texts | _texts | st.none(),
    }
)
_pairs = st.lists(_texts, min_size=2, max_size=2) | st.lists(
    _texts | st.none(), min_size=2, max_size=3
)
_reply_values = st.one_of(
    st.lists(_messages, min_size=1, max_size=3),
    st.lists(_pairs, min_size=1, max_size=3),
    _texts,
    st.lists(_messages, max_size=3) | st.lists(_pairs, max_size=3),
    st.none() | st.lists(_messages | _pairs | st.integers(), max_size=2),
)
_keys = st.sampled_from(["content", "role", 0, 1, 2, -1, True, None])
_paths = (
    st.lists(st.integers(-2, 3) | st.just(True), max_size=1).flatmap(
        lambda head: st.tuples(st.just(head), st.lists(_keys, max_size=2))
    )
).map(lambda t: t[0] + t[1])
_edits = st.lists(
    st.tuples(
        st.sampled_from(["append", "append", "append", "replace", "add", "delete", "x"]),
        _paths,
        _texts | st.integers() | st.lists(_texts, max_size=1) | st.none(),
    ).map(list),
    max_size=2,
)


@st.composite
def _messages_and_values(draw: st.DrawFn) -> tuple[list[Any], int, list[Any], str, int]:
    outputs = draw(st.integers(1, 3))
    out = draw(st.integers(0, outputs - 1))
    values = [draw(_reply_values) for _ in range(outputs)]
    # mostly unchanged outputs ([]), as on the token path
    data: list[Any] = [[] if draw(st.integers(0, 4)) else draw(_edits) for _ in range(outputs)]
    reply = values[out]
    near = draw(st.integers(0, 3))  # 0: any edits; else one append at or near the reply
    if isinstance(reply, list) and reply and near:
        key = "content" if isinstance(reply[-1], dict) else 1
        index = draw(st.sampled_from([len(reply) - 1, len(reply) - 1, len(reply) - 2, -1]))
        key = draw(st.sampled_from([key, key, key, "role", "content", 0, 1]))
        data[out] = [["append", [index, key], draw(_texts | _texts | st.integers())]]
    elif isinstance(reply, str) and near:
        data[out] = [["append", draw(st.sampled_from([[], [], [0]])), draw(_texts)]]
    kind = draw(st.sampled_from(["chatbot", "chatbot", "text", "json"]))
    return values, out, data, kind, draw(st.sampled_from([0, 0, 1, 2]))


@settings(max_examples=600, deadline=None)
@given(_messages_and_values())
def test_append_to_reply_is_the_general_path_where_it_applies(
    case: tuple[list[Any], int, list[Any], str, int],
) -> None:
    values, out, data, kind, skip = case
    expected = _general(copy.deepcopy(values), out, copy.deepcopy(data), kind, skip)
    try:
        before = reply_text(copy.deepcopy(values[out]), kind, skip)
    except ValueError:
        before = ValueError
    fast = copy.deepcopy(values)
    result = append_to_reply(fast, out, copy.deepcopy(data), kind, skip)
    if result is None:
        assert fast == values  # nothing applied: the general path takes the message
        return
    event("the fast path")
    new_values, text = expected
    assert fast == new_values
    assert result == (before, text)
    assert text.startswith(result[0])


@pytest.mark.parametrize(
    ("values", "data", "kind", "skip", "expected"),
    [
        # Gradio 5 messages, Gradio 4 tuples, a textbox, ChatInterface's json string
        ([None, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]],
         [[], [["append", [1, "content"], "b"]]], "chatbot", 1, ("a", "ab")),
        ([[["q", "a"]], "s"], [[["append", [0, 1], "b"]], []], "chatbot", 0, ("a", "ab")),
        (["a", 3], [[["append", [], "b"]], []], "text", 0, ("a", "ab")),
        (["a"], [[["append", [], "b"]]], "json", 0, ("a", "ab")),
        ([[{"role": "assistant", "content": "a"}]], [[["append", [0, "content"], "b"]]],
         "json", 0, ("a", "ab")),
    ],
)  # fmt: skip
def test_the_token_shapes_take_the_fast_path(
    values: list[Any], data: list[Any], kind: str, skip: int, expected: tuple[str, str]
) -> None:
    out = next(i for i, edits in enumerate(data) if edits)
    general = _general(copy.deepcopy(values), out, data, kind, skip)
    assert append_to_reply(values, out, data, kind, skip) == expected
    assert values == general[0]


@pytest.mark.parametrize(
    ("values", "data", "kind", "skip"),
    [
        # the last message is the user's, or history (skip), or an earlier message
        ([[{"role": "user", "content": ""}]], [[["append", [0, "content"], "b"]]], "chatbot", 0),
        ([[["q", "a"]]], [[["append", [0, 1], "b"]]], "chatbot", 1),
        ([[["q", "a"], ["r", "c"]]], [[["append", [0, 1], "b"]]], "chatbot", 0),
        ([[["q", "a"]]], [[["append", [-1, 1], "b"]]], "chatbot", 0),
        # another key of the last message: the user's side, the role
        ([[["q", "a"]]], [[["append", [0, 0], "b"]]], "chatbot", 0),
        ([[{"role": "assistant", "content": "a"}]], [[["append", [0, "role"], "b"]]],
         "chatbot", 0),
        # another output changes too; two edits; not a string; Gradio 6 content parts
        (["a", "s"], [[["append", [], "b"]], [["replace", [], "t"]]], "text", 0),
        (["a"], [[["append", [], "b"], ["append", [], "c"]]], "text", 0),
        ([[{"role": "assistant", "content": "a"}]], [[["append", [0, "content"], 1]]],
         "chatbot", 0),
        ([[{"role": "assistant", "content": [{"type": "text", "text": "a"}]}]],
         [[["append", [0, "content"], [{"type": "text", "text": "b"}]]]], "chatbot", 0),
        (["a"], [[["append", [], "b"]]], "chatbot", 0),
    ],
)  # fmt: skip
def test_other_messages_are_left_to_the_general_path(
    values: list[Any], data: list[Any], kind: str, skip: int
) -> None:
    kept = copy.deepcopy(values)
    assert append_to_reply(values, 0, data, kind, skip) is None
    assert values == kept


SPACE = GradioChatSpace(
    space_id="o/s",
    api_name="model_chat",
    fn_index=0,
    trigger_id=11,
    inputs=("prompt", "history", "system", Const(0.7)),
    reply_output=1,
)


def test_build_data_follows_the_template() -> None:
    assert SPACE.endpoint().build_data("p", "sys") == ["p", [], "sys", 0.7]
    assert SPACE.endpoint().build_data("p", None) == ["p", [], "", 0.7]


def test_endpoint_found_by_api_name_with_prefix() -> None:
    config = {
        "version": "5.50.0",
        "protocol": "sse_v3",
        "api_prefix": "/gradio_api",
        "dependencies": [
            {"id": 0, "api_name": "clear", "targets": [[3, "click"]]},
            {"id": 4, "api_name": "model_chat", "targets": [[7, "submit"], [9, "click"]]},
        ],
    }
    endpoint = endpoint_from_config(config, SPACE)
    assert (endpoint.prefix, endpoint.fn_index, endpoint.trigger_id) == ("/gradio_api", 4, 7)
    assert endpoint.version == "5.50.0"


def test_endpoint_falls_back_to_fn_index_and_no_prefix() -> None:
    config = {
        "protocol": "sse_v3",
        "dependencies": [{"api_name": None, "targets": [[11, "submit"]]}],
    }
    endpoint = endpoint_from_config(config, SPACE)
    assert (endpoint.prefix, endpoint.fn_index, endpoint.trigger_id) == ("", 0, 11)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"protocol": "ws", "dependencies": [{}]}, "unsupported Gradio protocol"),
        ({"protocol": "sse_v3", "dependencies": []}, "no dependenc"),
        ({"protocol": "sse_v3"}, "no dependencies"),
        ([], "not an object"),
        ({"protocol": "sse_v3", "dependencies": [{"id": 3, "api_name": "x"}]}, "no dependency"),
    ],
)
def test_unusable_configs(config: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        endpoint_from_config(config, SPACE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ""), ("", ""), ("/gradio_api", "/gradio_api"), ("/gradio_api/", "/gradio_api"),
     ("/a/b_c-d.e~f", "/a/b_c-d.e~f")],
)  # fmt: skip
def test_safe_prefixes(value: Any, expected: str) -> None:
    assert validate_prefix(value) == expected


@pytest.mark.parametrize("value", ["/", "//x", "/a//b", "/.", "/a/.hidden", 3, ["/x"], "/x:y"])
def test_unsafe_prefixes(value: Any) -> None:
    with pytest.raises(MalformedConfig, match="api_prefix"):
        validate_prefix(value)
