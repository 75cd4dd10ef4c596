"""Gradio streaming diffs and where a chat reply sits in an output value.

``process_generating`` messages after the first carry one diff list per output, each edit
``[action, path, value]`` with actions ``replace``, ``append``, ``add`` and ``delete``
(server: ``gradio/utils.py`` ``diff``; official client: ``gradio_client/utils.py``
``apply_diff``, in the ``gradio`` / ``gradio_client`` wheels on PyPI).

Everything here treats the values as untrusted: a path must address an existing list
index (a plain ``int`` within bounds) or a mapping key, so a hostile index
such as ``10**100`` or ``1e999`` is a ``ValueError``, never an ``OverflowError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

__all__ = ["ReplyKind", "append_to_reply", "apply_diff", "reply_text"]

ReplyKind: TypeAlias = Literal["chatbot", "text", "json"]
"""Where the reply sits: a chatbot value, a textbox value, or ChatInterface's ``json``
output (a string, a message mapping or a list of messages)."""


def apply_diff(value: Any, edits: Sequence[Any]) -> Any:
    """Apply one output's streaming diff to its current value (in place where possible).

    Each edit is ``[action, path, value]``: ``replace`` sets, ``append`` concatenates
    (string suffix or list extension), ``add`` inserts into a list at the index or sets a
    mapping key, ``delete`` removes a list index or mapping key. An empty ``path``
    addresses the value itself.

    Returns:
        The new value (a new object when the root itself was replaced or appended to).

    Raises:
        ValueError: a malformed edit, an unknown action or a path that does not exist.
    """
    if not isinstance(edits, list):
        raise ValueError(f"malformed diff {edits!r:.100}")
    for edit in edits:
        if not isinstance(edit, list) or len(edit) != 3:
            raise ValueError(f"malformed diff edit {edit!r:.100}")
        action, path, new = edit
        if not isinstance(path, list):
            raise ValueError(f"malformed diff path {path!r:.100}")
        try:
            value = _apply_edit(value, action, path, new)
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"cannot apply {action!r:.20} at {path!r:.100}: {exc}") from None
    return value


def _index(container: list[Any], key: Any) -> int:
    """``key`` as an index of ``container``: a plain ``int`` in range.

    Negative ones count from the end (Gradio's server ``diff`` uses them for deletes).
    """
    if type(key) is not int or not -len(container) <= key < len(container):
        raise IndexError(f"no index {key!r:.30} in a list of {len(container)}")
    return key


def _step(parent: Any, key: Any) -> Any:
    if isinstance(parent, list):
        return parent[_index(parent, key)]
    if isinstance(parent, dict):
        return parent[key]
    raise TypeError(f"cannot index a {type(parent).__name__}")


def _concat(old: Any, new: Any) -> Any:
    if isinstance(old, str) and isinstance(new, str):
        return old + new
    if isinstance(old, list) and isinstance(new, list):
        return old + new
    raise TypeError(f"cannot append a {type(new).__name__} to a {type(old).__name__}")


def _apply_edit(root: Any, action: Any, path: list[Any], new: Any) -> Any:
    if not path:
        if action == "replace":
            return new
        if action == "append":
            return _concat(root, new)
        raise ValueError(f"diff action {action!r:.20} needs a path")
    parent = root
    for key in path[:-1]:
        parent = _step(parent, key)
    key = path[-1]
    if isinstance(parent, list):
        if action == "add":  # like list.insert (gradio_client): clamped to the ends
            if type(key) is not int:
                raise IndexError(f"no index {key!r:.30} in a list")
            size = len(parent)
            parent.insert(max(-size, min(key, size)), new)
            return root
        key = _index(parent, key)
    elif not isinstance(parent, dict):
        raise TypeError(f"cannot index a {type(parent).__name__}")
    if action == "replace":
        parent[key] = new
    elif action == "append":
        parent[key] = _concat(parent[key], new)
    elif action == "add":
        parent[key] = new
    elif action == "delete":
        del parent[key]
    else:
        raise ValueError(f"unknown diff action {action!r:.20}")
    return root


def _content_text(content: Any) -> str | None:
    """Text of a chatbot message's ``content``: a string, or Gradio 6 content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part.get("text", "")
            for part in content
            if isinstance(part, Mapping) and part.get("type", "text") == "text"
        ]
        return "".join(t for t in texts if isinstance(t, str))
    if isinstance(content, Mapping) and isinstance(content.get("text"), str):
        return str(content["text"])
    return None


