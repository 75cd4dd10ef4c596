"""Gradio queue protocol pieces: Space rows, ``/config`` discovery and streaming diffs.

Protocol (Gradio 4.x – 6.x, ``sse_v2``/``sse_v3``; sources: the gradio wheels'
``gradio/routes.py`` ``queue_join``/``queue_data``, ``gradio/server_messages.py``,
``gradio/utils.py`` ``diff`` and ``gradio_client/utils.py`` ``apply_diff``)::

    GET  {space}/config                          -> version, protocol, api_prefix, dependencies
    POST {space}{prefix}/queue/join?             {"data", "event_data", "fn_index",
                                                  "trigger_id", "session_hash"} -> {"event_id"}
    GET  {space}{prefix}/queue/data?session_hash -> text/event-stream of {"msg": ...}

``prefix`` is ``""`` in Gradio 4 and ``"/gradio_api"`` from Gradio 5 on. The first
``process_generating`` of an event carries the full output values; the following ones
carry one diff list per output, each edit ``[action, path, value]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = [
    "Const",
    "GradioChatSpace",
    "InputSlot",
    "SpaceEndpoint",
    "apply_diff",
    "endpoint_from_config",
    "reply_text",
]


@dataclass(frozen=True, slots=True)
class Const:
    """A fixed input value sent as is (e.g. a slider's default)."""

    value: Any


InputSlot: TypeAlias = Literal["prompt", "system", "history"] | Const
"""One element of a Space's ``data`` template: the flattened prompt, the system prompt,
the chat history (always ``[]``: history is flattened into the prompt) or a constant."""


@dataclass(frozen=True, slots=True)
class GradioChatSpace:
    """A Gradio chat Space, as data: adding a Space is a new row, not a new parser.

    Attributes:
        space_id: the model id users name (``"qwen-qwen2-72b-instruct"``).
        base_url: the Space's own host (``https://<space-id>.hf.space``).
        api_name: the chat dependency's ``api_name`` looked up in ``/config``.
        fn_index: fallback ``fn_index`` when ``/config`` is unavailable.
        trigger_id: fallback ``trigger_id`` (component id of the submit trigger).
        inputs: the ``data`` template, one slot per input component.
        reply_output: index of the output component that holds the reply.
        reply_kind: ``"chatbot"`` (tuples or messages) or ``"text"`` (a textbox).
    """

    space_id: str
    base_url: str
    api_name: str
    fn_index: int
    trigger_id: int | None
    inputs: tuple[InputSlot, ...]
    reply_output: int
    reply_kind: Literal["chatbot", "text"] = "chatbot"

    def build_data(self, prompt: str, system: str) -> list[Any]:
        """The join ``data`` list: one value per input component."""
        values: list[Any] = []
        for slot in self.inputs:
            if isinstance(slot, Const):
                values.append(slot.value)
            elif slot == "prompt":
                values.append(prompt)
            elif slot == "system":
                values.append(system)
            else:
                values.append([])
        return values


@dataclass(frozen=True, slots=True)
class SpaceEndpoint:
    """Where and how to call a Space's chat function, as discovered (or defaulted).

    Attributes:
        prefix: route prefix (``""`` or ``"/gradio_api"``).
        fn_index: the dependency index.
        trigger_id: the trigger component id, or ``None``.
        version: the Space's Gradio version, when known.
    """

    prefix: str
    fn_index: int
    trigger_id: int | None
    version: str | None = None


def endpoint_from_config(config: Mapping[str, Any], space: GradioChatSpace) -> SpaceEndpoint:
    """Find the chat dependency in a ``GET /config`` document.

    The dependency is chosen by ``api_name``; failing that, the Space's default
    ``fn_index`` if it exists. ``trigger_id`` is the dependency's first target.

    Raises:
        ValueError: when the document has no usable dependency or an unsupported
            protocol (the WebSocket protocol of Gradio 3).
    """
    protocol = config.get("protocol")
    if isinstance(protocol, str) and not protocol.startswith("sse"):
        raise ValueError(f"unsupported Gradio protocol {protocol!r} (need sse_v2 or later)")
    deps = config.get("dependencies")
    if not isinstance(deps, list) or not deps:
        raise ValueError("config has no dependencies")
    wanted = space.api_name.lstrip("/")
    chosen: tuple[int, Mapping[str, Any]] | None = None
    for index, dep in enumerate(deps):
        if isinstance(dep, Mapping) and str(dep.get("api_name") or "").lstrip("/") == wanted:
            chosen = (int(dep.get("id", index)), dep)
            break
    if chosen is None:
        for index, dep in enumerate(deps):
            if isinstance(dep, Mapping) and int(dep.get("id", index)) == space.fn_index:
                chosen = (space.fn_index, dep)
                break
    if chosen is None:
        raise ValueError(f"no dependency named {wanted!r} or with fn_index {space.fn_index}")
    fn_index, dep = chosen
    trigger_id: int | None = None
    targets = dep.get("targets")
    if isinstance(targets, list) and targets:
        first = targets[0]
        trigger_id = int(first[0]) if isinstance(first, list) else int(first)
    prefix = config.get("api_prefix") or ""
    if not isinstance(prefix, str):
        raise ValueError(f"api_prefix must be a string; got {prefix!r}")
    version = config.get("version")
    return SpaceEndpoint(
        prefix=prefix.rstrip("/"),
        fn_index=fn_index,
        trigger_id=trigger_id,
        version=str(version) if version is not None else None,
    )


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
    for edit in edits:
        if not isinstance(edit, (list, tuple)) or len(edit) != 3:
            raise ValueError(f"malformed diff edit {edit!r}")
        action, path, new = edit
        if not isinstance(path, list):
            raise ValueError(f"malformed diff path {path!r}")
        try:
            value = _apply_edit(value, action, path, new)
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"cannot apply {action!r} at {path!r}: {exc}") from None
    return value


def _apply_edit(root: Any, action: Any, path: list[Any], new: Any) -> Any:
    if not path:
        if action == "replace":
            return new
        if action == "append":
            return root + new
        raise ValueError(f"diff action {action!r} needs a path")
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "replace":
        parent[key] = new
    elif action == "append":
        parent[key] = parent[key] + new
    elif action == "add":
        if isinstance(parent, list):
            parent.insert(int(key), new)
        else:
            parent[key] = new
    elif action == "delete":
        del parent[int(key) if isinstance(parent, list) else key]
    else:
        raise ValueError(f"unknown diff action {action!r}")
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


def reply_text(value: Any, kind: str) -> str | None:
    """The assistant's reply inside an output value, or ``None`` when there is none yet.

    ``kind="text"``: the value itself. ``kind="chatbot"``: the last pair's bot side for
    tuple chatbots (Gradio 4: ``[[user, bot], ...]``), or the last message for messages
    chatbots (Gradio 5: ``{"role", "content": str}``; Gradio 6: ``content`` as a list of
    ``{"type": "text", "text"}`` parts) when it is an assistant message.

    Raises:
        ValueError: a value of neither shape.
    """
    if kind == "text":
        if value is None or isinstance(value, str):
            return value
        raise ValueError(f"expected a text output, got {type(value).__name__}")
    if value is None:
        return None
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
    raise ValueError(f"unrecognised chatbot message {last!r:.100}")
