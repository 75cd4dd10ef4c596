from __future__ import annotations

from pathlib import Path

import pytest

from llmrelay import ConfigError, Timeouts
from llmrelay._settings import Settings, default_config_path

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


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def test_defaults_without_anything(isolated_env: Path) -> None:
    settings = Settings.load(env={})
    assert settings.timeouts == Timeouts(connect=10.0, read=120.0, total=None)
    assert settings.proxy is None
    assert settings.base_url_for("hf_spaces") is None
    assert settings.api_key_for("hf_spaces", "HF_TOKEN") is None


def test_default_config_path_is_in_the_user_config_dir(isolated_env: Path) -> None:
    assert default_config_path() == isolated_env / ".config" / "llmrelay" / "config.toml"


def test_config_file_then_environment_then_arguments(config_file: Path) -> None:
    from_config = Settings.load(config_path=config_file, env={})
    assert from_config.base_url_for("hf_spaces") == "http://config.invalid"
    assert from_config.api_key_for("hf_spaces", "HF_TOKEN") == "key-from-config"
    assert from_config.timeouts == Timeouts(connect=10.0, read=30.0, total=600.0)
    assert from_config.model == "hf_spaces:from-config"
    assert from_config.proxy == "socks5://127.0.0.1:1"

    env = {
        "LLMRELAY_HF_SPACES_BASE_URL": "http://env.invalid",
        "HF_TOKEN": "key-from-env",
        "LLMRELAY_READ_TIMEOUT": "5",
        "LLMRELAY_MODEL": "hf_spaces:from-env",
    }
    from_env = Settings.load(config_path=config_file, env=env)
    assert from_env.base_url_for("hf_spaces") == "http://env.invalid"
    assert from_env.api_key_for("hf_spaces", "HF_TOKEN") == "key-from-env"
    assert from_env.timeouts.read == 5.0
    assert from_env.model == "hf_spaces:from-env"

    from_args = Settings.load(
        config_path=config_file,
        env=env,
        base_urls={"hf_spaces": "http://arg.invalid"},
        api_keys={"hf_spaces": "key-from-arg"},
        timeouts=Timeouts(read=1.5),
        model="hf_spaces:from-arg",
    )
    assert from_args.base_url_for("hf_spaces") == "http://arg.invalid"
    assert from_args.api_key_for("hf_spaces", "HF_TOKEN") == "key-from-arg"
    assert from_args.timeouts.read == 1.5
    assert from_args.model == "hf_spaces:from-arg"


def test_llmrelay_key_variable_beats_vendor_variable() -> None:
    env = {"HF_TOKEN": "vendor", "LLMRELAY_HF_SPACES_API_KEY": "ours"}
    assert Settings.load(env=env).api_key_for("hf_spaces", "HF_TOKEN") == "ours"


def test_config_path_from_environment(config_file: Path) -> None:
    settings = Settings.load(env={"LLMRELAY_CONFIG": str(config_file)})
    assert settings.config_path == config_file


def test_keys_never_in_repr(config_file: Path) -> None:
    settings = Settings.load(
        config_path=config_file, env={"HF_TOKEN": "hf_secret_env"}, api_keys={"x": "sk-secret"}
    )
    text = repr(settings)
    assert "secret" not in text
    assert "key-from-config" not in text


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("this is = = not toml", "cannot read config file"),
        ("providers = 3", "[providers] must be a table"),
        ("[timeouts]\nread = -1", "read must be a positive"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        Settings.load(config_path=path, env={})
    assert fragment in str(info.value)


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        Settings.load(config_path=tmp_path / "nope.toml", env={})


def test_bad_timeout_variable_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="LLMRELAY_READ_TIMEOUT"):
        Settings.load(env={"LLMRELAY_READ_TIMEOUT": "soon"})
