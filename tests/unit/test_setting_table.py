"""The settings table: every row read from each of its sources, the only reader of the
environment, and every documented variable and config key still read by a row."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from typing import Any

import pytest

import llmrelay.settings
from llmrelay import ConfigError, Timeouts
from llmrelay._setting_table import CLIENT_ROWS, SETTINGS, Setting, provider_settings, read
from llmrelay._settings import ProviderSettingsSpec, Settings

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "llmrelay"
SPECS = {
    "hf_spaces": ProviderSettingsSpec(("base_url", "hub_url"), "HF_TOKEN"),
    "local": ProviderSettingsSpec(("base_url",), None, frozenset({"kind", "models"})),
}

# a value of each type as an environment variable, in the config file and as an argument,
# and what each resolves to
SAMPLES: dict[str, tuple[str, Any, Any]] = {
    "text": ("from-env", "from-config", "from-argument"),
    "path": ("/env.pem", "/config.pem", "/argument.pem"),
    "bool": ("1", True, True),
    "seconds": ("7", 8, 9.0),
    "timeout": ("7", 8, 9.0),
    "names": ("alpha,fast", ["beta"], None),
}
EXPECTED: dict[str, tuple[Any, Any, Any]] = {
    "text": ("from-env", "from-config", "from-argument"),
    "path": ("/env.pem", "/config.pem", "/argument.pem"),
    "bool": (True, True, True),
    "seconds": (7.0, 8.0, 9.0),
    "timeout": (7.0, 8.0, 9.0),
    "names": (frozenset({"alpha", "fast"}), frozenset({"beta"}), None),
}


def _value(settings: Settings, row: Setting) -> Any:
    if row.name.startswith("timeouts."):
        return getattr(settings.timeouts, row.name.partition(".")[2])
    if row.name == "ca_bundle":
        return settings.verify
    return getattr(settings, row.name)


def _arguments(row: Setting, value: Any) -> dict[str, Any]:
    if row.argument == "timeouts":
        return {"timeouts": Timeouts(**{row.name.partition(".")[2]: value})}
    return {str(row.argument): value}


def _config(row: Setting, value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    table = doc
    for part in row.key[:-1]:
        table = table.setdefault(part, {})
    table[row.key[-1]] = value
    return doc


SCALAR_ROWS = [row for row in CLIENT_ROWS if row.type in SAMPLES]


@pytest.mark.parametrize("row", SCALAR_ROWS, ids=lambda row: row.name)
def test_every_client_row_is_read_from_each_source_in_order(row: Setting) -> None:
    env_value, config_value, argument_value = SAMPLES[row.type]
    from_env, from_config, from_argument = EXPECTED[row.type]
    config = _config(row, config_value)
    for variable in row.variables:  # each variable, beating the config file
        settings = Settings.load(providers=SPECS, config=config, env={variable: env_value})
        assert _value(settings, row) == from_env, variable
        assert settings.sources[row.name] == variable
    settings = Settings.load(providers=SPECS, config=config, env={})
    assert _value(settings, row) == from_config
    assert settings.sources[row.name] == f"config file {row.config_name}"
    if row.argument and row.name != "ca_bundle":  # verify= takes a bundle as well
        env = {variable: env_value for variable in row.variables}
        arguments = _arguments(row, argument_value)
        settings = Settings.load(providers=SPECS, config=config, env=env, **arguments)
        assert _value(settings, row) == from_argument
        assert settings.sources[row.name] == f"argument {row.argument}"
    settings = Settings.load(providers=SPECS, env={})
    assert row.name not in settings.sources
    default = row.default if row.name != "ca_bundle" else True
    assert _value(settings, row) == default


def test_several_variables_of_one_row_keep_their_order() -> None:
    [row] = [row for row in SETTINGS if row.name == "ca_bundle"]
    env = {variable: f"/{variable}.pem" for variable in row.variables}
    assert Settings.load(providers=SPECS, env=env).verify == f"/{row.variables[0]}.pem"
    del env[row.variables[0]]
    assert Settings.load(providers=SPECS, env=env).verify == f"/{row.variables[1]}.pem"


@pytest.mark.parametrize("name", ["hf_spaces", "local"])
def test_provider_rows_from_each_source(name: str) -> None:
    rows = provider_settings(name, SPECS[name])
    assert [row.key[-1] for row in rows] == [*SPECS[name].endpoints, "api_key", "retries"]
    for row in rows[:-2]:
        endpoint = row.key[-1]
        config = _config(row, "http://config.invalid")
        [variable] = row.variables
        settings = Settings.load(providers=SPECS, config=config, env={variable: "http://e.invalid"})
        assert settings.endpoints_for(name)[endpoint] == "http://e.invalid"
        assert settings.endpoint_sources[(name, endpoint)] == variable
        settings = Settings.load(providers=SPECS, config=config, env={})
        assert settings.endpoints_for(name)[endpoint] == "http://config.invalid"
        # where it came from names the setting, never the config file's path
        source = settings.endpoint_sources[(name, endpoint)]
        assert source == f"config file [providers.{name}] {endpoint}"
        argument = {"endpoints": {name: {endpoint: "http://argument.invalid"}}}
        settings = Settings.load(providers=SPECS, config=config, env={variable: "x"}, **argument)
        assert settings.endpoints_for(name)[endpoint] == "http://argument.invalid"
    key = rows[-2]
    for variable in key.variables:
        settings = Settings.load(providers=SPECS, env={variable: f"key-{variable}"})
        assert settings.api_key_for(name) == f"key-{variable}"
        assert settings.key_sources[name] == variable
    [variable] = rows[-1].variables
    assert Settings.load(providers=SPECS, env={variable: "5"}).retries_for(name) == 5
    config = _config(rows[-1], 1)
    assert Settings.load(providers=SPECS, config=config, env={}).retries_for(name) == 1
    assert Settings.load(providers=SPECS, env={}).retries_for(name) == 2


def test_an_empty_config_key_falls_through_to_the_keys_file(tmp_path: Path) -> None:
    env = {"LLMRELAY_HOME": str(tmp_path)}
    (tmp_path / "keys.json").write_text('{"hf_spaces": "from-file"}')
    config = {"providers": {"hf_spaces": {"api_key": ""}}}
    settings = Settings.load(providers=SPECS, config=config, env=env)
    assert settings.api_key_for("hf_spaces") == "from-file"


def test_a_non_string_config_key_is_an_error_that_does_not_show_it() -> None:
    config = {"providers": {"hf_spaces": {"api_key": 123456789}}}
    with pytest.raises(
        ConfigError, match=r"\[providers.hf_spaces\] api_key must be a string"
    ) as info:
        Settings.load(providers=SPECS, config=config, env={})
    assert "123456789" not in str(info.value)


@pytest.mark.parametrize("row", [r for r in SETTINGS if r.scope == "process"], ids=lambda r: r.name)
def test_process_rows_are_read_from_their_variable(row: Setting) -> None:
    [variable] = row.variables
    value = "off" if row.type == "switch" else "/from/env"
    expected = False if row.type == "switch" else "/from/env"
    assert read(row.name, {variable: value}) == expected
    assert read(row.name, {}) == row.default
    helpers = {
        "home": llmrelay.settings.home,
        "database_url": llmrelay.settings.database_url,
        "redis_url": llmrelay.settings.redis_url,
        "log": llmrelay.settings.log_enabled,
        "server_api_key": llmrelay.settings.server_api_key,
    }
    if row.name in helpers:
        assert str(helpers[row.name]({variable: value})) == str(expected)


def test_log_switch_values() -> None:
    for off in ("0", "false", "No", " OFF "):
        assert not llmrelay.settings.log_enabled({"LLMRELAY_LOG": off})
    for on in ("1", "on", "yes", ""):
        assert llmrelay.settings.log_enabled({"LLMRELAY_LOG": on})


def test_a_client_setting_is_not_read_as_a_process_one() -> None:
    with pytest.raises(KeyError):
        read("proxy", {"LLMRELAY_PROXY": "http://p:1"})


def test_variables_of_other_settings_are_not_typos(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "LLMRELAY_SERVER_API_KEY": "k" * 12,
        "LLMRELAY_REDIS_URL": "redis://r:6379/0",
        "LLMRELAY_DATABASE_URL": "sqlite:///x.db",
        "LLMRELAY_LOCAL_BASE_URL": "http://l.invalid",
        "LLMRELAY_HF_SPACES_HUB_URL": "http://h.invalid",
    }
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        Settings.load(providers=SPECS, env=env)
    assert caplog.text == ""
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        Settings.load(providers=SPECS, env={"LLMRELAY_LOCALL_API_KEY": "x"})
    assert "LLMRELAY_LOCALL_API_KEY names no provider setting" in caplog.text


def test_the_config_file_accepts_every_key_of_the_table_and_no_other() -> None:
    keys = {row.key[0] for row in CLIENT_ROWS if row.key}
    assert keys == {
        "model",
        "proxy",
        "ca_bundle",
        "verify",
        "strict",
        "cooldown",
        "retries",
        "rescue",
        "timeouts",
        "transport",
    } | {"aliases", "allow_image_fetch", "tool_emulation"}
    for reserved in ("log", "server"):  # reserved tables stay accepted
        Settings.load(providers=SPECS, config={reserved: {}}, env={})
    with pytest.raises(ConfigError, match="unknown setting 'verbose'"):
        Settings.load(providers=SPECS, config={"verbose": "x"}, env={})


# -- one reader of the environment -------------------------------------------------------------


def _reads_environment(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb")) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in ("environ", "getenv") for alias in node.names)
        ):
            lines.append(node.lineno)
    return lines


def test_only_the_settings_table_reads_the_environment() -> None:
    readers = {}
    for path in SRC.rglob("*.py"):
        lines = _reads_environment(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            readers[str(path.relative_to(SRC))] = lines
    assert list(readers) == ["_setting_table.py"], readers


def test_the_check_sees_a_read() -> None:
    assert _reads_environment(ast.parse("import os\nos.environ.get('X')")) == [2]
    assert _reads_environment(ast.parse("from os import getenv")) == [1]


# -- every documented variable and key is still read -------------------------------------------


def _documented_variables() -> set[str]:
    texts = [
        (ROOT / "README.md").read_text(encoding="utf-8"),
        *(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md")),
        (SRC / "_settings.py").read_text(encoding="utf-8").split('"""')[1],
    ]
    found = set()
    for text in texts:
        found |= set(re.findall(r"\bLLMRELAY_[A-Z0-9_]*[A-Z0-9]\b", text))
    return found


