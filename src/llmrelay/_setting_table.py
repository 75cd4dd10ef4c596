"""The table of llmrelay's settings, and the only reader of the environment.

``SETTINGS`` has one row per setting: the argument that sets it, its environment
variables, its config-file key, its type and its default; ``provider_settings`` gives the
rows of a provider (its endpoints and its key). ``Sources.resolve`` reads one row from
arguments > environment > config file > default and says where the value came from;
``llmrelay._settings.Settings.load`` resolves a client's rows with it, and ``read`` (with
the typed helpers ``home``, ``database_url``, ``redis_url``, ``log_enabled``,
``server_api_key``) the process-wide ones. Nothing else in llmrelay reads ``os.environ``:
the other modules ask here.

A new setting is one row (and a field of ``Settings`` when a client resolves it); a new
type is one entry of ``TYPES``.
"""

from __future__ import annotations

import logging
import os
import posixpath
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from . import errors

__all__ = [
    "CLIENT_ROWS",
    "KNOWN_VARIABLES",
    "SETTINGS",
    "TABLE_KEYS",
    "TIMEOUT_DEFAULTS",
    "TOP_KEYS",
    "TYPES",
    "ProviderSettingsSpec",
    "Setting",
    "Sources",
    "alias_retries",
    "database_url",
    "default_config_path",
    "environ",
    "home",
    "keys_path",
    "load_config",
    "log_enabled",
    "provider_settings",
    "read",
    "redis_url",
    "server_api_key",
]

log = logging.getLogger("llmrelay")

TIMEOUT_DEFAULTS: Final[Mapping[str, float | None]] = MappingProxyType(
    {
        "connect": 10.0,
        "read": 120.0,
        "first_token": 120.0,
        "total": None,
        "silence": 10.0,
        "stall": 30.0,
    }
)


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: where its value is read from, its type and its default.

    Attributes:
        name: the ``Settings`` field it fills (``"timeouts.read"``: a field of
            ``Settings.timeouts``); for a process-wide setting, the name ``read`` takes.
        argument: the ``AsyncClient`` argument (or ``llmrelay`` command option) that
            sets it, or ``None``.
        variables: environment variables, in precedence order (the first one set wins).
        key: its place in the config file (``("timeouts", "read")`` is ``[timeouts]
            read``), or ``()`` when the config file cannot set it.
        type: how a value is read and checked: ``"text"``, ``"path"``, ``"bool"``,
            ``"count"`` (a whole number, zero or more), ``"seconds"`` (zero or more),
            ``"timeout"`` (more than zero), ``"url"``
            (http or https), ``"secret"`` (never shown), ``"switch"`` (on unless
            ``0``/``false``/``no``/``off``), ``"aliases"`` or ``"names"`` (provider or
            alias names: a list in the config file, comma-separated in a variable;
            ``true``/``1`` is every one, ``"*"``).
        default: the value when nothing sets it.
        scope: ``"client"`` (resolved for each client by ``Settings.load``) or
            ``"process"`` (read from the environment by ``read``).
    """

    name: str
    argument: str | None
    variables: tuple[str, ...]
    key: tuple[str, ...]
    type: str
    default: Any = None
    scope: str = "client"

    @property
    def config_name(self) -> str:
        """The config key as written in messages: ``proxy``, ``[timeouts] read``."""
        if len(self.key) < 2:
            return "".join(self.key)
        return f"[{'.'.join(self.key[:-1])}] {self.key[-1]}"


def _timeout_row(name: str) -> Setting:
    variable = f"LLMRELAY_{name.upper()}_TIMEOUT"
    return Setting(
        f"timeouts.{name}",
        "timeouts",
        (variable,),
        ("timeouts", name),
        "timeout",
        TIMEOUT_DEFAULTS[name],
    )


SETTINGS: Final[tuple[Setting, ...]] = (
    Setting("model", "model", ("LLMRELAY_MODEL",), ("model",), "text"),
    Setting("proxy", "proxy", ("LLMRELAY_PROXY",), ("proxy",), "text"),
    Setting(
        "ca_bundle",
        "verify",
        ("LLMRELAY_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"),
        ("ca_bundle",),
        "path",
    ),
    Setting("verify", "verify", (), ("verify",), "bool", True),
    Setting("strict", "strict", ("LLMRELAY_STRICT",), ("strict",), "bool", False),
    Setting("cooldown", "cooldown", ("LLMRELAY_COOLDOWN",), ("cooldown",), "seconds", 15.0),
    Setting(
        "allow_image_fetch",
        "allow_image_fetch",
        ("LLMRELAY_ALLOW_IMAGE_FETCH",),
        ("allow_image_fetch",),
        "bool",
        False,
    ),
    Setting("retries", "retries", ("LLMRELAY_RETRIES",), ("retries",), "count", 2),
    Setting("rescue", "rescue", ("LLMRELAY_RESCUE",), ("rescue",), "bool", True),
    Setting("transport", "transport", ("LLMRELAY_TRANSPORT",), ("transport",), "text", "httpx"),
    *(_timeout_row(name) for name in TIMEOUT_DEFAULTS),
    Setting("aliases", None, (), ("aliases",), "aliases", MappingProxyType({})),
    Setting(
        "tool_emulation",
        None,
        ("LLMRELAY_TOOL_EMULATION",),
        ("tool_emulation",),
        "names",
        frozenset(),
    ),
    Setting("config", "config_path", ("LLMRELAY_CONFIG",), (), "path", None, "process"),
    Setting("home", None, ("LLMRELAY_HOME",), (), "path", None, "process"),
    Setting("database_url", None, ("LLMRELAY_DATABASE_URL",), (), "text", None, "process"),
    Setting("redis_url", None, ("LLMRELAY_REDIS_URL",), (), "text", None, "process"),
    Setting("log", "--no-log", ("LLMRELAY_LOG",), (), "switch", True, "process"),
    Setting(
        "server_api_key",
        "--api-key",
        ("LLMRELAY_SERVER_API_KEY",),
        (),
        "secret",
        None,
        "process",
    ),
)
"""Every setting but the per-provider ones (``provider_settings`` gives those), in the
order of the README's table. A new setting is a row here and a field of ``Settings``."""

