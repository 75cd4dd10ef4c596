"""Settings and keys, resolved as: arguments > environment > config file > defaults.

Environment (``NAME`` is a provider's registry name upper-cased, ``ENDPOINT`` one of its
endpoint names upper-cased, e.g. ``LLMRELAY_HUGGINGFACE_HUB_URL``):
    ``LLMRELAY_<NAME>_<ENDPOINT>``    an endpoint of a provider (``..._BASE_URL``)
    ``LLMRELAY_<NAME>_API_KEY``       key of a provider (beats the vendor variable)
    the provider's own key variable   e.g. ``HF_TOKEN``, ``REPLICATE_API_TOKEN``
    ``LLMRELAY_PROXY``                http://, https:// or socks5:// proxy URL
    ``LLMRELAY_CA_BUNDLE``            CA bundle (then ``SSL_CERT_FILE``, ``SSL_CERT_DIR``)
    ``LLMRELAY_CONNECT_TIMEOUT``, ``LLMRELAY_READ_TIMEOUT``,
    ``LLMRELAY_FIRST_TOKEN_TIMEOUT``, ``LLMRELAY_TOTAL_TIMEOUT``  seconds
    ``LLMRELAY_MODEL``                default model reference
    ``LLMRELAY_STRICT``               ``1``: unsupported parameters are errors
    ``LLMRELAY_COOLDOWN``             seconds a failing candidate waits at the back
    ``LLMRELAY_TRANSPORT``            ``httpx`` (default), ``aiohttp`` or ``auto``
    ``LLMRELAY_CONFIG``               path of the config file
    ``LLMRELAY_HOME``                 directory of the keys file and the exchange log

Config file (TOML; default ``<user config dir>/llmrelay/config.toml``)::

    model = "hf_spaces:qwen-2-72b"
    proxy = "socks5://127.0.0.1:1080"
    ca_bundle = "/etc/ssl/corp.pem"      # or: verify = false
    strict = false
    cooldown = 30
    transport = "aiohttp"                # httpx (default), aiohttp or auto

    [timeouts]
    connect = 10
    read = 120
    first_token = 120
    total = 600

    [aliases]
    fast = ["ai2:tulu3-405b", "hf_spaces:qwen-2-72b"]

    [providers.hf_spaces]
    base_url = "http://127.0.0.1:7860"
    api_key = "hf_..."

    [providers.local]                    # a configured provider of a known kind
    kind = "openai"
    base_url = "http://127.0.0.1:11434/v1"

A typo is reported, never silently ignored: an unknown provider or key in the config
file is a ``ConfigError``; an ``LLMRELAY_<NAME>_...`` variable naming no provider is a
warning naming the closest valid variable. The standard ``HTTP(S)_PROXY`` variables are
deliberately not read: a proxy is only used when set through llmrelay. Settings keep
only resolved values, never a copy of the environment; keys stay out of ``repr``.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from . import _keys, errors

__all__ = [
    "UNSET",
    "ProviderSettingsSpec",
    "Settings",
    "Timeouts",
    "default_config_path",
    "keys_path",
    "load_config",
]

log = logging.getLogger("llmrelay")


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
"""Marks an argument as not given (distinct from any value, including the default)."""

_TIMEOUT_DEFAULTS: dict[str, float | None] = {
    "connect": 10.0,
    "read": 120.0,
    "first_token": 120.0,
    "total": None,
}


class Timeouts:
    """Timeouts in seconds; a field not given falls back to env, config, then default.

    Args:
        connect: to establish a connection (default 10).
        read: the longest silence allowed between two chunks of a response: an idle
            timeout, so a long generation that keeps streaming is never cut (default 120).
        first_token: from the request to the first content of the answer (text,
            reasoning or an image), per candidate; heartbeats and queue messages do not
            count (default 120).
        total: an upper bound on a whole stream, or ``None`` for none (the default).

    Attributes:
        given: the names of the fields given explicitly.

    Raises:
        ValueError: a timeout that is not a positive number (``None`` only for
            ``first_token`` and ``total``: no bound).
    """

    __slots__ = ("connect", "first_token", "given", "read", "total")

    connect: float
    read: float
    first_token: float | None
    total: float | None
    given: frozenset[str]

    def __init__(
        self,
        connect: float | _Unset = UNSET,
        read: float | _Unset = UNSET,
        first_token: float | _Unset | None = UNSET,
        total: float | _Unset | None = UNSET,
    ) -> None:
        values = {"connect": connect, "read": read, "first_token": first_token, "total": total}
        given = []
        for name, value in values.items():
            if value is UNSET:
                value = _TIMEOUT_DEFAULTS[name]
            else:
                given.append(name)
            object.__setattr__(self, name, _check_timeout(name, value))
        object.__setattr__(self, "given", frozenset(given))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Timeouts is immutable")

    def __repr__(self) -> str:
        return (
            f"Timeouts(connect={self.connect!r}, read={self.read!r}, "
            f"first_token={self.first_token!r}, total={self.total!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Timeouts):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def _values(self) -> tuple[float | None, ...]:
        return (self.connect, self.read, self.first_token, self.total)


def _check_timeout(name: str, value: Any) -> Any:
    if value is None:
        if name in ("connect", "read"):
            raise ValueError(f"timeout {name} must be a positive number of seconds")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"timeout {name} must be a positive number of seconds; got {value!r}")
    if value == float("inf"):
        return None if name in ("first_token", "total") else 1e9
    return float(value)


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


def default_config_path() -> Path:
    """``<platformdirs user config dir>/llmrelay/config.toml``."""
    import platformdirs

    return Path(platformdirs.user_config_dir("llmrelay")) / "config.toml"


def keys_path(env: Mapping[str, str] | None = None) -> Path:
    """The keys file written by ``llmrelay keys set`` (see ``llmrelay._keys``).

    ``<LLMRELAY_HOME>/keys.json`` when ``env`` sets it, else the default location.
    """
    environ = os.environ if env is None else env
    if environ.get("LLMRELAY_HOME"):
        return Path(environ["LLMRELAY_HOME"]).expanduser() / "keys.json"
    return _keys.keys_path()


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
    explicit = path or os.environ.get("LLMRELAY_CONFIG")
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


_TOP_KEYS = frozenset(
    {
        "model",
        "proxy",
        "ca_bundle",
        "verify",
        "strict",
        "cooldown",
        "timeouts",
        "providers",
        "aliases",
        "log",
        "server",
        "transport",
    }
)
_GLOBAL_URL_VARS = frozenset({"LLMRELAY_DATABASE_URL", "LLMRELAY_REDIS_URL"})


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one client. Keys are kept out of ``repr``.

    Attributes:
        endpoints: provider -> endpoint name -> URL, overrides only.
        endpoint_sources: ``(provider, endpoint)`` -> where the override came from
            (``"argument"``, an environment variable name, ``"<config file> [providers.x]
            base_url"``), for error messages.
        key_sources: provider -> where its key came from (never the key itself).
        timeouts: connect, read, first-token and total timeouts.
        proxy: proxy URL or ``None``.
        verify: ``True``, ``False`` or a CA bundle path.
        model: default model reference or ``None``.
        strict: whether unsupported request parameters are errors.
        cooldown: seconds a candidate that failed retryably is tried last.
        transport: the HTTP transport, ``"httpx"``, ``"aiohttp"`` or ``"auto"``.
        aliases: user aliases from the config file: name -> model references.
        provider_tables: config tables of configured providers (``kind = ...``).
        config_path: the config file read, if any.
    """

    endpoints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    endpoint_sources: Mapping[tuple[str, str], str] = field(default_factory=dict)
    key_sources: Mapping[str, str] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    proxy: str | None = None
    verify: bool | str = True
    model: str | None = None
    strict: bool = False
    cooldown: float = 30.0
    transport: str = "httpx"
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    provider_tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    config_path: Path | None = None
    _keys: Mapping[str, str] = field(default_factory=dict, repr=False)

    @staticmethod
    def configured_providers(config: Mapping[str, Any], path: Path) -> dict[str, dict[str, Any]]:
        """The ``[providers.NAME]`` tables that define a provider (``kind = ...``).

        Raises:
            llmrelay.errors.ConfigError: ``[providers]`` or a table of the wrong type.
        """
        tables = config.get("providers", {})
        if not isinstance(tables, dict):
            raise errors.ConfigError(f"{path}: [providers] must be a table")
        out = {}
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise errors.ConfigError(f"{path}: [providers.{name}] must be a table")
            if "kind" in table:
                out[str(name)] = table
        return out

    @classmethod
    def load(
        cls,
        *,
        providers: Mapping[str, ProviderSettingsSpec],
        config: Mapping[str, Any] | None = None,
        config_path: Path | None = None,
        base_urls: Mapping[str, str] | None = None,
        endpoints: Mapping[str, Mapping[str, str]] | None = None,
        api_keys: Mapping[str, str] | None = None,
        proxy: str | None = None,
        timeouts: Timeouts | None = None,
        verify: bool | str | None = None,
        model: str | None = None,
        strict: bool | None = None,
        cooldown: float | None = None,
        transport: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Resolve settings from arguments, the environment and the config document.

        Args:
            providers: the registered providers (name -> what settings need of them).
            config: the parsed config file (see ``load_config``), or ``None``.
            config_path: where ``config`` came from (for messages).
            base_urls: provider name -> base URL.
            endpoints: provider name -> endpoint name -> URL.
            api_keys: provider name -> key.
            proxy: proxy URL.
            timeouts: ``Timeouts``; fields not given fall back to env/config/defaults.
            verify: ``True``/``False`` or a CA bundle path.
            model: default model reference.
            strict: unsupported parameters are errors.
            cooldown: seconds a failing candidate stays at the back of its chain.
            transport: ``"httpx"`` or ``"aiohttp"``; ``"auto"`` is a preference the
                environment and config file override (what ``llmrelay serve`` passes).
            env: the environment (default ``os.environ``); read here, never kept.

        Raises:
            llmrelay.errors.ConfigError: an invalid config document or value, naming the
                file and key (or the variable); an unknown provider in the config file.
        """
        environ = os.environ if env is None else env
        doc: Mapping[str, Any] = config or {}
        where = str(config_path) if config_path else "config file"
        unknown_top = sorted(set(doc) - _TOP_KEYS)
        if unknown_top:
            raise errors.ConfigError(
                f"{where}: unknown setting {unknown_top[0]!r}"
                + _did_you_mean(unknown_top[0], _TOP_KEYS)
                + f"; valid settings: {', '.join(sorted(_TOP_KEYS))}"
            )
        tables = doc.get("providers", {})
        if not isinstance(tables, dict):
            raise errors.ConfigError(f"{where}: [providers] must be a table")

        urls: dict[str, dict[str, str]] = {}
        sources: dict[tuple[str, str], str] = {}
        keys: dict[str, str] = {}
        key_sources: dict[str, str] = {}
        config_keys: dict[str, str] = {}

        def set_url(provider: str, endpoint: str, url: Any, source: str) -> None:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise errors.ConfigError(
                    f"{source}: {endpoint} must be an http:// or https:// URL; got {url!r:.100}"
                )
            urls.setdefault(provider, {})[endpoint] = url
            sources[(provider, endpoint)] = source

        # config file
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise errors.ConfigError(f"{where}: [providers.{name}] must be a table")
            spec = providers.get(name)
            if spec is None:
                raise errors.ConfigError(
                    f"{where}: [providers.{name}] names no provider"
                    + _did_you_mean(name, providers)
                    + f'; valid providers: {", ".join(providers)} (or add kind = "openai")'
                )
            allowed = {*spec.endpoints, "api_key", *spec.config_keys}
            for key, value in table.items():
                if key not in allowed:
                    raise errors.ConfigError(
                        f"{where}: [providers.{name}] unknown key {key!r}"
                        + _did_you_mean(key, allowed)
                        + f"; valid keys: {', '.join(sorted(allowed))}"
                    )
                if key in spec.endpoints:
                    set_url(name, key, value, f"{where} [providers.{name}] {key}")
                elif key == "api_key":
                    if not isinstance(value, str):
                        raise errors.ConfigError(
                            f"{where}: [providers.{name}] api_key must be a string"
                        )
                    config_keys[name] = value

        # environment
        known_vars: dict[str, tuple[str, str]] = {}
        for name, spec in providers.items():
            for endpoint in spec.endpoints:
                known_vars[f"LLMRELAY_{name.upper()}_{endpoint.upper()}"] = (name, endpoint)
        key_vars = {f"LLMRELAY_{name.upper()}_API_KEY": name for name in providers}
        for var, value in environ.items():
            if not var.startswith("LLMRELAY_") or not value:
                continue
            if var in known_vars:
                provider, endpoint = known_vars[var]
                set_url(provider, endpoint, value, var)
            elif (
                var.endswith(("_URL", "_API_KEY"))
                and var not in key_vars
                and var not in _GLOBAL_URL_VARS
            ):
                log.warning(
                    "%s names no provider setting and is ignored%s",
                    var,
                    _did_you_mean(var, [*known_vars, *key_vars]),
                )

        # arguments
        for name, url in (base_urls or {}).items():
            _check_provider_arg(name, providers, "base_urls")
            set_url(name, "base_url", url, "argument base_urls")
        for name, table in (endpoints or {}).items():
            spec = _check_provider_arg(name, providers, "endpoints")
            for endpoint, url in table.items():
                if endpoint not in spec.endpoints:
                    raise errors.ConfigError(
                        f"endpoints[{name!r}]: {name} has no endpoint {endpoint!r}; "
                        f"valid: {', '.join(spec.endpoints)}"
                    )
                set_url(name, endpoint, url, "argument endpoints")

        # keys: argument > LLMRELAY_<NAME>_API_KEY > vendor variable > config > keys file
        file_keys = _keys.load_keys(keys_path(environ))
        for name, spec in providers.items():
            candidates = [
                ((api_keys or {}).get(name), "argument api_keys"),
                (
                    environ.get(f"LLMRELAY_{name.upper()}_API_KEY"),
                    f"LLMRELAY_{name.upper()}_API_KEY",
                ),
                (environ.get(spec.env_var) if spec.env_var else None, spec.env_var or ""),
                (config_keys.get(name), f"{where} [providers.{name}] api_key"),
                (file_keys.get(name), f"keys file {keys_path(environ)}"),
            ]
            for value, source in candidates:
                if value:
                    keys[name] = value
                    key_sources[name] = source
                    break
        for name in api_keys or {}:
            _check_provider_arg(name, providers, "api_keys")

        return cls(
            endpoints=urls,
            endpoint_sources=sources,
            key_sources=key_sources,
            timeouts=_resolve_timeouts(timeouts, environ, doc.get("timeouts", {}), where),
            proxy=proxy or environ.get("LLMRELAY_PROXY") or _opt_str(doc, "proxy", where),
            verify=_resolve_verify(verify, environ, doc, where),
            model=model or environ.get("LLMRELAY_MODEL") or _opt_str(doc, "model", where),
            strict=_resolve_bool(strict, environ.get("LLMRELAY_STRICT"), doc, "strict", where),
            cooldown=_resolve_cooldown(cooldown, environ, doc, where),
            transport=_resolve_transport(transport, environ, doc, where),
            aliases=_resolve_aliases(doc.get("aliases", {}), where),
            provider_tables=cls.configured_providers(doc, config_path or Path("config")),
            config_path=config_path if config and config_path else None,
            _keys=keys,
        )

    def endpoints_for(self, provider: str) -> dict[str, str]:
        """The endpoint overrides of ``provider`` (empty: its defaults)."""
        return dict(self.endpoints.get(provider, {}))

    def base_url_for(self, provider: str) -> str | None:
        """The base URL override of ``provider``, or ``None`` for its default."""
        return self.endpoints.get(provider, {}).get("base_url")

    def api_key_for(self, provider: str) -> str | None:
        """The resolved key of ``provider``, or ``None``."""
        return self._keys.get(provider)

    def secrets(self) -> tuple[str, ...]:
        """Every resolved key (to redact them from error text)."""
        return tuple(self._keys.values())


def _did_you_mean(name: str, valid: Any) -> str:
    import difflib  # only to name a typo

    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_provider_arg(
    name: str, providers: Mapping[str, ProviderSettingsSpec], arg: str
) -> ProviderSettingsSpec:
    spec = providers.get(name)
    if spec is None:
        raise errors.ConfigError(
            f"{arg}: unknown provider {name!r}"
            + _did_you_mean(name, providers)
            + f"; valid providers: {', '.join(providers)}"
        )
    return spec


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise errors.ConfigError(f"{what} must be a number of seconds; got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise errors.ConfigError(f"{what} must be a number of seconds; got {value!r:.60}") from None


def _resolve_timeouts(
    given: Timeouts | None, env: Mapping[str, str], table: Any, where: str
) -> Timeouts:
    if not isinstance(table, dict):
        raise errors.ConfigError(f"{where}: [timeouts] must be a table")
    unknown = sorted(set(table) - set(_TIMEOUT_DEFAULTS))
    if unknown:
        raise errors.ConfigError(
            f"{where}: [timeouts] unknown key {unknown[0]!r}"
            + _did_you_mean(unknown[0], _TIMEOUT_DEFAULTS)
            + f"; valid keys: {', '.join(_TIMEOUT_DEFAULTS)}"
        )
    values: dict[str, Any] = {}
    for name in _TIMEOUT_DEFAULTS:
        var = f"LLMRELAY_{name.upper()}_TIMEOUT"
        if given is not None and name in given.given:
            values[name] = getattr(given, name)
        elif env.get(var):
            values[name] = _number(env[var], var)
        elif name in table:
            values[name] = _number(table[name], f"{where}: [timeouts] {name}")
    try:
        return Timeouts(**values)
    except ValueError as exc:
        raise errors.ConfigError(str(exc)) from None


def _resolve_verify(
    given: bool | str | None, env: Mapping[str, str], doc: Mapping[str, Any], where: str
) -> bool | str:
    if given is not None:
        return given
    for var in ("LLMRELAY_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        if env.get(var):
            return env[var]
    if "ca_bundle" in doc:
        value = doc["ca_bundle"]
        if not isinstance(value, str) or not value:
            raise errors.ConfigError(f"{where}: ca_bundle must be a file path")
        return value
    if "verify" in doc:
        if not isinstance(doc["verify"], bool):
            raise errors.ConfigError(f"{where}: verify must be true or false")
        return bool(doc["verify"])
    return True


def _resolve_bool(
    given: bool | None, env_value: str | None, doc: Mapping[str, Any], key: str, where: str
) -> bool:
    if given is not None:
        return given
    if env_value:
        return env_value.strip().lower() in ("1", "true", "yes", "on")
    if key in doc:
        if not isinstance(doc[key], bool):
            raise errors.ConfigError(f"{where}: {key} must be true or false")
        return bool(doc[key])
    return False


def _resolve_cooldown(
    given: float | None, env: Mapping[str, str], doc: Mapping[str, Any], where: str
) -> float:
    if given is not None:
        value = float(given)
    elif env.get("LLMRELAY_COOLDOWN"):
        value = _number(env["LLMRELAY_COOLDOWN"], "LLMRELAY_COOLDOWN")
    elif "cooldown" in doc:
        value = _number(doc["cooldown"], f"{where}: cooldown")
    else:
        return 30.0
    if value < 0:
        raise errors.ConfigError("cooldown must be zero or a positive number of seconds")
    return value


def _resolve_transport(
    given: str | None, env: Mapping[str, str], doc: Mapping[str, Any], where: str
) -> str:
    """The transport setting: argument, variable, config file, then ``"httpx"``.

    ``"auto"`` given as an argument is a preference, not a choice: the variable and the
    config file override it.
    """
    valid = ("httpx", "aiohttp", "auto")
    for value, source in (
        (given if given != "auto" else None, "argument transport"),
        (env.get("LLMRELAY_TRANSPORT"), "LLMRELAY_TRANSPORT"),
        (_opt_str(doc, "transport", where), f"{where}: transport"),
        (given, "argument transport"),
    ):
        if value:
            if value not in valid:
                raise errors.ConfigError(
                    f"{source}: unknown transport {value!r}; valid: {', '.join(valid)}"
                )
            return value
    return "httpx"


def _resolve_aliases(table: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, dict):
        raise errors.ConfigError(f"{where}: [aliases] must be a table")
    out: dict[str, tuple[str, ...]] = {}
    for name, value in table.items():
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


def _opt_str(doc: Mapping[str, Any], key: str, where: str) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise errors.ConfigError(f"{where}: {key} must be a string; got {value!r:.60}")
    return value
