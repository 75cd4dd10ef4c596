"""``llmrelay.types``' classes, eager and loaded on first use (``llmrelay._lazy_types``).

Five classes a plain chat needs not before its first token live in
``llmrelay._lazy_types`` and load through ``llmrelay.types.__getattr__`` (PEP 562). Every
public name must look exactly as before: the same object from ``llmrelay.types`` and
``llmrelay``, ``__module__``, reprs, pickling, ``dataclasses`` semantics, equality and
hashing, type hints (of every class, loaded or not); only ``inspect.getsource`` of a
moved class raises ``OSError`` (the choice written down in ``llmrelay._lazy_types``).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import pickle
import subprocess
import sys
import typing
from collections.abc import Callable
from typing import Any

import pytest

import llmrelay
import llmrelay._lazy_types
import llmrelay.types as t
from llmrelay.providers._image_input import ImageFetchPolicy

LAZY = ["Completion", "EmbeddingRequest", "EmbeddingResult", "ImageRequest", "ProviderDescription"]

# one instance of every class (mappings given explicitly: a default ``options`` is a
# read-only mapping, which pickle refuses for every type alike)
INSTANCES: dict[str, Callable[[], Any]] = {
    "ToolCall": lambda: t.ToolCall("call_1", "f", '{"a": 1}'),
    "Tool": lambda: t.Tool("f", "does f", {"type": "object"}, True),
    "ToolChoice": lambda: t.ToolChoice("function", "f"),
    "ResponseFormat": lambda: t.ResponseFormat("json_schema", "s", {"type": "object"}),
    "ImagePart": lambda: t.ImagePart("https://example.com/a.png", "low"),
    "Message": lambda: t.Message("assistant", "hi", tool_calls=(t.ToolCall("call_1", "f", "{}"),)),
    "ChatRequest": lambda: t.ChatRequest(
        (t.Message("user", "hi"),), "m", temperature=0.5, options={}, passthrough={}
    ),
    "ImageRequest": lambda: t.ImageRequest("a cat", "m", width=8, options={}),
    "ProviderInfo": lambda: t.ProviderInfo("p", "m", "P"),
    "Reasoning": lambda: t.Reasoning("because"),
    "ToolCallDelta": lambda: t.ToolCallDelta(0, "call_1", "f", "{"),
    "FinishReason": lambda: t.FinishReason("stop"),
    "Usage": lambda: t.Usage(1, 2, 3),
    "Queued": lambda: t.Queued(1, 3, 0.5),
    "ConversationState": lambda: t.ConversationState("p", {"id": "x"}),
    "ImageResult": lambda: t.ImageResult(b"\x89PNG", "image/png", seed=4),
    "Completion": lambda: t.Completion(
        "hi", "stop", "p", "m", usage=t.Usage(1, 2, 3), tool_calls=(t.ToolCall("c", "f"),)
    ),
    "ProviderDescription": lambda: t.ProviderDescription(
        "p", "P", "https://x", "https://y", "none", None, False, ("chat",), "m", ("m",), {}, False
    ),
    "EmbeddingRequest": lambda: t.EmbeddingRequest(("a", "b"), "m", options={}),
    "EmbeddingResult": lambda: t.EmbeddingResult(((1.0, 2.0),), "p", "m", t.Usage(2, None, 2)),
}
CLASSES = sorted(INSTANCES)

# the moved classes' fields as they were when defined in llmrelay/types.py:
# (name, annotation, default ("-": none), repr)
FIELDS_BEFORE: dict[str, list[tuple[str, str, str, bool]]] = {
    "Completion": [
        ("text", "str", "-", True),
        ("finish_reason", "str", "-", True),
        ("provider", "str", "-", True),
        ("model", "str", "-", True),
        ("usage", "Usage | None", "None", True),
        ("reasoning", "str", "''", True),
        ("state", "ConversationState | None", "None", True),
        ("images", "tuple[ImageResult, ...]", "()", False),
        ("attempts", "tuple[Attempt, ...]", "()", False),
        ("tool_calls", "tuple[ToolCall, ...]", "()", True),
        ("usage_estimated", "bool", "False", True),
    ],
    "EmbeddingRequest": [
        ("input", "EmbeddingInput", "-", True),
        ("model", "str", "-", True),
        ("dimensions", "int | None", "None", True),
        ("user", "str | None", "None", True),
        ("options", "Mapping[str, Any]", "<factory>", True),
        ("deadline", "float | None", "None", True),
    ],
    "EmbeddingResult": [
        ("vectors", "tuple[tuple[float, ...], ...]", "-", False),
        ("provider", "str", "-", True),
        ("model", "str", "-", True),
        ("usage", "Usage | None", "None", True),
        ("attempts", "tuple[Attempt, ...]", "()", False),
    ],
    "ImageRequest": [
        ("prompt", "str", "-", True),
        ("model", "str", "-", True),
        ("width", "int | None", "None", True),
        ("height", "int | None", "None", True),
        ("aspect_ratio", "str | None", "None", True),
        ("seed", "int | None", "None", True),
        ("negative_prompt", "str | None", "None", True),
        ("options", "Mapping[str, Any]", "<factory>", True),
        ("deadline", "float | None", "None", True),
    ],
    "ProviderDescription": [
        ("name", "str", "-", True),
        ("label", "str", "-", True),
        ("docs_url", "str", "-", True),
        ("base_url", "str", "-", True),
        ("auth", "str", "-", True),
        ("env_var", "str | None", "-", True),
        ("key_set", "bool", "-", True),
        ("capabilities", "tuple[str, ...]", "-", True),
        ("default_model", "str", "-", True),
        ("models", "tuple[str, ...]", "-", True),
        ("aliases", "Mapping[str, str]", "-", True),
        ("open_catalogue", "bool", "-", True),
        ("key_source", "str | None", "None", True),
        ("endpoints", "Mapping[str, str]", "<factory>", True),
        ("parameters", "tuple[str, ...]", "()", True),
        ("options", "Mapping[str, Any]", "<factory>", True),
        ("image_models", "tuple[str, ...]", "()", True),
        ("embedding_models", "tuple[str, ...]", "()", True),
        ("endpoint_sources", "Mapping[str, str]", "<factory>", True),
        ("proxy_source", "str | None", "None", True),
    ],
}


def test_the_lazy_names_are_the_classes_of_the_submodule() -> None:
    assert sorted(t._LAZY) == LAZY
    assert sorted(llmrelay._lazy_types.__all__) == LAZY
    assert set(LAZY) <= set(t.__all__)
    assert set(LAZY) <= set(llmrelay.__all__)
    # every class of llmrelay.types is here, and a dataclass
    public = {n for n in t.__all__ if isinstance(getattr(t, n), type)}
    assert public == set(CLASSES)


@pytest.mark.parametrize("name", t.__all__)
def test_every_public_name_imports_as_one_object(name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from llmrelay.types import {name} as x", namespace)
    assert namespace["x"] is getattr(t, name)
    assert name in dir(t)
    if name in llmrelay.__all__:
        assert getattr(llmrelay, name) is getattr(t, name)


@pytest.mark.parametrize("name", CLASSES)
def test_each_class_keeps_its_identity_pickling_and_dataclass_semantics(name: str) -> None:
    cls = getattr(t, name)
    assert cls.__module__ == "llmrelay.types"
    assert cls.__qualname__ == name
    assert pickle.loads(pickle.dumps(cls)) is cls
    value = INSTANCES[name]()
    assert type(value) is cls
    copy = pickle.loads(pickle.dumps(value))
    assert (copy == value, type(copy), repr(copy)) == (True, cls, repr(value))
    assert repr(value).startswith(f"{name}(")
    params = cls.__dataclass_params__
    assert (params.init, params.repr, params.eq, params.frozen) == (True, True, True, True)
    names = tuple(f.name for f in dataclasses.fields(cls))
    assert cls.__slots__ == names
    assert cls.__match_args__ == names
    assert not hasattr(value, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, names[0], None)
    assert dataclasses.replace(value) == value
    assert type(dataclasses.replace(value)) is cls
    assert dataclasses.asdict(value).keys() == set(names)
    try:
        assert hash(copy) == hash(value)
    except TypeError:  # a field holds a dict: unhashable, as it always was
        with pytest.raises(TypeError):
            hash(copy)
    # annotations resolve in llmrelay.types (two names only its type checker imports)
    hints = typing.get_type_hints(
        cls, localns={"Attempt": llmrelay.Attempt, "ImageFetchPolicy": ImageFetchPolicy}
    )
    assert set(hints) == set(names)


@pytest.mark.parametrize("name", LAZY)
def test_a_moved_class_keeps_the_fields_it_had(name: str) -> None:
    fields = [
        (
            f.name,
            f.type,
            "<factory>"
            if f.default_factory is not dataclasses.MISSING
            else "-"
            if f.default is dataclasses.MISSING
            else repr(f.default),
            f.repr,
        )
        for f in dataclasses.fields(getattr(t, name))
    ]
    assert fields == FIELDS_BEFORE[name]


@pytest.mark.parametrize("name", CLASSES)
def test_getsource_shows_the_class_or_refuses_never_another_one(name: str) -> None:
    cls = getattr(t, name)
    if name in LAZY:
        # it looks in the file of __module__ (llmrelay/types.py), where the class is not
        with pytest.raises(OSError, match=r"could not find class|source code not available"):
            inspect.getsource(cls)
        assert f"class {name}:" in inspect.getsource(llmrelay._lazy_types)
    else:
        assert inspect.getsource(cls).startswith(
            f"@dataclass(frozen=True, slots=True)\nclass {name}:"
        )


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"llmrelay\.types.*Nope"):
        t.Nope  # noqa: B018
    with pytest.raises(ImportError):
        exec("from llmrelay.types import Nope", {})


_FRESH = """
import json, sys, typing
import llmrelay, llmrelay.types as t
seen = {"after_import": "llmrelay._lazy_types" in sys.modules}
seen["dir"] = set(t.__all__) <= set(dir(t)) and set(t._LAZY) <= set(dir(llmrelay))
# the eager classes' hints resolve without the moved ones (no field names one)
seen["hints"] = sorted(typing.get_type_hints(t.Message))
t.normalize_messages([{"role": "user", "content": [{"type": "text", "text": "a"},
    {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}])
seen["after_hints"] = "llmrelay._lazy_types" in sys.modules
completion = t.Completion("hi", "stop", "p", "m")
seen["after_use"] = "llmrelay._lazy_types" in sys.modules
seen["bound"] = all(n in vars(t) for n in t._LAZY)
seen["message"] = completion.message().to_openai()
names = {}
exec("from llmrelay.types import *", names)
seen["star"] = sorted(set(t.__all__) - set(names))
print(json.dumps(seen))
"""


def test_import_llmrelay_loads_the_moved_classes_only_when_one_is_used() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FRESH], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout)
    assert seen == {
        "after_import": False,
        "dir": True,
        "hints": ["content", "images", "parts", "role", "tool_call_id", "tool_calls"],
        "after_hints": False,
        "after_use": True,
        "bound": True,
        "message": {"role": "assistant", "content": "hi"},
        "star": [],
    }


_MODULES = """
import importlib, pkgutil, sys
import llmrelay.providers
names = [m.name for m in pkgutil.iter_modules(llmrelay.providers.__path__, "llmrelay.providers.")]
names += ["llmrelay._client", "llmrelay._sync", "llmrelay._engine", "llmrelay._stream",
          "llmrelay.cli._chat", "llmrelay.cli._session"]
for name in names:
    importlib.import_module(name)
print(len(names), "llmrelay._lazy_types" in sys.modules)
"""


def test_no_provider_nor_the_chat_path_loads_the_moved_classes_at_import() -> None:
    # a module-level ``from llmrelay.types import Completion`` (say) would load them at
    # every start of a chat through that module
    out = subprocess.run(
        [sys.executable, "-c", _MODULES], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    count, loaded = out.stdout.split()
    assert int(count) > 20
    assert loaded == "False"