_ROWS: Final = MappingProxyType({row.name: row for row in SETTINGS})
CLIENT_ROWS: Final = tuple(row for row in SETTINGS if row.scope == "client")
_RESERVED_KEYS = frozenset({"providers", "log", "server"})
"""Config tables read elsewhere (``providers``) or reserved for later (``log``, ``server``)."""
TOP_KEYS: Final = frozenset(row.key[0] for row in CLIENT_ROWS if row.key) | _RESERVED_KEYS
TABLE_KEYS: Final = MappingProxyType(
    {
        top: frozenset(r.key[1] for r in CLIENT_ROWS if len(r.key) == 2 and r.key[0] == top)
        for top in sorted({row.key[0] for row in CLIENT_ROWS if len(row.key) == 2})
    }
)
"""Config tables whose keys are rows (``timeouts``) -> those keys."""
KNOWN_VARIABLES: Final = frozenset(var for row in SETTINGS for var in row.variables)
_OFF = frozenset({"0", "false", "no", "off"})
_ON = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True, slots=True)
class ProviderSettingsSpec:
    """What the settings layer needs to know of a registered provider.

    Attributes:
        endpoints: its endpoint names (``("base_url", "hub_url")``).
        env_var: the vendor's key variable, or ``None``.
        config_keys: further keys its config table may hold (configured kinds).
    """

    endpoints: tuple[str, ...] = ("base_url",)
    env_var: str | None = None
    config_keys: frozenset[str] = frozenset()


def provider_settings(name: str, spec: ProviderSettingsSpec) -> tuple[Setting, ...]:
    """The rows of provider ``name``: its endpoints, its key, its retries.

    One row per endpoint (``url``), its key (``secret``), and its same-candidate
    ``retries`` (``count``; unset: the client's ``retries``).

    The key's last source, the keys file, is read by ``Settings.load`` after the rows.
    """
    upper = name.upper()
    endpoints = tuple(
        Setting(
            f"providers.{name}.{endpoint}",
            "endpoints",
            (f"LLMRELAY_{upper}_{endpoint.upper()}",),
            ("providers", name, endpoint),
            "url",
        )
        for endpoint in spec.endpoints
    )
    variables = (f"LLMRELAY_{upper}_API_KEY", *([spec.env_var] if spec.env_var else []))
    key = Setting(
        f"providers.{name}.api_key", "api_keys", variables, ("providers", name, "api_key"), "secret"
    )
    retries = Setting(
        f"providers.{name}.retries",
        None,
        (f"LLMRELAY_{upper}_RETRIES",),
        ("providers", name, "retries"),
        "count",
    )
    return (*endpoints, key, retries)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise errors.ConfigError(f"{what} must be a number of seconds; got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise errors.ConfigError(f"{what} must be a number of seconds; got {value!r:.60}") from None


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())
    ):
        raise errors.ConfigError(f"{what} must be a whole number, zero or more; got {value!r:.60}")
    number = int(value)
    if number < 0 or number > 100:
        raise errors.ConfigError(f"{what} must be between 0 and 100; got {number}")
    return number


