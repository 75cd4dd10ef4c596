"""Gradio chat Spaces as data: known rows, ``/config`` discovery, the join ``data``.

Protocol (Gradio 4.x – 6.x, ``sse_v2``/``sse_v3``; sources: ``gradio/routes.py``
``queue_join``/``queue_data``, ``gradio/blocks.py`` ``get_config``,
``gradio/chat_interface.py`` and ``client/python/gradio_client/client.py`` in
https://github.com/gradio-app/gradio)::

    GET  {space}/config                          -> version, protocol, api_prefix,
                                                    components, dependencies
    GET  {space}{prefix}/info                    -> {"named_endpoints": {"/name": ...},
                                                     "unnamed_endpoints": {...}}
    POST {space}{prefix}/queue/join?             {"data", "event_data", "fn_index",
                                                  "trigger_id", "session_hash"} -> {"event_id"}
    GET  {space}{prefix}/queue/data?session_hash -> text/event-stream of {"msg": ...}

Discovery (``endpoint_from_config``) finds the chat dependency and maps its inputs and
outputs by component type: the message textbox (or multimodal textbox), the history (a
chatbot, sent in the Space's own format, ``HistoryFormat``), the system prompt and any
other input at its ``/config`` default value. A ``gr.State`` input (the history of a
``gr.ChatInterface``'s API) cannot carry the history: the server replaces the value
sent with the session's own state (``gradio/blocks.py`` ``preprocess_data``: a stateful
block's input is ``state[block._id]``; gradio_client sends ``None`` there), so it is
sent empty and the conversation is flattened into the message. The system input is a
textbox labelled "system…", or — the layout of the Qwen2-72B-Instruct Space — a
**hidden, unlabelled** textbox fed to the chat function and mirrored by a textbox
labelled "System" (the chat function writes it, or another dependency copies it into
the hidden one). The reply is read from the first chatbot output (``gr.Blocks`` apps),
or from the first output of ``gr.ChatInterface``'s API dependency (outputs ``[json |
textbox, state]``, bound to its hidden "Fake API" button; named ``chat`` in Gradio 4,
after the wrapped function from Gradio 6).

Which dependencies may be called follows gradio_client's ``Endpoint``:
``api_visibility`` (Gradio 6: ``public``, ``undocumented``, ``private``) or, before it,
``api_name: false`` (private) and ``show_api: false`` (undocumented). A private
dependency is never called; a public one is preferred over an undocumented one.

A known Space's row names its chat dependency and the role of each of its inputs: those
win over discovery for that dependency, and a dependency whose layout contradicts the
row is an error (``LayoutMismatch``), never a call with the inputs in the wrong places.
``/config`` is untrusted: ``api_prefix`` must be a plain path, ids plain ints.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ._gradio_diff import ReplyKind, append_to_reply, apply_diff, reply_text

__all__ = [
    "Ambiguous",
    "ChatEndpoint",
    "Const",
    "GradioChatSpace",
    "HistoryFormat",
    "InputInfo",
    "InputSlot",
    "LayoutMismatch",
    "MalformedConfig",
    "UnknownLayout",
    "append_to_reply",
    "apply_diff",
    "endpoint_from_config",
    "history_value",
    "reply_text",
    "validate_prefix",
    "visibility",
]

_MAX_ID = 2**31
_PREFIX = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*")
"""A route prefix: ``/segment/...`` of unreserved characters; no segment starts with a
dot (so no ``.``/``..``), no empty segment (``//host``), no ``@``, ``:``, ``?``, ``#``, ``%``."""
_MESSAGE_KINDS = frozenset({"textbox", "multimodaltextbox"})
_HISTORY_KINDS = frozenset({"chatbot", "state"})


class MalformedConfig(ValueError):
    """``/config`` is not a usable document (wrong types, a hostile ``api_prefix``)."""


class UnknownLayout(ValueError):
    """``/config`` is well formed but no chat dependency could be recognised in it."""


class LayoutMismatch(ValueError):
    """A known row's dependency is missing, private, or laid out unlike the row."""


class Ambiguous(Exception):
    """Several callable chat dependencies of different layouts: ``/info`` decides.

    Attributes:
        endpoints: the candidates, in ``/config`` order, with their ``api_name``.
    """

    def __init__(self, endpoints: list[ChatEndpoint]) -> None:
        super().__init__(f"{len(endpoints)} chat dependencies")
        self.endpoints = endpoints


@dataclass(frozen=True, slots=True)
class Const:
    """An input sent at a fixed value (its ``/config`` default, e.g. a slider's).

    ``label`` is the component's label, by which a request may set another value.
    """

    value: Any
    label: str | None = None


InputSlot: TypeAlias = Literal["prompt", "multimodal", "system", "history", "state"] | Const
"""One element of the join ``data`` template: the last user message (as a string, or as
a multimodal textbox's ``{"text", "files": []}``), the system prompt, the earlier turns
(in the endpoint's ``HistoryFormat``), a session state (sent as ``[]``; the server keeps
its own) or a constant."""

HistoryFormat: TypeAlias = Literal["pairs", "messages", "parts"]
"""How a Space's history input holds the earlier turns:

* ``"pairs"``: ``[[user, assistant], ...]`` (Gradio 4 and ``type="tuples"`` chatbots);
* ``"messages"``: ``[{"role", "content": str}, ...]`` (Gradio 5 ``type="messages"``);
* ``"parts"``: ``[{"role", "content": [{"type": "text", "text"}]}, ...]`` (a Gradio 6
  chatbot, whose ``Message.content`` is a list of parts: ``gradio/components/chatbot.py``).
"""


@dataclass(frozen=True, slots=True)
class InputInfo:
    """One input of the chat dependency, as ``llmrelay models hf_spaces:…`` shows it.

    Attributes:
        role: ``"message"``, ``"history"``, ``"system"``, ``"state"`` (the Space keeps
            it per session; sent empty) or ``"input"`` (set by label through the
            ``inputs`` option, else sent at ``default``).
        component: the Gradio component type (``textbox``, ``slider``, ...).
        label: its label, or ``None``.
        default: its ``/config`` value (what is sent when nothing else is given).
        visible: whether the Space's page shows it.
    """

    role: str
    component: str
    label: str | None
    default: Any
    visible: bool = True


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
        system_default: the system input's own default value (sent when the request
            has no system prompt).
        version: the Space's Gradio version, when known.
        history_format: the format of the history input's value.
        api_name: the dependency's ``api_name``, when it has one.
        described: each input as ``InputInfo`` (empty for a row without ``/config``).
        visibility: ``"public"`` or ``"undocumented"``.
    """

    prefix: str
    fn_index: int
    trigger_id: int | None
    inputs: tuple[InputSlot, ...]
    reply_output: int
    reply_kind: ReplyKind = "chatbot"
    system_default: str = ""
    version: str | None = None
    history_format: HistoryFormat = "pairs"
    api_name: str | None = None
    described: tuple[InputInfo, ...] = field(default=(), compare=False)
    visibility: str = "public"

    @property
    def labels(self) -> list[str]:
        """Labels of the other inputs (those a request may set by label)."""
        return [s.label for s in self.inputs if isinstance(s, Const) and s.label]

    @property
    def has_system(self) -> bool:
        """Whether a system prompt can be delivered (the dependency has a system input)."""
        return "system" in self.inputs

    @property
    def has_history(self) -> bool:
        """Whether the earlier turns can go to a history input."""
        return "history" in self.inputs

    @property
    def multimodal(self) -> bool:
        """Whether the message input is a ``MultimodalTextbox`` (it takes files: images)."""
        return "multimodal" in self.inputs

    @property
    def message_component(self) -> str:
        """The message input's component type (``textbox`` or ``multimodaltextbox``)."""
        return "multimodaltextbox" if self.multimodal else "textbox"

    @property
    def major(self) -> int | None:
        """The Space's Gradio major version, when ``/config`` said."""
        return _major(self.version)

    def build_data(
        self,
        prompt: str,
        system: str | None,
        inputs: Mapping[str, Any] | None = None,
        history: Sequence[tuple[str, str]] = (),
        files: Sequence[Mapping[str, Any]] = (),
    ) -> list[Any]:
        """The join ``data`` list.

        Args:
            prompt: the message (the last user message, or the flattened conversation
                when the Space has no history input).
            system: the system prompt; ``None`` keeps the Space's own default.
            inputs: values for other inputs by label (exact, else case-insensitive).
            history: the earlier turns as ``(role, text)``, role ``"user"`` or
                ``"assistant"``, sent in ``history_format``.
            files: ``FileData`` objects for a multimodal message input's ``files``
                (``llmrelay.providers._gradio_files``); the caller checks ``multimodal``.

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
                values.append({"text": prompt, "files": [dict(f) for f in files]})
            elif slot == "system":
                values.append(self.system_default if system is None else system)
            elif slot == "state":
                values.append([])
            else:
                values.append(history_value(history, self.history_format))
        if wanted:
            raise KeyError(", ".join(sorted(wanted)))
        return values

    def history_length(self, history: Sequence[tuple[str, str]]) -> int:
        """How many entries of the history input's value ``history`` fills.

        The chat function's own output begins after them in a chatbot value.
        """
        return len(history_value(history, self.history_format))


def history_value(turns: Sequence[tuple[str, str]], fmt: HistoryFormat) -> list[Any]:
    """The earlier ``turns`` (``(role, text)``, oldest first) in a Space's format.

    ``"pairs"``: each user message opens a pair, the next assistant message closes it
    (``None`` for a missing side, as Gradio's tuples chatbot allows).
    """
    if fmt == "messages":
        return [{"role": role, "content": text} for role, text in turns]
    if fmt == "parts":
        return [{"role": role, "content": [{"type": "text", "text": text}]} for role, text in turns]
    pairs: list[list[str | None]] = []
    for role, text in turns:
        if role == "assistant" and pairs and pairs[-1][1] is None:
            pairs[-1][1] = text
        elif role == "assistant":
            pairs.append([None, text])
        else:
            pairs.append([text, None])
    return pairs


@dataclass(frozen=True, slots=True)
class GradioChatSpace:
    """A known Space: its chat dependency and the role of each of its inputs.

    Attributes:
        space_id: the Space's Hub id (``"Qwen/Qwen2-72B-Instruct"``).
        api_name: the chat dependency's ``api_name`` looked up in ``/config``.
        fn_index: ``fn_index`` when ``/config`` is unavailable or names no such API.
        trigger_id: the trigger component id in that case.
        inputs: the role of each input (these win over discovery).
        reply_output: index of the output holding the reply.
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
            api_name=self.api_name,
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


_Components: TypeAlias = Mapping[int, tuple[str, Mapping[str, Any]]]


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


def visibility(dep: Mapping[str, Any]) -> str:
    """``"public"``, ``"undocumented"`` or ``"private"`` (a private one cannot be called).

    As gradio_client's ``Endpoint``: ``api_visibility`` when present (Gradio 6), else
    ``api_name: false`` is private and ``show_api: false`` undocumented. A dependency
    without a backend function (``backend_fn: false``, JavaScript only) is private too.
    """
    if dep.get("backend_fn") is False:
        return "private"
    if "api_visibility" in dep:
        value = dep["api_visibility"]
        return value if value in ("public", "undocumented") else "private"
    if dep.get("api_name") is False:
        return "private"
    return "undocumented" if dep.get("show_api") is False else "public"


def _label(props: Mapping[str, Any]) -> str | None:
    label = props.get("label")
    return label if isinstance(label, str) and label else None


def _is_system_label(props: Mapping[str, Any]) -> bool:
    label = _label(props)
    return label is not None and "system" in label.lower()


def _hidden_unlabelled_textbox(kind: str, props: Mapping[str, Any]) -> bool:
    return kind == "textbox" and props.get("visible") is False and _label(props) is None


def _mirrored_by_system_box(
    cid: int, dep: Mapping[str, Any], deps: Sequence[Any], components: _Components
) -> bool:
    """Whether a textbox labelled "System…" mirrors the hidden textbox ``cid``.

    It does when the chat dependency writes that box, or when another dependency takes
    it as an input and writes ``cid`` (the Qwen Space's "Set system prompt" button).
    """

    def system_boxes(ids: Any) -> bool:
        return isinstance(ids, list) and any(
            type(i) is int
            and components.get(i, ("", {}))[0] == "textbox"
            and _is_system_label(components.get(i, ("", {}))[1])
            for i in ids
        )

    if system_boxes(dep.get("outputs")):
        return True
    return any(
        isinstance(other, dict)
        and isinstance(other.get("outputs"), list)
        and cid in other["outputs"]
        and system_boxes(other.get("inputs"))
        for other in deps
    )


def _history_format(props: Mapping[str, Any], major: int | None) -> HistoryFormat:
    """The format of a chatbot history input: its ``type`` prop, else by version.

    Gradio 6 chatbots hold messages whose content is a list of parts; before, a chatbot
    without a ``type`` holds pairs (the default ``"tuples"``).
    """
    declared = props.get("type")
    if declared == "messages":
        return "messages"
    if declared == "tuples":
        return "pairs"
    return "parts" if major is not None and major >= 6 else "pairs"


@dataclass(frozen=True, slots=True)
class _Layout:
    inputs: tuple[InputSlot, ...]
    reply_output: int
    reply_kind: ReplyKind
    system_default: str
    history_format: HistoryFormat
    described: tuple[InputInfo, ...]


def _describe(
    slots: Sequence[InputSlot], ids: Sequence[int], components: _Components
) -> tuple[InputInfo, ...]:
    roles = {"prompt": "message", "multimodal": "message"}
    out = []
    for slot, cid in zip(slots, ids, strict=True):
        kind, props = components.get(cid, ("", {}))
        role = "input" if isinstance(slot, Const) else roles.get(slot, slot)
        visible = props.get("visible") is not False
        out.append(InputInfo(role, kind, _label(props), props.get("value"), visible))
    return tuple(out)


def _reply(outputs: list[int], components: _Components, has_history: bool) -> tuple[int, ReplyKind]:
    kinds = [components.get(cid, ("", {}))[0] for cid in outputs]
    if "chatbot" in kinds:
        return kinds.index("chatbot"), "chatbot"
    if has_history and len(kinds) == 2 and kinds[1] == "state" and kinds[0] == "json":
        return 0, "json"  # ChatInterface, Gradio 5/6
    if has_history and len(kinds) == 2 and kinds[1] == "state" and kinds[0] == "textbox":
        return 0, "text"  # ChatInterface, Gradio 4
    raise UnknownLayout("no chatbot or ChatInterface reply among the outputs")


def _layout(
    dep: Mapping[str, Any], deps: Sequence[Any], components: _Components, major: int | None
) -> _Layout:
    """Classify a dependency's inputs and outputs by component type.

    Raises:
        MalformedConfig: inputs/outputs are not lists of ids.
        UnknownLayout: no message textbox, or no chatbot / ChatInterface reply output.
    """
    inputs, outputs = _ids(dep, "inputs"), _ids(dep, "outputs")
    slots: list[InputSlot] = []
    system_default: str | None = None
    history_format: HistoryFormat = "pairs"
    has_prompt = has_history = False
    labelled_system = any(
        components.get(cid, ("", {}))[0] == "textbox"
        and _is_system_label(components.get(cid, ("", {}))[1])
        for cid in inputs
    )
    for cid in inputs:
        kind, props = components.get(cid, ("", {}))
        value = props.get("value")
        if system_default is None and (
            (kind == "textbox" and _is_system_label(props))
            or (
                not labelled_system
                and _hidden_unlabelled_textbox(kind, props)
                and _mirrored_by_system_box(cid, dep, deps, components)
            )
        ):
            slots.append("system")
            system_default = value if isinstance(value, str) else ""
        elif kind in _MESSAGE_KINDS and not has_prompt:
            slots.append("prompt" if kind == "textbox" else "multimodal")
            has_prompt = True
        elif kind in _HISTORY_KINDS and not has_history:
            slots.append("history" if kind == "chatbot" else "state")
            has_history = True
            if kind == "chatbot":
                history_format = _history_format(props, major)
        else:
            slots.append(Const(value, _label(props)))
    if not has_prompt:
        raise UnknownLayout("no message textbox among the inputs")
    reply_output, reply_kind = _reply(outputs, components, has_history)
    return _Layout(tuple(slots), reply_output, reply_kind, system_default or "", history_format,
                   _describe(slots, inputs, components))  # fmt: skip


_ROW_KINDS: Mapping[str, frozenset[str]] = {
    "prompt": frozenset({"textbox"}),
    "multimodal": frozenset({"multimodaltextbox"}),
    "history": _HISTORY_KINDS,
    "state": frozenset({"state"}),
    "system": frozenset({"textbox"}),
}


def _row_layout(
    row: GradioChatSpace, dep: Mapping[str, Any], components: _Components, major: int | None
) -> _Layout:
    """The row's input roles on ``dep``, checked against its components.

    A component ``/config`` does not describe (or a dependency without inputs and
    outputs lists) is taken on trust; one of another type than the row's role needs is
    a mismatch.

    Raises:
        LayoutMismatch: another number of inputs, an input or the reply output of
            another component type.
    """
    if dep.get("inputs") is None or dep.get("outputs") is None:  # not described: on trust
        return _Layout(row.inputs, row.reply_output, row.reply_kind, "", "pairs", ())
    inputs, outputs = _ids(dep, "inputs"), _ids(dep, "outputs")
    name = dep.get("api_name")
    where = f"dependency {name!r}" if isinstance(name, str) else "the dependency"
    if len(inputs) != len(row.inputs):
        raise LayoutMismatch(f"{where} takes {len(inputs)} inputs, not {len(row.inputs)}")
    system_default = ""
    history_format: HistoryFormat = "pairs"
    slots = list(row.inputs)
    for position, (slot, cid) in enumerate(zip(row.inputs, inputs, strict=True)):
        kind, props = components.get(cid, ("", {}))
        if isinstance(slot, Const) or not kind:
            continue
        if kind not in _ROW_KINDS[slot]:
            raise LayoutMismatch(f"{where}'s input {position} is a {kind}, not its {slot} input")
        if slot == "system":
            value = props.get("value")
            system_default = value if isinstance(value, str) else ""
        elif slot == "history" and kind == "state":
            slots[position] = "state"
        elif slot == "history":
            history_format = _history_format(props, major)
    if row.reply_output >= len(outputs):
        raise LayoutMismatch(f"{where} has {len(outputs)} outputs, no reply output")
    kind = components.get(outputs[row.reply_output], ("", {}))[0]
    wanted = {"chatbot": "chatbot", "json": "json", "text": "textbox"}[row.reply_kind]
    if kind and kind != wanted:
        raise LayoutMismatch(f"{where}'s output {row.reply_output} is a {kind}, not a {wanted}")
    return _Layout(tuple(slots), row.reply_output, row.reply_kind, system_default,
                   history_format, _describe(slots, inputs, components))  # fmt: skip


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


def _major(version: str | None) -> int | None:
    head = (version or "").split(".", 1)[0]
    return int(head) if head.isdigit() and len(head) < 4 else None


def _endpoint(
    prefix: str, fn_index: int, dep: Mapping[str, Any], layout: _Layout, version: str | None
) -> ChatEndpoint:
    name = dep.get("api_name")
    return ChatEndpoint(
        prefix,
        fn_index,
        _trigger(dep),
        layout.inputs,
        layout.reply_output,
        layout.reply_kind,
        layout.system_default,
        version,
        layout.history_format,
        name if isinstance(name, str) else None,
        layout.described,
        visibility(dep),
    )


def endpoint_from_config(
    config: Any, row: GradioChatSpace | None = None, documented: frozenset[str] | None = None
) -> ChatEndpoint:
    """Find the chat dependency in a ``GET /config`` document.

    With a known ``row``: the dependency named ``row.api_name`` (else the row's
    ``fn_index``) with the row's input roles. Without: the first callable dependency
    whose inputs hold a message textbox and whose outputs hold a chatbot, or
    ``gr.ChatInterface``'s API dependency — public ones before undocumented ones.

    Args:
        config: the ``/config`` document.
        row: the known Space's row, if any.
        documented: the ``api_name`` of each endpoint ``{prefix}/info`` lists (no
            leading slash), read when an earlier call raised ``Ambiguous``: it decides
            between several public chat dependencies.

    Raises:
        MalformedConfig: not a ``/config`` document, an unsafe ``api_prefix``, a
            non-SSE protocol (Gradio 3's WebSocket) or malformed ids.
        LayoutMismatch: the row's dependency is missing, private or laid out otherwise.
        UnknownLayout: no chat dependency found.
        Ambiguous: several public chat dependencies of different layouts and no
            ``documented`` names yet.
    """
    if not isinstance(config, dict):
        raise MalformedConfig(f"/config is a JSON {type(config).__name__}, not an object")
    protocol = config.get("protocol")
    if protocol is not None and (not isinstance(protocol, str) or not protocol.startswith("sse")):
        raise MalformedConfig(f"unsupported Gradio protocol {protocol!r:.40} (need sse_v2+)")
    prefix = validate_prefix(config.get("api_prefix"))
    version = config.get("version")
    version = version if isinstance(version, str) else None
    major = _major(version)
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
            raise LayoutMismatch(f"no dependency {row.api_name!r} or fn_index {row.fn_index}")
        fn_index, dep = found
        if visibility(dep) == "private":
            raise LayoutMismatch(f"its dependency {dep.get('api_name')!r} is private")
        return _endpoint(prefix, fn_index, dep, _row_layout(row, dep, components, major), version)
    found_public: list[ChatEndpoint] = []
    found_other: list[ChatEndpoint] = []
    for index, dep in enumerate(deps):
        if not isinstance(dep, dict):
            continue
        seen = visibility(dep)
        if seen == "private":
            continue
        try:
            layout = _layout(dep, deps, components, major)
        except UnknownLayout:
            continue
        endpoint = _endpoint(prefix, _fn_index(dep, index), dep, layout, version)
        (found_public if seen == "public" else found_other).append(endpoint)
    if found_public:
        return _choose(found_public, documented)
    if found_other:
        return found_other[0]
    raise UnknownLayout(
        "no callable dependency takes a message textbox and answers in a chatbot "
        "(gr.Blocks) or as gr.ChatInterface's API"
    )


def _choose(candidates: list[ChatEndpoint], documented: frozenset[str] | None) -> ChatEndpoint:
    """The first candidate, unless several of different layouts need ``/info``."""
    first = candidates[0]
    alike = all(
        (c.inputs, c.reply_output, c.reply_kind) == (first.inputs, first.reply_output,
                                                     first.reply_kind)
        for c in candidates
    )  # fmt: skip
    if alike:
        return first
    if documented is None:
        raise Ambiguous(candidates)
    listed = [c for c in candidates if c.api_name is not None and c.api_name in documented]
    return listed[0] if listed else first