def test_every_documented_variable_is_read_by_a_row() -> None:
    table = {variable for row in SETTINGS for variable in row.variables}
    not_settings = {"LLMRELAY_GRADIO4_PYTHON", "LLMRELAY_SKIP_GRADIO4", "LLMRELAY_DEMO_PORT"}
    for variable in sorted(_documented_variables() - not_settings):
        if variable in table:
            continue
        # LLMRELAY_<NAME>_<ENDPOINT> / _API_KEY of a built-in (or docs/providers.md's) provider
        match = re.fullmatch(
            r"LLMRELAY_(HF_SPACES|HUGGINGFACE|REPLICATE|AI2|H2O|ACME)_(\w+)", variable
        )
        assert match, f"{variable} is documented but no row reads it"
        assert match[2] in ("BASE_URL", "HUB_URL", "ROUTER_URL", "API_KEY"), variable


def test_every_documented_config_key_is_read_by_a_row() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    doc = (SRC / "_settings.py").read_text(encoding="utf-8").split('"""')[1]
    keys = {row.key[0] for row in CLIENT_ROWS if row.key} | {"providers"}
    named = set(re.findall(r"^\s*([a-z_]+) = ", doc, flags=re.MULTILINE))
    named |= set(re.findall(r"^\s*\[([a-z_]+)[\].]", doc + readme, flags=re.MULTILINE))
    providers_keys = {"base_url", "api_key", "kind", "hub_url", "models", "tool_emulation"}
    timeouts = {"connect", "read", "first_token", "total", "silence", "stall"}
    alias_names = {"fast", "careful"}
    assert named - keys - providers_keys - timeouts - alias_names == set()