def reply_text(value: Any, kind: str, skip: int = 0) -> str | None:
    """The assistant's reply inside an output value, or ``None`` when there is none yet.

    ``kind="text"``: the value itself. ``kind="chatbot"``: the last pair's bot side for
    tuple chatbots (Gradio 4: ``[[user, bot], ...]``), or the last message for messages
    chatbots (Gradio 5: ``{"role", "content": str}``; Gradio 6: ``content`` as a list of
    ``{"type": "text", "text"}`` parts) when it is an assistant message — looking only
    past the first ``skip`` entries (the history that was sent: the chat function's
    own output follows it, and an edit of an earlier entry is not the reply).
    ``kind="json"`` (ChatInterface's API output): a string, one message mapping, or a
    list of messages as for a chatbot.

    Raises:
        ValueError: a value of neither shape.
    """
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
    if len(value) <= skip or not value:
        return None
    last = value[-1]
    if type(last) is dict or isinstance(last, Mapping):  # a dict first: no ABC check
        if last.get("role") != "assistant":
            return None
        return _content_text(last.get("content"))
    if isinstance(last, list) and len(last) == 2:
        bot = last[1]
        return None if bot is None else _content_text(bot)
    raise ValueError(f"unrecognised chatbot message {type(last).__name__}")


def append_to_reply(
    values: list[Any], out: int, data: list[Any], kind: str, skip: int = 0
) -> tuple[str, str] | None:
    """The token path: apply ``data`` when it only appends text to the reply.

    ``data`` is one ``process_generating`` message's diffs (one list per output of
    ``values``). When every output but ``out`` is unchanged (``[]``) and ``out``'s diff is
    one ``append`` of a string to where ``reply_text(values[out], kind, skip)`` reads the
    reply — a messages chatbot's last (assistant) message's string ``content``, a tuple
    chatbot's last bot side (past the ``skip`` history entries), a text output's string
    (or a ``json`` output's: a string or a chatbot-like list) — the append is applied
    as ``apply_diff`` applies it and the ``(old, new)`` reply texts are returned. Any
    other message returns ``None`` with nothing applied, for the general path
    (``apply_diff`` then ``reply_text``), which gives the same outcome on these.
    """
    if len(data) != len(values) or data.count([]) + 1 != len(data):
        return None
    edits = data[out]
    if type(edits) is not list or len(edits) != 1:
        return None
    edit = edits[0]
    if type(edit) is not list or len(edit) != 3:
        return None
    action, path, new = edit
    if action != "append" or type(new) is not str or type(path) is not list:
        return None
    value = values[out]
    if type(value) is str:  # a textbox, or ChatInterface's json output holding a string
        if path or kind not in ("text", "json"):
            return None
        values[out] = text = value + new
        return value, text
    if kind not in ("chatbot", "json") or type(value) is not list or len(path) != 2:
        return None
    index, key = path
    size = len(value)
    if type(index) is not int or index != size - 1 or size <= skip:
        return None
    last = value[index]
    if type(last) is dict:  # Gradio 5/6 messages: {"role", "content"}
        old = last.get("content")
        if key != "content" or type(old) is not str or last.get("role") != "assistant":
            return None
        last["content"] = text = old + new
        return old, text
    if type(last) is list and len(last) == 2:  # Gradio 4 tuples: [user, bot]
        old = last[1]
        if type(key) is not int or key != 1 or type(old) is not str:
            return None
        last[1] = text = old + new
        return old, text
    return None
