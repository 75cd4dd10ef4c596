"""Gradio chat Spaces as data: known rows, ``/config`` discovery, the join ``data``.

Protocol (Gradio 4.x – 6.x, ``sse_v2``/``sse_v3``; sources: the gradio wheels'
``gradio/routes.py`` ``queue_join``/``queue_data``, ``gradio/blocks.py`` ``get_config``,
``gradio/chat_interface.py`` and ``gradio_client/client.py``)::

    GET  {space}/config                          -> version, protocol, api_prefix,
                                                    components, dependencies
    POST {space}{prefix}/queue/join?             {"data", "event_data", "fn_index",
                                                  "trigger_id", "session_hash"} -> {"event_id"}
    GET  {space}{prefix}/queue/data?session_hash -> text/event-stream of {"msg": ...}

Discovery (``endpoint_from_config``) finds the chat dependency and maps its inputs and
outputs by component type: the message textbox (or multimodal textbox), the history
(a chatbot or a state, sent as ``[]``: history is flattened into the prompt), an
optional system textbox (a textbox
labelled "system…", which keeps its own default value when no system prompt is given),
and any other input at its ``/config`` default value. The reply is read from the first
chatbot output (``gr.Blocks`` apps), or from the first output of ``gr.ChatInterface``'s
API dependency (outputs ``[json | textbox, state]``, bound to its hidden "Fake API"
button). ``/config`` is untrusted: ``api_prefix`` must be a plain path, ids plain ints.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ._gradio_diff import ReplyKind, apply_diff, reply_text

__all__ = [
    "ChatEndpoint",
    "Const",
    "GradioChatSpace",
    "InputSlot",
    "MalformedConfig",
    "UnknownLayout",
    "apply_diff",
    "endpoint_from_config",
    "reply_text",
    "validate_prefix",
]

_MAX_ID = 2**31
_PREFIX = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*")
"""A route prefix: ``/segment/...`` of unreserved characters; no segment starts with a
dot (so no ``.``/``..``), no empty segment (``//host``), no ``@``, ``:``, ``?``, ``#``, ``%``."""


class MalformedConfig(ValueError):
    """``/config`` is not a usable document (wrong types, a hostile ``api_prefix``)."""


class UnknownLayout(ValueError):
    """``/config`` is well formed but no chat dependency could be recognised in it."""


@dataclass(frozen=True, slots=True)
class Const:
    """An input sent at a fixed value (its ``/config`` default, e.g. a slider's).

    ``label`` is the component's label, by which a request may set another value.
    """

    value: Any
    label: str | None = None


InputSlot: TypeAlias = Literal["prompt", "multimodal", "system", "history"] | Const
"""One element of the join ``data`` template: the flattened prompt (as a string, or as
a multimodal textbox's ``{"text", "files": []}``), the system prompt, the chat history
(always ``[]``) or a constant."""


@dataclass(frozen=True, slots=True)
class ChatEndpoint:
    """How to call a Space's chat function, as discovered from ``/config`` (or a row).

    Attributes:
        prefix: route prefix (``""`` or ``"/gradio_api"``), validated.
        fn_index: the dependency's id.
        trigger_id: the trigger component id, or ``None``.
        inputs: the ``data`` template, one slot per input component.
        reply_output: index of the output that holds the reply.
        reply_kind: how to read the reply (``_gradio_diff.reply_text``).
        system_default: the system textbox's own default value (sent when the request
            has no system prompt).
        version: the Space's Gradio version, when known.
    """

    prefix: str
    fn_index: int
    trigger_id: int | None
    inputs: tuple[InputSlot, ...]
    reply_output: int
    reply_kind: ReplyKind = "chatbot"
    system_default: str = ""
    version: str | None = None

    @property
    def labels(self) -> list[str]:
        """Labels of the other inputs (those a request may set by label)."""
        return [s.label for s in self.inputs if isinstance(s, Const) and s.label]

    def build_data(
        self, prompt: str, system: str | None, inputs: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """The join ``data`` list.

        Args:
            prompt: the flattened conversation.
            system: the system prompt; ``None`` keeps the Space's own default.
            inputs: values for other inputs by label (exact, else case-insensitive).

        Raises:
            KeyError: a label in ``inputs`` that no other input has.
        """
        wanted = dict(inputs or {})
        folded = {label.casefold(): label for label in wanted}
        values: list[Any] = []
        for slot in self.inputs:
            if isinstance(slot, Const):
                key = (
                    slot.label
                    if slot.label in wanted
                    else folded.get((slot.label or "").casefold())
                )
                if slot.label and key is not None:
                    values.append(wanted.pop(key))
                    folded.pop(key.casefold(), None)
                else:
                    values.append(slot.value)
            elif slot == "prompt":
                values.append(prompt)
            elif slot == "multimodal":
                values.append({"text": prompt, "files": []})
            elif slot == "system":
                values.append(self.system_default if system is None else system)
            else:
                values.append([])
        if wanted:
            raise KeyError(", ".join(sorted(wanted)))
        return values


@dataclass(frozen=True, slots=True)
class GradioChatSpace:
    """A known Space whose layout is given, for when discovery cannot read it.

    Attributes:
        space_id: the Space's Hub id (``"Qwen/Qwen2-72B-Instruct"``).
        api_name: the chat dependency's ``api_name`` looked up in ``/config``.
        fn_index: ``fn_index`` when ``/config`` is unavailable or names no such API.
        trigger_id: the trigger component id in that case.
        inputs: the ``data`` template when the inputs cannot be classified.
        reply_output: index of the output holding the reply, in that case.
        reply_kind: how to read that output.
    """

    space_id: str
    api_name: str
    fn_index: int
    trigger_id: int | None
    inputs: tuple[InputSlot, ...]
    reply_output: int
    reply_kind: ReplyKind = "chatbot"

    def endpoint(self, prefix: str = "", version: str | None = None) -> ChatEndpoint:
        """The endpoint this row describes (no ``/config``: Gradio 4 paths)."""
        return ChatEndpoint(
            prefix,
            self.fn_index,
            self.trigger_id,
            self.inputs,
            self.reply_output,
            self.reply_kind,
            version=version,
        )


def validate_prefix(value: Any) -> str:
    """``api_prefix`` as a safe path (``""`` when absent).

    Raises:
        MalformedConfig: anything but ``/segment/...`` of unreserved characters — a
            prefix such as ``@evil.example``, ``//evil``, ``http://x`` or ``/..`` would
            send the request (and the token) elsewhere.
    """
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > 200:
        raise MalformedConfig(f"unusable api_prefix {value!r:.80}")
    prefix = value[:-1] if value.endswith("/") and len(value) > 1 else value
    if not _PREFIX.fullmatch(prefix):
        raise MalformedConfig(f"unsafe api_prefix {value!r:.80} (must be a plain path)")
    return prefix


def _plain_id(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value < _MAX_ID:
        raise MalformedConfig(f"{what} is not a component/dependency id: {value!r:.40}")
    return value


def _trigger(dep: Mapping[str, Any]) -> int | None:
    """The first target's component id (``[[id, "event"], ...]``, or ``[id, ...]``)."""
    targets = dep.get("targets")
    if targets is None or targets == []:
        return None
    if not isinstance(targets, list):
        raise MalformedConfig(f"dependency targets {targets!r:.80}")
    first = targets[0]
    if isinstance(first, list):
        if not first:
            raise MalformedConfig("empty dependency target")
        first = first[0]
    return None if first is None else _plain_id(first, "trigger")


def _components(value: Any) -> dict[int, tuple[str, Mapping[str, Any]]]:
    """``components`` as ``{id: (type, props)}``; malformed entries are skipped."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise MalformedConfig("components is not a list")
    found: dict[int, tuple[str, Mapping[str, Any]]] = {}
    for item in value:
        if not isinstance(item, dict) or type(item.get("id")) is not int:
            continue
        kind, props = item.get("type"), item.get("props")
        found[item["id"]] = (
            kind if isinstance(kind, str) else "",
            props if isinstance(props, dict) else {},
        )
    return found


def _ids(dep: Mapping[str, Any], key: str) -> list[int]:
    value = dep.get(key)
    if not isinstance(value, list):
        raise MalformedConfig(f"dependency {key} is not a list")
    return [_plain_id(item, key) for item in value]


def _is_public(dep: Mapping[str, Any]) -> bool:
    """Whether ``dep`` is part of the Space's API.

    ``api_visibility: "public"`` (Gradio 6) or ``show_api`` not false (Gradio 4/5),
    a backend function, an API name that is not ``false``.
    """
    if dep.get("backend_fn") is False or dep.get("api_name") is False:
        return False
    if "api_visibility" in dep:
        return bool(dep["api_visibility"] == "public")
    return dep.get("show_api", True) is not False


@dataclass(frozen=True, slots=True)
class _Layout:
    inputs: tuple[InputSlot, ...]
    reply_output: int
    reply_kind: ReplyKind
    system_default: str


def _layout(dep: Mapping[str, Any], components: Mapping[int, tuple[str, Any]]) -> _Layout:
    """Classify a dependency's inputs and outputs by component type.

    Raises:
        MalformedConfig: inputs/outputs are not lists of ids.
        UnknownLayout: no message textbox, or no chatbot / ChatInterface reply output.
    """
    inputs, outputs = _ids(dep, "inputs"), _ids(dep, "outputs")
    slots: list[InputSlot] = []
    system_default: str | None = None
    has_prompt = has_history = False
    for cid in inputs:
        kind, props = components.get(cid, ("", {}))
        label = props.get("label")
        value = props.get("value")
        is_system = isinstance(label, str) and "system" in label.lower()
        if kind == "textbox" and is_system and system_default is None:
            slots.append("system")
            system_default = value if isinstance(value, str) else ""
        elif kind in ("textbox", "multimodaltextbox") and not has_prompt:
            slots.append("prompt" if kind == "textbox" else "multimodal")
            has_prompt = True
        elif kind in ("chatbot", "state") and not has_history:
            slots.append("history")
            has_history = True
        else:
            slots.append(Const(value, label if isinstance(label, str) and label else None))
    if not has_prompt:
        raise UnknownLayout("no message textbox among the inputs")
    kinds = [components.get(cid, ("", {}))[0] for cid in outputs]
    reply_kind: ReplyKind
    if "chatbot" in kinds:
        reply_output, reply_kind = kinds.index("chatbot"), "chatbot"
    elif has_history and len(kinds) == 2 and kinds[1] == "state" and kinds[0] == "json":
        reply_output, reply_kind = 0, "json"  # ChatInterface, Gradio 5/6
    elif has_history and len(kinds) == 2 and kinds[1] == "state" and kinds[0] == "textbox":
        reply_output, reply_kind = 0, "text"  # ChatInterface, Gradio 4
    else:
        raise UnknownLayout("no chatbot or ChatInterface reply among the outputs")
    return _Layout(tuple(slots), reply_output, reply_kind, system_default or "")


def _find_named(deps: list[Any], api_name: str) -> tuple[int, Mapping[str, Any]] | None:
    wanted = api_name.lstrip("/")
    for index, dep in enumerate(deps):
        if isinstance(dep, dict):
            name = dep.get("api_name")
            if isinstance(name, str) and name.lstrip("/") == wanted:
                return _fn_index(dep, index), dep
    return None


def _fn_index(dep: Mapping[str, Any], index: int) -> int:
    return _plain_id(dep.get("id", index), "dependency id")


def endpoint_from_config(config: Any, row: GradioChatSpace | None = None) -> ChatEndpoint:
    """Find the chat dependency in a ``GET /config`` document.

    With a known ``row``: the dependency named ``row.api_name`` (else the row's
    ``fn_index``), its layout discovered, or the row's when discovery cannot classify
    it. Without: the first public dependency whose inputs hold a message textbox and
    whose outputs hold a chatbot, or ``gr.ChatInterface``'s API dependency.

    Raises:
        MalformedConfig: not a ``/config`` document, an unsafe ``api_prefix``, a
            non-SSE protocol (Gradio 3's WebSocket) or malformed ids.
        UnknownLayout: no chat dependency found (a row may then stand in).
    """
    if not isinstance(config, dict):
        raise MalformedConfig(f"/config is a JSON {type(config).__name__}, not an object")
    protocol = config.get("protocol")
    if protocol is not None and (not isinstance(protocol, str) or not protocol.startswith("sse")):
        raise MalformedConfig(f"unsupported Gradio protocol {protocol!r:.40} (need sse_v2+)")
    prefix = validate_prefix(config.get("api_prefix"))
    version = config.get("version")
    version = version if isinstance(version, str) else None
    deps = config.get("dependencies")
    if not isinstance(deps, list):
        raise MalformedConfig("/config has no dependencies list")
    components = _components(config.get("components"))
    if row is not None:
        found = _find_named(deps, row.api_name)
        if found is None:
            for index, dep in enumerate(deps):
                if isinstance(dep, dict) and _fn_index(dep, index) == row.fn_index:
                    found = (row.fn_index, dep)
                    break
        if found is None:
            raise UnknownLayout(f"no dependency {row.api_name!r} or fn_index {row.fn_index}")
        fn_index, dep = found
        trigger = _trigger(dep)
        try:
            layout = _layout(dep, components)
        except ValueError:  # the row knows this dependency's layout
            layout = _Layout(row.inputs, row.reply_output, row.reply_kind, "")
        return ChatEndpoint(prefix, fn_index, trigger, layout.inputs, layout.reply_output,
                            layout.reply_kind, layout.system_default, version)  # fmt: skip
    for index, dep in enumerate(deps):
        if not isinstance(dep, dict) or not _is_public(dep):
            continue
        try:
            layout = _layout(dep, components)
        except UnknownLayout:
            continue
        return ChatEndpoint(prefix, _fn_index(dep, index), _trigger(dep), layout.inputs,
                            layout.reply_output, layout.reply_kind, layout.system_default,
                            version)  # fmt: skip
    raise UnknownLayout(
        "no public dependency takes a message textbox and answers in a chatbot "
        "(gr.Blocks) or as gr.ChatInterface's API"
    )
