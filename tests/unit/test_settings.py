from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from llmrelay import AsyncClient, ConfigError, Timeouts
from llmrelay._settings import (
    ProviderSettingsSpec,
    Settings,
    default_config_path,
    keys_path,
    load_config,
)

CONFIG = """
model = "hf_spaces:from-config"
proxy = "socks5://127.0.0.1:1"

[timeouts]
read = 30
total = 600

[providers.hf_spaces]
base_url = "http://config.invalid"
api_key = "key-from-config"
"""

SPECS = {
    "hf_spaces": ProviderSettingsSpec(("base_url",), "HF_TOKEN"),
    "huggingface": ProviderSettingsSpec(("base_url", "hub_url"), "HF_TOKEN"),
}


def load(path: Path | None = None, **kwargs: Any) -> Settings:
    config = {}
    if path is not None:
        _, config = load_config(path)
    kwargs.setdefault("env", {})
    return Settings.load(providers=SPECS, config=config, config_path=path, **kwargs)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def test_defaults_without_anything(isolated_env: Path) -> None:
    settings = load()
    assert settings.timeouts == Timeouts(connect=10.0, read=120.0, first_token=120.0, total=None)
    assert settings.proxy is None
    assert settings.verify is True
    assert settings.base_url_for("hf_spaces") is None
    assert settings.api_key_for("hf_spaces") is None
    assert settings.cooldown == 15.0
    assert settings.strict is False


def test_default_config_path_is_in_the_user_config_dir(isolated_env: Path) -> None:
    assert default_config_path() == isolated_env / ".config" / "llmrelay" / "config.toml"


def test_config_file_then_environment_then_arguments(config_file: Path) -> None:
    from_config = load(config_file)
    assert from_config.base_url_for("hf_spaces") == "http://config.invalid"
    assert from_config.api_key_for("hf_spaces") == "key-from-config"
    assert from_config.timeouts == Timeouts(connect=10.0, read=30.0, total=600.0)
    assert from_config.model == "hf_spaces:from-config"
    assert from_config.proxy == "socks5://127.0.0.1:1"
    assert from_config.endpoint_sources[("hf_spaces", "base_url")].endswith(
        "[providers.hf_spaces] base_url"
    )

    env = {
        "LLMRELAY_HF_SPACES_BASE_URL": "http://env.invalid",
        "HF_TOKEN": "key-from-env",
        "LLMRELAY_READ_TIMEOUT": "5",
        "LLMRELAY_MODEL": "hf_spaces:from-env",
    }
    from_env = load(config_file, env=env)
    assert from_env.base_url_for("hf_spaces") == "http://env.invalid"
    assert from_env.endpoint_sources[("hf_spaces", "base_url")] == "LLMRELAY_HF_SPACES_BASE_URL"
    assert from_env.api_key_for("hf_spaces") == "key-from-env"
    assert from_env.key_sources["hf_spaces"] == "HF_TOKEN"
    assert from_env.timeouts.read == 5.0
    assert from_env.model == "hf_spaces:from-env"

    from_args = load(
        config_file,
        env=env,
        base_urls={"hf_spaces": "http://arg.invalid"},
        api_keys={"hf_spaces": "key-from-arg"},
        timeouts=Timeouts(read=1.5),
        model="hf_spaces:from-arg",
    )
    assert from_args.base_url_for("hf_spaces") == "http://arg.invalid"
    assert from_args.api_key_for("hf_spaces") == "key-from-arg"
    assert from_args.key_sources["hf_spaces"] == "argument api_keys"
    assert from_args.timeouts.read == 1.5
    assert from_args.model == "hf_spaces:from-arg"


def test_an_explicit_timeout_equal_to_the_default_still_wins(config_file: Path) -> None:
    # not given != given the default value
    env = {"LLMRELAY_READ_TIMEOUT": "5", "LLMRELAY_CONNECT_TIMEOUT": "3"}
    settings = load(config_file, env=env, timeouts=Timeouts(read=120.0))
    assert settings.timeouts.read == 120.0
    assert settings.timeouts.connect == 3.0  # not given: the environment's


