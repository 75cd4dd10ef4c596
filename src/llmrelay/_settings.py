"""Settings and keys, resolved as: arguments > environment > config file > defaults.

Environment:
    ``LLMRELAY_<PROVIDER>_BASE_URL``  base URL of a provider (name upper-cased)
    ``LLMRELAY_<PROVIDER>_API_KEY``   key of a provider (beats the vendor variable)
    the provider's own key variable   e.g. ``HF_TOKEN``, ``REPLICATE_API_TOKEN``
    ``LLMRELAY_PROXY``                http://, https:// or socks5:// proxy URL
    ``LLMRELAY_CONNECT_TIMEOUT``, ``LLMRELAY_READ_TIMEOUT``, ``LLMRELAY_TOTAL_TIMEOUT``  seconds
    ``LLMRELAY_MODEL``                default model reference
    ``LLMRELAY_CONFIG``               path of the config file

Config file (TOML; default ``<user config dir>/llmrelay/config.toml``)::

    model = "hf_spaces:qwen-2-72b"
    proxy = "socks5://127.0.0.1:1080"

    [timeouts]
    connect = 10
    read = 120
    total = 600

    [providers.hf_spaces]
    base_url = "http://127.0.0.1:7860"
    api_key = "hf_..."

The standard ``HTTP(S)_PROXY`` variables are deliberately not read: a proxy is only used
when set through llmrelay, so a stray variable never reroutes a key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import errors

__all__ = ["Settings", "Timeouts", "default_config_path"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Timeouts in seconds.

    Attributes:
        connect: to establish a connection.
        read: the longest silence allowed between two chunks of a response (an idle
            timeout: a long generation that keeps streaming is never cut).
        total: an upper bound on a whole stream, or ``None`` for no bound.
    """

    connect: float = 10.0
    read: float = 120.0
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"timeout {name} must be a positive number of seconds")


def default_config_path() -> Path:
    """``<platformdirs user config dir>/llmrelay/config.toml``."""
    import platformdirs

    return Path(platformdirs.user_config_dir("llmrelay")) / "config.toml"


def _env_float(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise errors.ConfigError(f"{name} must be a number of seconds; got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one client. Keys are kept out of ``repr``.

    Attributes:
        base_urls: provider name -> base URL overrides (arguments and config merged).
        timeouts: connect, read and total timeouts.
        proxy: proxy URL or ``None``.
        model: default model reference or ``None``.
        config_path: the config file read, if any.
    """

    base_urls: Mapping[str, str] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    proxy: str | None = None
    model: str | None = None
    config_path: Path | None = None
    _arg_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    _config_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    _env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def load(
        cls,
        *,
        base_urls: Mapping[str, str] | None = None,
        api_keys: Mapping[str, str] | None = None,
        proxy: str | None = None,
        timeouts: Timeouts | None = None,
        model: str | None = None,
        config_path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Resolve settings from arguments, the environment and the config file.

        Args:
            base_urls: provider name -> base URL.
            api_keys: provider name -> key.
            proxy: proxy URL.
            timeouts: ``Timeouts``; unset fields fall back to env/config/defaults.
            model: default model reference.
            config_path: config file to read (default: ``LLMRELAY_CONFIG`` or the user
                config dir); a missing default file is fine, a missing explicit one is not.
            env: the environment to read (default ``os.environ``), for tests.

        Raises:
            llmrelay.errors.ConfigError: unreadable or invalid config file or values.
        """
        environ = dict(os.environ if env is None else env)
        explicit = config_path or environ.get("LLMRELAY_CONFIG")
        path = Path(explicit) if explicit else default_config_path()
        config = _read_config(path, required=bool(explicit))
        providers_cfg = config.get("providers", {})
        if not isinstance(providers_cfg, dict):
            raise errors.ConfigError(f"{path}: [providers] must be a table")

        urls: dict[str, str] = {}
        keys: dict[str, str] = {}
        for name, table in providers_cfg.items():
            if not isinstance(table, dict):
                raise errors.ConfigError(f"{path}: [providers.{name}] must be a table")
            if "base_url" in table:
                urls[name] = str(table["base_url"])
            if "api_key" in table:
                keys[name] = str(table["api_key"])
        for key, value in environ.items():
            if key.startswith("LLMRELAY_") and key.endswith("_BASE_URL") and value:
                urls[key[len("LLMRELAY_") : -len("_BASE_URL")].lower()] = value
        urls.update(base_urls or {})

        t_cfg = config.get("timeouts", {})
        if not isinstance(t_cfg, dict):
            raise errors.ConfigError(f"{path}: [timeouts] must be a table")
        given = timeouts or Timeouts()
        defaults = Timeouts()

        def pick(name: str) -> Any:
            arg = getattr(given, name)
            if timeouts is not None and arg != getattr(defaults, name):
                return arg
            env_value = _env_float(environ, f"LLMRELAY_{name.upper()}_TIMEOUT")
            if env_value is not None:
                return env_value
            if name in t_cfg:
                return float(t_cfg[name])
            return arg

        try:
            resolved_timeouts = Timeouts(
                connect=pick("connect"), read=pick("read"), total=pick("total")
            )
        except (ValueError, TypeError) as exc:
            raise errors.ConfigError(str(exc)) from None

        return cls(
            base_urls=urls,
            timeouts=resolved_timeouts,
            proxy=proxy or environ.get("LLMRELAY_PROXY") or _opt_str(config.get("proxy")),
            model=model or environ.get("LLMRELAY_MODEL") or _opt_str(config.get("model")),
            config_path=path if path.is_file() else None,
            _arg_keys={name: key for name, key in (api_keys or {}).items() if key},
            _config_keys=keys,
            _env=environ,
        )

    def base_url_for(self, provider: str) -> str | None:
        """The base URL override of ``provider``, or ``None`` for its default."""
        return self.base_urls.get(provider)

    def api_key_for(self, provider: str, env_var: str | None) -> str | None:
        """The key of ``provider``.

        Order: argument > ``LLMRELAY_<PROVIDER>_API_KEY`` > the provider's own variable
        (``env_var``) > config file. Returns ``None`` when no key is set.
        """
        if self._arg_keys.get(provider):
            return self._arg_keys[provider]
        for var in (f"LLMRELAY_{provider.upper()}_API_KEY", env_var):
            if var and self._env.get(var):
                return self._env[var]
        return self._config_keys.get(provider) or None


def _opt_str(value: object) -> str | None:
    return str(value) if value else None


def _read_config(path: Path, *, required: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        if required:
            raise errors.ConfigError(f"config file not found: {path}") from None
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise errors.ConfigError(f"cannot read config file {path}: {exc}") from exc
