"""Plugins are read only when a name needs them (``llmrelay._registry``).

Each test installs a real distribution (a ``*.dist-info`` folder declaring the
``llmrelay.providers`` entry point, on a fresh ``sys.path`` entry, so the process's cached
scan runs again for it) and counts the scans: built-in, configured and injected
providers resolve with none; a ``provider:`` prefix, a bare model no known provider
offers, a listing, an unknown-provider error and a setting naming an unknown provider
read the group once; a plugin found late gets its settings rows; a plugin naming a
built-in is ignored with a warning.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import llmrelay._registry
from llmrelay import AsyncClient, ConfigError, UnknownModelError, UnknownProviderError
from llmrelay._keys import save_key
from llmrelay._registry import ENTRY_POINT_GROUP, Registry
from llmrelay.providers import BUILTIN, load_class

KEY = "sk-demo-0123456789"
PLUGIN = f"""
from collections.abc import AsyncGenerator
from types import MappingProxyType

from llmrelay.providers import Auth, AuthMode, Provider
from llmrelay.types import ChatRequest, Event, FinishReason


class Demo(Provider):
    name = "demo"
    label = "Demo plugin"
    endpoints = MappingProxyType({{"base_url": "https://demo.invalid/v1"}})
    auth = Auth(AuthMode.REQUIRED, "DEMO_API_KEY")
    default_model = "demo-model"
    models = ("demo-model", "demo-only-model")

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        yield f"key {{self._api_key == {KEY!r}}} at {{self.base_url}}"
        yield FinishReason("stop")


class Impostor(Demo):
    name = "hf_spaces"
    label = "Impostor"
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """``demo`` (and ``hf_spaces``, an impostor) installed; yields the scans counted."""
    (tmp_path / "llmrelay_demo_plugin.py").write_text(PLUGIN)
    info = tmp_path / "llmrelay_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llmrelay-demo-plugin\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "demo = llmrelay_demo_plugin:Demo\n"
        "hf_spaces = llmrelay_demo_plugin:Impostor\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LLMRELAY_HOME", str(tmp_path / "home"))
    scans: list[int] = []
    real = llmrelay._registry._scan

    def counted(key: tuple[tuple[str, ...], tuple[int, ...]]) -> tuple[tuple[str, str], ...]:
        scans.append(1)
        return real(key)

    monkeypatch.setattr(llmrelay._registry, "_scan", counted)
    yield scans
    sys.modules.pop("llmrelay_demo_plugin", None)


