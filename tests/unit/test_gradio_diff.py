"""Our streaming-diff application against Gradio's own server-side ``diff``."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.providers._gradio import (
    Const,
    GradioChatSpace,
    MalformedConfig,
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