def _as_text(text: str, variable: str) -> str:
    return text


def _as_bool(text: str, variable: str) -> bool:
    return text.strip().lower() in _ON


def _as_switch(text: str, variable: str) -> bool:
    return text.strip().lower() not in _OFF


def _as_url(text: str, variable: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise errors.ConfigError(
            f"{variable}={text!r:.100} is not a URL: it must be an http:// or https:// URL "
            f"(e.g. http://{text.split('://')[-1]:.60})"
        )
    return text


def _text_key(value: Any, file: str, row: Setting) -> str | None:
    if value == "":
        return None
    if not isinstance(value, str):
        raise errors.ConfigError(f"{file}: {row.config_name} must be a string; got {value!r:.60}")
    return value


def _path_key(value: Any, file: str, row: Setting) -> str:
    if not isinstance(value, str) or not value:
        raise errors.ConfigError(f"{file}: {row.config_name} must be a file path")
    return value


def _bool_key(value: Any, file: str, row: Setting) -> bool:
    if not isinstance(value, bool):
        raise errors.ConfigError(f"{file}: {row.config_name} must be true or false")
    return value


def _count_key(value: Any, file: str, row: Setting) -> int:
    return _count(value, f"{file}: {row.config_name}")


def _seconds_key(value: Any, file: str, row: Setting) -> float:
    return _number(value, f"{file}: {row.config_name}")


def _secret_key(value: Any, file: str, row: Setting) -> str | None:
    if not isinstance(value, str):  # the message never shows the value
        raise errors.ConfigError(f"{file}: {row.config_name} must be a string")
    return value or None


def _url_key(value: Any, file: str, row: Setting) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise errors.ConfigError(
            f"{file} {row.config_name}: {row.key[-1]} must be an http:// or https:// URL; "
            f"got {value!r:.100}"
        )
    return value


def _aliases_key(value: Any, file: str, row: Setting) -> dict[str, tuple[str, ...]]:
    return _aliases(value, file)


def _as_names(text: str, variable: str) -> frozenset[str]:
    word = text.strip().lower()
    if word in _ON:
        return frozenset({"*"})
    if word in _OFF:
        return frozenset()
    return frozenset(name.strip() for name in text.split(",") if name.strip())


def _names_key(value: Any, file: str, row: Setting) -> frozenset[str]:
    if isinstance(value, bool):
        return frozenset({"*"}) if value else frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise errors.ConfigError(
            f"{file}: {row.config_name} must be true, false or a list of provider or alias names"
        )
    return frozenset(value)


_VariableReader = Callable[[str, str], Any]
_KeyReader = Callable[[Any, str, Setting], Any]

TYPES: Final[Mapping[str, tuple[_VariableReader | None, _KeyReader | None]]] = MappingProxyType(
    {
        "text": (_as_text, _text_key),
        "path": (_as_text, _path_key),
        "bool": (_as_bool, _bool_key),
        "switch": (_as_switch, None),
        "count": (_count, _count_key),
        "seconds": (_number, _seconds_key),
        "timeout": (_number, _seconds_key),
        "url": (_as_url, _url_key),
        "secret": (_as_text, _secret_key),
        "aliases": (None, _aliases_key),
        "names": (_as_names, _names_key),
    }
)
"""Setting type -> (reader of an environment variable's text, reader of a config value):
each returns the typed value or raises ``ConfigError`` naming the variable or the file and
key. A new type is one entry."""


def _from_variable(row: Setting, text: str, variable: str) -> Any:
    reader = TYPES[row.type][0]
    assert reader is not None, f"{row.name} has a variable but its type reads none"
    return reader(text, variable)


def _from_config(row: Setting, value: Any, file: str) -> Any:
    reader = TYPES[row.type][1]
    assert reader is not None, f"{row.name} has a config key but its type reads none"
    return reader(value, file, row)


def _aliases(table: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, dict):
        raise errors.ConfigError(f"{where}: [aliases] must be a table")
    out: dict[str, tuple[str, ...]] = {}
    for name, value in table.items():
        if isinstance(value, dict):  # {models = [...], retries = N}
            unknown = sorted(set(value) - {"models", "retries"})
            if unknown or "models" not in value:
                raise errors.ConfigError(
                    f"{where}: [aliases] {name} as a table takes models (required) and retries"
                )
            value = value["models"]
        refs: Sequence[Any] = [value] if isinstance(value, str) else value
        if (
            not isinstance(refs, list | tuple)
            or not refs
            or not all(isinstance(r, str) and r for r in refs)
        ):
            raise errors.ConfigError(
                f"{where}: [aliases] {name} must be a model reference or a list of them"
            )
        out[str(name)] = tuple(refs)
    return out


def alias_retries(doc: Mapping[str, Any], where: str) -> dict[str, int]:
    """The ``retries`` of the aliases written as tables (``x = {models = [...], retries = 1}``)."""
    table = doc.get("aliases")
    if not isinstance(table, Mapping):
        return {}
    return {
        str(name): _count(value["retries"], f"{where}: [aliases] {name} retries")
        for name, value in table.items()
        if isinstance(value, Mapping) and "retries" in value
    }


def _check(row: Setting, value: Any) -> Any:
    """A value's last check, whatever its source."""
    if row.type == "count":
        return _count(value, row.name)
    if row.type == "seconds":
        value = float(value)
        if value < 0:
            raise errors.ConfigError(f"{row.name} must be zero or a positive number of seconds")
    return value


class Sources:
    """The three sources of one resolution: arguments, environment, config document.

    Args:
        arguments: row name -> ``(value, argument name)``, only those given.
        env: the environment (read, never kept beyond the resolution).
        doc: the parsed config file.
        where: the config file as named in errors (its path).
    """

    def __init__(
        self,
        arguments: Mapping[str, tuple[Any, str]],
        env: Mapping[str, str],
        doc: Mapping[str, Any],
        where: str,
    ) -> None:
        self.arguments = arguments
        self.env = env
        self.doc = doc
        self.where = where

    def resolve(self, row: Setting) -> tuple[Any, str | None]:
        """``(value, source)`` from the first source that sets ``row``.

        ``source`` is ``"argument NAME"``, a variable, ``"config file KEY"``, or ``None``
        for the default.

        Raises:
            llmrelay.errors.ConfigError: a value of the wrong type, naming its source.
        """
        given = self.arguments.get(row.name)
        if given is not None:
            return _check(row, given[0]), f"argument {given[1]}"
        for variable in row.variables:
            text = self.env.get(variable)
            if text:
                return _check(row, _from_variable(row, text, variable)), variable
        found, value = _lookup(self.doc, row.key)
        if found:
            value = _from_config(row, value, self.where)
            if value is not None:
                return _check(row, value), f"config file {row.config_name}"
        return row.default, None


def _lookup(doc: Mapping[str, Any], key: tuple[str, ...]) -> tuple[bool, Any]:
    value: Any = doc
    for part in key:
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return bool(key), value


def environ() -> Mapping[str, str]:
    """The process's environment (``os.environ``), read by the settings layer only."""
    return os.environ


def dumb_terminal(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``TERM`` names a terminal without cursor control (``dumb``, ``unknown``).

    Not an llmrelay setting: the CLI's transient status line reads it (through here, the
    one reader of the environment) to write nothing where carriage returns and erase codes would
    show as garbage.
    """
    return (os.environ if env is None else env).get("TERM") in ("dumb", "unknown")


def read(name: str, env: Mapping[str, str] | None = None) -> Any:
    """The value of the process-wide setting ``name`` (a ``"process"`` row of ``SETTINGS``).

    Args:
        name: ``"config"``, ``"home"``, ``"database_url"``, ``"redis_url"``, ``"log"`` or
            ``"server_api_key"``.
        env: the environment (default ``os.environ``).

    Raises:
        KeyError: ``name`` is not a process-wide setting.
    """
    row = _ROWS[name]
    if row.scope != "process":
        raise KeyError(name)
    return Sources({}, environ() if env is None else env, {}, "").resolve(row)[0]


def home(env: Mapping[str, str] | None = None) -> Path:
    """``$LLMRELAY_HOME``, or ``<platformdirs user data dir>/llmrelay`` (not created here)."""
    value = read("home", env)
    if value:
        return Path(value).expanduser()
    return user_dir("data")


def database_url(env: Mapping[str, str] | None = None) -> str | None:
    """``$LLMRELAY_DATABASE_URL`` or ``None``."""
    value: str | None = read("database_url", env)
    return value


def redis_url(env: Mapping[str, str] | None = None) -> str | None:
    """``$LLMRELAY_REDIS_URL`` or ``None``."""
    value: str | None = read("redis_url", env)
    return value


def log_enabled(env: Mapping[str, str] | None = None) -> bool:
    """``False`` when ``LLMRELAY_LOG`` is ``0``, ``false``, ``no`` or ``off``."""
    return bool(read("log", env))


def server_api_key(env: Mapping[str, str] | None = None) -> str | None:
    """``$LLMRELAY_SERVER_API_KEY`` or ``None``."""
    value: str | None = read("server_api_key", env)
    return value


def default_config_path() -> Path:
    """``<platformdirs user config dir>/llmrelay/config.toml``."""
    return user_dir("config") / "config.toml"


_XDG: Final = {
    "data": ("XDG_DATA_HOME", "/.local/share"),
    "config": ("XDG_CONFIG_HOME", "/.config"),
}


def user_dir(kind: str) -> Path:
    """The user data (``kind="data"``) or config (``"config"``) directory of llmrelay.

    On Linux these follow the XDG Base Directory rules
    (https://specifications.freedesktop.org/basedir-spec/latest/): ``$XDG_DATA_HOME`` or
    ``$XDG_CONFIG_HOME`` when absolute, else ``$HOME/.local/share`` or ``$HOME/.config``;
    then ``/llmrelay``. Where the answer is that plain (Linux, not Android, an absolute
    variable or an absolute ``HOME``) it is computed here, as platformdirs computes it
    (https://github.com/tox-dev/platformdirs/blob/main/src/platformdirs/_xdg.py),
    without importing platformdirs: its Unix module imports ``tempfile`` and with it
    ``shutil``, ``random``, ``bz2`` and ``lzma``, ~9 ms of CPU before a chat's first
    token. Any other case (another system, a relative or missing ``HOME``) asks
    platformdirs; ``tests/unit/test_setting_table.py`` checks both give the same path.
    """
    variable, default = _XDG[kind]
    env = os.environ
    plain_linux = (
        sys.platform == "linux"
        and not hasattr(sys, "getandroidapilevel")
        and not (env.get("ANDROID_DATA") == "/data" and env.get("ANDROID_ROOT") == "/system")
    )
    if plain_linux:
        base = env.get(variable, "")
        if not posixpath.isabs(base):
            home = env.get("HOME", "")
            # os.path.expanduser's rule for "~" + default: HOME without trailing slashes
            base = home.rstrip("/") + default if posixpath.isabs(home) else ""
        if base:
            return Path(os.path.join(base, "llmrelay"))
    import platformdirs

    found = (
        platformdirs.user_data_dir("llmrelay")
        if kind == "data"
        else platformdirs.user_config_dir("llmrelay")
    )
    return Path(found)


def keys_path(env: Mapping[str, str] | None = None) -> Path:
    """The keys file written by ``llmrelay keys set`` (see ``llmrelay._keys``).

    ``<LLMRELAY_HOME>/keys.json`` when ``env`` sets it, else the default location.
    """
    return home(env) / "keys.json"


def load_config(path: str | os.PathLike[str] | None = None) -> tuple[Path, dict[str, Any]]:
    """Find and read the config file.

    Args:
        path: an explicit path (must exist); else ``LLMRELAY_CONFIG`` (must exist); else
            the default path (may be missing).

    Returns:
        ``(path, document)``; ``document`` is ``{}`` when the default file is missing.

    Raises:
        llmrelay.errors.ConfigError: a missing explicit file, unreadable or invalid TOML.
    """
    explicit = path or read("config")
    resolved = Path(explicit) if explicit else default_config_path()
    try:
        handle = resolved.open("rb")
    except FileNotFoundError:
        if explicit:
            raise errors.ConfigError(f"config file not found: {resolved}") from None
        log.info("no config file at %s", resolved)
        return resolved, {}
    except OSError as exc:
        raise errors.ConfigError(f"cannot read config file {resolved}: {exc}") from exc
    import tomllib  # only when there is a file to parse (~5 ms of start-up otherwise)

    try:
        with handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise errors.ConfigError(f"cannot read config file {resolved}: {exc}") from exc
    log.info("config file: %s", resolved)
    return resolved, document
