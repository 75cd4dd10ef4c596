"""Model references, alias chains, the registry seam and entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmrelay import AsyncClient, ConfigError, UnknownModelError, UnknownProviderError
from llmrelay._registry import Registry
from llmrelay._router import Router, Target
from tests.unit.scripted_provider import scripted

FIRST, _ = scripted("first", [], models=("m1", "shared-model"), aliases={"one": "m1"})
SECOND, _ = scripted("second", [], models=("shared-model", "m2"), aliases={})


def router(**kwargs: object) -> Router:
    return Router(Registry([FIRST, SECOND], entry_points=False), **kwargs)  # type: ignore[arg-type]


def test_provider_prefix_model_and_provider_alias() -> None:
    assert router().resolve("first:one") == [Target("first", "m1")]
    assert router().resolve("second:m2") == [Target("second", "m2")]
    assert router().resolve("second") == [Target("second", "shared-model")]


def test_default_reference_and_first_provider() -> None:
    assert router(default="second:m2").resolve(None) == [Target("second", "m2")]
    assert router().resolve(None)[0].provider == "hf_spaces"  # built-ins come first


def test_a_colon_in_a_model_id_stays_whole() -> None:
    # owner/name:version is not a provider prefix
    with pytest.raises(UnknownModelError):
        router().resolve("owner/name:abc123")


def test_unknown_prefix_names_the_registered_providers() -> None:
    with pytest.raises(UnknownProviderError) as info:
        router().resolve("nope:m1")
    assert "first" in str(info.value)


def test_alias_chains_are_ordered_deduplicated_and_nested() -> None:
    r = router(
        aliases={"fast": ["second:m2", "first:one", "second:m2"], "faster": ["fast", "first"]}
    )
    assert r.resolve("fast") == [Target("second", "m2"), Target("first", "m1")]
    # "first" resolves to its default model m1, already in the chain
    assert r.resolve("faster") == [Target("second", "m2"), Target("first", "m1")]
    assert r.aliases()["fast"] == ["second:m2", "first:m1"]


def test_a_user_alias_overrides_a_built_in_one() -> None:
    r = router(aliases={"qwen-2-72b": ["first:m1"]})
    assert r.resolve("qwen-2-72b") == [Target("first", "m1")]


def test_a_built_in_alias_skips_providers_not_installed() -> None:
    # qwen-2-72b -> hf_spaces, then huggingface (left out while it is not registered)
    targets = router().resolve("qwen-2-72b")
    assert targets[0] == Target("hf_spaces", "Qwen/Qwen2-72B-Instruct")
    assert all(t.provider in ("hf_spaces", "huggingface") for t in targets)


def test_a_self_referencing_alias_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="refers to itself"):
        router(aliases={"loop": ["loop"]}).resolve("loop")


def test_user_aliases_come_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[aliases]\nfast = ["second:m2", "first:one"]\nsolo = "first:m1"\n')
    client = AsyncClient(providers=[FIRST, SECOND], config_path=str(path))
    assert client.aliases()["fast"] == ["second:m2", "first:m1"]
    assert client.aliases()["solo"] == ["first:m1"]


def test_injected_providers_are_registered_per_client() -> None:
    assert "first" in [d.name for d in AsyncClient(providers=[FIRST]).providers()]
    assert "first" not in [d.name for d in AsyncClient().providers()]


def test_a_non_provider_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a provider class"):
        Registry([object], entry_points=False)  # type: ignore[list-item]


def test_third_party_providers_come_from_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a real installed distribution (dist-info on sys.path) declaring the entry point
    package = tmp_path / "llmrelay_ext_demo.py"
    package.write_text(
        "from tests.unit.scripted_provider import scripted\n"
        "Ext, _ = scripted('ext', [], models=('ext-model',))\n"
    )
    dist = tmp_path / "llmrelay_ext_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: llmrelay-ext-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[llmrelay.providers]\next = llmrelay_ext_demo:Ext\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    assert "ext" in registry.names()
    assert registry.get("ext").default_model == "ext-model"
    assert Router(registry).resolve("ext") == [Target("ext", "ext-model")]
    sys.modules.pop("llmrelay_ext_demo", None)


def test_candidates_are_public_on_both_clients(tmp_path: Path) -> None:
    from llmrelay import Client

    path = tmp_path / "config.toml"
    path.write_text('model = "fast"\n[aliases]\nfast = ["second:m2", "first:one"]\n')
    assert AsyncClient(providers=[FIRST, SECOND], config_path=str(path)).candidates() == [
        "second:m2",
        "first:m1",
    ]
    with Client(providers=[FIRST, SECOND]) as client:
        assert client.candidates("first:one") == ["first:m1"]


def test_the_built_ins_settings_metadata_is_what_their_classes_declare() -> None:
    from llmrelay.providers import BUILTIN, BUILTIN_SETTINGS, provider_class

    assert list(BUILTIN_SETTINGS) == list(BUILTIN)
    for name, (endpoints, env_var) in BUILTIN_SETTINGS.items():
        cls = provider_class(name)
        assert endpoints == tuple(cls.endpoints), name
        assert env_var == cls.auth.env_var, name
        assert not getattr(cls, "config_keys", ()), name


def test_settings_import_no_provider_module_until_one_is_used() -> None:
    code = (
        "import sys, llmrelay\n"
        "c = llmrelay.AsyncClient(model='ai2')\n"
        "print(sorted(m for m in sys.modules if m.startswith('llmrelay.providers.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = done.stdout.strip()
    for name in ("hf_spaces", "replicate", "huggingface", "ai2", "h2o"):
        assert f"llmrelay.providers.{name}'" not in loaded, loaded