def test_named_endpoints_from_each_source(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[providers.huggingface]\nhub_url = "http://hub-config.invalid"\n')
    assert load(path).endpoints_for("huggingface") == {"hub_url": "http://hub-config.invalid"}
    env = {"LLMRELAY_HUGGINGFACE_HUB_URL": "http://hub-env.invalid"}
    assert load(path, env=env).endpoints_for("huggingface")["hub_url"] == "http://hub-env.invalid"
    arg = load(path, env=env, endpoints={"huggingface": {"hub_url": "http://hub-arg.invalid"}})
    assert arg.endpoints_for("huggingface")["hub_url"] == "http://hub-arg.invalid"
    with pytest.raises(ConfigError, match="no endpoint 'hubb_url'"):
        load(endpoints={"huggingface": {"hubb_url": "http://x.invalid"}})


def test_llmrelay_key_variable_beats_vendor_variable() -> None:
    env = {"HF_TOKEN": "vendor", "LLMRELAY_HF_SPACES_API_KEY": "ours"}
    assert load(env=env).api_key_for("hf_spaces") == "ours"
    assert load(env=env).api_key_for("huggingface") == "vendor"


def test_keys_file_is_the_last_source(tmp_path: Path) -> None:
    env = {"LLMRELAY_HOME": str(tmp_path)}
    keys_path(env).write_text('{"hf_spaces": "from-file"}')
    settings = load(env=env)
    assert settings.api_key_for("hf_spaces") == "from-file"
    assert settings.key_sources["hf_spaces"].startswith("keys file")
    assert load(env={**env, "HF_TOKEN": "env"}).api_key_for("hf_spaces") == "env"


def test_config_path_from_environment(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMRELAY_CONFIG", str(config_file))
    path, document = load_config()
    assert path == config_file
    assert document["model"] == "hf_spaces:from-config"


def test_keys_never_in_repr(config_file: Path) -> None:
    settings = load(config_file, env={"HF_TOKEN": "hf_secret_env"}, api_keys={"hf_spaces": "sk-s"})
    text = repr(settings)
    assert "secret" not in text
    assert "sk-s" not in text
    assert "key-from-config" not in text
    assert settings.api_key_for("huggingface") == "hf_secret_env"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("this is = = not toml", "cannot read config file"),
        ("providers = 3", "[providers] must be a table"),
        ("[timeouts]\nread = -1", "read must be a positive"),
        ('[timeouts]\nread = "abc"', "[timeouts] read must be a number of seconds; got 'abc'"),
        ("[timeouts]\nreed = 3", "unknown key 'reed' (did you mean read?)"),
        ("[providers.hf_space]\nbase_url = 'http://x.invalid'", "did you mean hf_spaces?"),
        ("[providers.hf_spaces]\nbase_ur = 'http://x.invalid'", "unknown key 'base_ur'"),
        ("[providers.hf_spaces]\nbase_url = '127.0.0.1:7860'", "must be an http:// or https://"),
        ("modle = 'x'", "unknown setting 'modle' (did you mean model?)"),
        ("[aliases]\nfast = 3", "[aliases] fast must be a model reference"),
        ("strict = 'yes'", "strict must be true or false"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value) or "must be a positive" in str(info.value)


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_bad_timeout_variable_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="LLMRELAY_READ_TIMEOUT"):
        load(env={"LLMRELAY_READ_TIMEOUT": "soon"})


def test_base_url_without_a_scheme_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="LLMRELAY_HF_SPACES_BASE_URL"):
        load(env={"LLMRELAY_HF_SPACES_BASE_URL": "127.0.0.1:7860"})


def test_an_environment_typo_is_a_warning_naming_the_closest_variable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        settings = load(env={"LLMRELAY_HF_SPACE_BASE_URL": "http://typo.invalid"})
    assert settings.base_url_for("hf_spaces") is None
    assert "LLMRELAY_HF_SPACE_BASE_URL" in caplog.text
    assert "did you mean LLMRELAY_HF_SPACES_BASE_URL?" in caplog.text


def test_unknown_provider_arguments_are_errors() -> None:
    with pytest.raises(ConfigError, match="did you mean hf_spaces"):
        load(base_urls={"hf_space": "http://x.invalid"})


def test_ca_bundle_comes_from_the_standard_variable(tmp_path: Path) -> None:
    assert load(env={"SSL_CERT_FILE": "/etc/corp.pem"}).verify == "/etc/corp.pem"
    assert load(env={"LLMRELAY_CA_BUNDLE": "/a.pem", "SSL_CERT_FILE": "/b.pem"}).verify == "/a.pem"
    path = tmp_path / "c.toml"
    path.write_text("verify = false\n")
    assert load(path).verify is False


def test_an_unreadable_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CA bundle"):
        AsyncClient(verify=str(tmp_path / "missing.pem"))


def test_settings_keep_no_copy_of_the_environment() -> None:
    settings = load(env={"HF_TOKEN": "t", "UNRELATED": "x", "LLMRELAY_PROXY": "http://p:1"})
    values = [getattr(settings, f) for f in settings.__dataclass_fields__]
    assert not any(isinstance(v, dict) and "UNRELATED" in v for v in values)
    assert "UNRELATED" not in repr(values)
