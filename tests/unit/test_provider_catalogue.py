"""The built-in providers' catalogue is generated from their classes, and read-only."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from llmrelay import providers

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "provider_catalogue", ROOT / "scripts" / "provider_catalogue.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_catalogue_is_what_the_classes_declare_now() -> None:
    script = _script()
    assert script.PATH.read_text(encoding="utf-8") == script.render(), (
        "src/llmrelay/providers/_catalogue.py is stale: run python scripts/provider_catalogue.py"
    )


def test_a_changed_class_makes_the_catalogue_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.providers.ai2 import Ai2

    script = _script()
    monkeypatch.setattr(Ai2, "endpoints", {**Ai2.endpoints, "extra_url": "https://x.invalid"})
    assert "extra_url" in script.render()
    assert script.PATH.read_text(encoding="utf-8") != script.render()


def test_the_registry_tables_are_read_only() -> None:
    for table in (providers.BUILTIN, providers.BUILTIN_SETTINGS, providers.KINDS):
        with pytest.raises(TypeError):
            table["evil"] = "x"  # type: ignore[index]
    assert list(providers.BUILTIN) == [
        providers.load_class(target).name for target in providers.BUILTIN_CLASSES
    ]
    assert dict(providers.KIND_CLASSES) == providers.KINDS