def test_every_row_has_readers_for_its_sources() -> None:
    from llmrelay._setting_table import TYPES

    for name, spec in {**SPECS, "other": ProviderSettingsSpec()}.items():
        rows = [*SETTINGS, *provider_settings(name, spec)]
        for row in rows:
            from_variable, from_key = TYPES[row.type]
            assert from_variable is not None or not row.variables, row.name
            assert from_key is not None or not row.key, row.name


_ENVIRONMENTS = [
    {"HOME": "/home/ada"},
    {"HOME": "/home/ada/"},
    {"HOME": "/"},
    {"HOME": "//srv//ada//"},
    {"HOME": "relative/home"},
    {},
    {"HOME": "/home/ada", "XDG_DATA_HOME": "/data/x", "XDG_CONFIG_HOME": "/conf/y/"},
    {"HOME": "/home/ada", "XDG_DATA_HOME": "", "XDG_CONFIG_HOME": ""},
    {"HOME": "/home/ada", "XDG_DATA_HOME": "rel/x", "XDG_CONFIG_HOME": "~/y"},
    {"XDG_DATA_HOME": "/data/x", "XDG_CONFIG_HOME": "/conf/y"},
    {"HOME": "/home/ada", "ANDROID_DATA": "/data", "ANDROID_ROOT": "/system"},
]


@pytest.mark.parametrize("environment", _ENVIRONMENTS)
def test_the_user_directories_are_platformdirs_own(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # llmrelay works out the plain Linux cases without importing platformdirs (start-up
    # time); whatever the environment, the answer must be platformdirs' own
    import platformdirs

    from llmrelay import _setting_table

    for name in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "ANDROID_DATA", "ANDROID_ROOT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LLMRELAY_HOME", raising=False)
    try:
        data = platformdirs.user_data_dir("llmrelay")
        config = platformdirs.user_config_dir("llmrelay")
    except RuntimeError:  # platformdirs finds no home: llmrelay says the same
        with pytest.raises(RuntimeError):
            _setting_table.home()
        return
    assert str(_setting_table.home()) == str(Path(data))
    assert str(_setting_table.default_config_path()) == str(Path(config) / "config.toml")


def test_the_plain_linux_case_does_not_import_platformdirs(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from llmrelay import _setting_table as t\n"
        "print(t.home(), t.default_config_path(), 'platformdirs' in sys.modules)\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    if sys.platform == "linux":
        assert out == [
            f"{tmp_path}/.local/share/llmrelay",
            f"{tmp_path}/.config/llmrelay/config.toml",
            "False",
        ]
