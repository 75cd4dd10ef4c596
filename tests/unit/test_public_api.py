from __future__ import annotations

import inspect
import subprocess
import sys

import llmrelay
from llmrelay import AsyncClient, Client, errors


def test_all_is_sorted_and_complete() -> None:
    assert llmrelay.__all__ == sorted(llmrelay.__all__)
    public = {
        name
        for name in dir(llmrelay)
        if not name.startswith("_")
        and not inspect.ismodule(getattr(llmrelay, name))
        and name not in {"annotations", "TYPE_CHECKING", "Any"}
    }
    assert public | {"__version__"} == set(llmrelay.__all__)


def test_every_error_is_exported() -> None:
    for name in errors.__all__:
        assert getattr(llmrelay, name) is getattr(errors, name)


def test_sync_and_async_clients_have_the_same_methods_and_parameters() -> None:
    def methods(cls: type) -> dict[str, list[tuple[str, object, object]]]:
        out = {}
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_") and name != "__init__":
                continue
            params = inspect.signature(member).parameters.values()
            out[name] = [(p.name, p.kind, p.default) for p in params]
        return out

    sync, asynchronous = methods(Client), methods(AsyncClient)
    # close/aclose and the context-manager protocols differ by design
    sync.pop("close")
    asynchronous.pop("aclose")
    assert sync == asynchronous


def test_import_loads_no_provider_and_no_cli_libraries() -> None:
    code = (
        "import sys, llmrelay; "
        "print(','.join(sorted(m for m in sys.modules if m.startswith(('llmrelay.providers.hf', "
        "'click', 'rich', 'gradio', 'httpx')))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_every_public_name_has_a_docstring() -> None:
    for name in llmrelay.__all__:
        value = getattr(llmrelay, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