def test_built_in_configured_and_injected_providers_read_no_plugin(
    plugin: list[int], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[providers.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'models = ["local-model"]\n'
    )
    injected = load_class(BUILTIN["ai2"])
    client = AsyncClient(config_path=str(config), providers={"mine": injected})
    for ref in (None, "hf_spaces", "replicate:owner/name", "local:local-model", "mine"):
        client.candidates(ref)
    client.candidates("Qwen/Qwen2-72B-Instruct")  # a bare model a built-in offers
    client.candidates("qwen-2-72b")  # a built-in alias
    assert plugin == []


@pytest.mark.parametrize(
    ("ref", "target"),
    [
        ("demo:demo-only-model", "demo:demo-only-model"),  # a provider: prefix
        ("demo", "demo:demo-model"),  # a provider's name
        ("demo-only-model", "demo:demo-only-model"),  # a bare model only a plugin offers
    ],
)
def test_a_name_only_a_plugin_knows_reads_the_plugins(
    plugin: list[int], ref: str, target: str
) -> None:
    client = AsyncClient()
    assert plugin == []
    assert client.candidates(ref) == [target]
    assert client.candidates("demo:demo-model") == ["demo:demo-model"]
    assert plugin == [1]  # once per client


def test_a_listing_and_an_unknown_provider_read_the_plugins(plugin: list[int]) -> None:
    assert "demo" in [d.name for d in AsyncClient().providers()]
    registry = Registry()
    with pytest.raises(UnknownProviderError) as info:
        registry.get("nosuch")
    assert "demo" in info.value.valid
    assert registry.names()[-1] == "demo"  # the plugins come last
    with pytest.raises(UnknownModelError) as model_info:
        AsyncClient().candidates("no-such-model")
    assert "demo:demo-only-model" in model_info.value.valid
    with pytest.raises(UnknownProviderError, match="'nosuch'"):
        AsyncClient().candidates("nosuch:model")


def test_a_plugin_found_late_gets_its_key_variable(
    plugin: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # DEMO_API_KEY is the plugin's vendor variable: nothing at construction names demo
    monkeypatch.setenv("DEMO_API_KEY", KEY)

    async def main() -> str:
        async with AsyncClient() as client:
            assert plugin == []
            return (await client.stream("hi", model="demo:demo-model").collect()).text

    assert anyio.run(main) == "key True at https://demo.invalid/v1"
    assert plugin == [1]


def test_a_plugin_found_late_gets_its_key_from_the_keys_file(
    plugin: list[int], tmp_path: Path
) -> None:
    save_key("demo", KEY, tmp_path / "home" / "keys.json")
    client = AsyncClient()
    assert plugin == []
    [demo] = [d for d in client.providers() if d.name == "demo"]
    assert demo.key_set
    assert demo.key_source
    assert "keys file" in demo.key_source


def test_settings_naming_a_plugin_read_the_plugins_at_construction(
    plugin: list[int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "http://127.0.0.1:9/v1"
    monkeypatch.setenv("LLMRELAY_DEMO_BASE_URL", url)
    monkeypatch.setenv("LLMRELAY_DEMO_API_KEY", KEY)
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        client = AsyncClient()
    assert plugin == [1]
    assert "names no provider setting" not in caplog.text  # no typo warning
    [demo] = [d for d in client.providers() if d.name == "demo"]
    assert demo.base_url == url
    assert demo.key_source == "LLMRELAY_DEMO_API_KEY"
    monkeypatch.delenv("LLMRELAY_DEMO_BASE_URL")
    monkeypatch.delenv("LLMRELAY_DEMO_API_KEY")
    config = tmp_path / "config.toml"
    config.write_text(f'[providers.demo]\nbase_url = "{url}"\n')
    [demo] = [d for d in AsyncClient(config_path=str(config)).providers() if d.name == "demo"]
    assert demo.base_url == url
    [demo] = [d for d in AsyncClient(base_urls={"demo": url}).providers() if d.name == "demo"]
    assert demo.base_url == url
    assert len(plugin) == 3


def test_a_typo_still_warns_after_the_plugins_are_read(
    plugin: list[int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLMRELAY_DEMOO_API_KEY", KEY)
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        AsyncClient()
    assert plugin == [1]
    assert "LLMRELAY_DEMOO_API_KEY names no provider setting" in caplog.text
    assert "did you mean LLMRELAY_DEMO_API_KEY" in caplog.text
    with pytest.raises(ConfigError, match="base_urls: unknown provider 'demoo'"):
        AsyncClient(base_urls={"demoo": "http://127.0.0.1:9"})


def test_a_plugin_cannot_replace_a_built_in(
    plugin: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry()
    builtin = load_class(BUILTIN["hf_spaces"])
    assert registry.get("hf_spaces") is builtin  # before the plugins are read
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        names = registry.names()
    assert names.count("hf_spaces") == 1
    assert "demo" in names
    assert registry.get("hf_spaces") is builtin  # and after
    assert (
        "entry point hf_spaces = llmrelay_demo_plugin:Impostor (group llmrelay.providers) "
        "names the built-in provider hf_spaces and is ignored"
    ) in caplog.text
    # the application's own choice still can
    impostor = load_class("llmrelay_demo_plugin:Impostor")
    assert Registry([impostor]).get("hf_spaces") is impostor


def test_a_client_provider_of_a_plugins_name_wins(plugin: list[int]) -> None:
    impostor = load_class(BUILTIN["ai2"])
    registry = Registry({"demo": impostor})
    assert registry.names().count("demo") == 1
    assert registry.get("demo") is impostor


def test_no_entry_points_means_no_scan(plugin: list[int]) -> None:
    registry = Registry(entry_points=False)
    assert "demo" not in registry
    assert registry.read_plugins() == {}
    assert plugin == []


def test_a_chat_with_a_built_in_never_imports_importlib_metadata() -> None:
    code = (
        "import sys, llmrelay\n"
        "client = llmrelay.AsyncClient(model='ai2')\n"
        "client.candidates(); client.candidates('hf_spaces:x'); client.candidates('ai2')\n"
        "print('importlib.metadata' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False", out.stderr
