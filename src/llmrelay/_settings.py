"""Settings and keys, resolved as: arguments > environment > config file > defaults.

Every setting is one row of ``SETTINGS`` (its argument, environment variables, config
key, type and default: ``llmrelay._setting_table``, the only reader of ``os.environ`` in
llmrelay); ``Settings.load`` resolves a client's rows, ``llmrelay.settings`` reads the
process-wide ones.

Environment (``NAME`` is a provider's registry name upper-cased, ``ENDPOINT`` one of its
endpoint names upper-cased, e.g. ``LLMRELAY_HUGGINGFACE_HUB_URL``):
    ``LLMRELAY_<NAME>_<ENDPOINT>``    an endpoint of a provider (``..._BASE_URL``)
    ``LLMRELAY_<NAME>_API_KEY``       key of a provider (beats the vendor variable)
    the provider's own key variable   e.g. ``HF_TOKEN``, ``REPLICATE_API_TOKEN``
    ``LLMRELAY_PROXY``                http://, https:// or socks5:// proxy URL
    ``LLMRELAY_CA_BUNDLE``            CA bundle (then ``SSL_CERT_FILE``, ``SSL_CERT_DIR``)
    ``LLMRELAY_CONNECT_TIMEOUT``, ``LLMRELAY_READ_TIMEOUT``,
    ``LLMRELAY_FIRST_TOKEN_TIMEOUT``, ``LLMRELAY_TOTAL_TIMEOUT``,
    ``LLMRELAY_SILENCE_TIMEOUT``, ``LLMRELAY_STALL_TIMEOUT``  seconds
    ``LLMRELAY_RETRIES``              same-candidate retries before failing over (2)
    ``LLMRELAY_<NAME>_RETRIES``       the same, for one provider
    ``LLMRELAY_RESCUE``               ``0``: no mid-stream rescue
    ``LLMRELAY_MODEL``                default model reference
    ``LLMRELAY_STRICT``               ``1``: unsupported parameters are errors
    ``LLMRELAY_COOLDOWN``             seconds a failing candidate waits at the back
    ``LLMRELAY_TOOL_EMULATION``       ``1``, or provider/alias names (``hf_spaces,fast``):
                                      tools and JSON answers emulated where not native
    ``LLMRELAY_TRANSPORT``            ``httpx`` (default), ``aiohttp`` or ``auto``
    ``LLMRELAY_CONFIG``               path of the config file
    ``LLMRELAY_HOME``                 directory of the keys file and the exchange log
    ``LLMRELAY_DATABASE_URL``         SQLAlchemy URL of the exchange log
    ``LLMRELAY_REDIS_URL``            Redis shared by several workers
    ``LLMRELAY_LOG``                  ``off`` (``0``, ``false``, ``no``): the CLI logs nothing
    ``LLMRELAY_SERVER_API_KEY``       the key clients of ``llmrelay serve`` must send
    ``LLMRELAY_ALLOW_IMAGE_FETCH``    ``true``: a provider may fetch an ``http(s)`` image URL
                                      its service cannot take (public addresses only)

Config file (TOML; default ``<user config dir>/llmrelay/config.toml``)::

    model = "hf_spaces:qwen-2-72b"
    proxy = "socks5://127.0.0.1:1080"
    ca_bundle = "/etc/ssl/corp.pem"      # or: verify = false
    strict = false
    cooldown = 15
    allow_image_fetch = false           # fetch image URLs a service cannot take itself
    retries = 2
    rescue = true
    transport = "aiohttp"                # httpx (default), aiohttp or auto
    tool_emulation = ["fast"]            # provider or alias names, or true for all

    [timeouts]
    connect = 10
    read = 120
    first_token = 120
    total = 600
    silence = 10
    stall = 30

    [aliases]
    fast = ["ai2:tulu3-405b", "hf_spaces:qwen-2-72b"]
    careful = {models = ["huggingface:Qwen/Qwen2.5-72B-Instruct", "ai2"], retries = 0}

    [providers.hf_spaces]
    base_url = "http://127.0.0.1:7860"
    api_key = "hf_..."
    tool_emulation = true                # tools and JSON answers emulated (llmrelay._emulation)
    retries = 1

    [providers.local]                    # a configured provider of a known kind
    kind = "openai"
    base_url = "http://127.0.0.1:11434/v1"

A typo is reported, never silently ignored: an unknown provider or key in the config
file is a ``ConfigError``; an ``LLMRELAY_<NAME>_...`` variable naming no provider is a
warning naming the closest valid variable. The standard ``HTTP(S)_PROXY`` variables are
deliberately not read: a proxy is only used when set through llmrelay. Settings keep
only resolved values, never a copy of the environment; keys stay out of ``repr``.
Where a value came from is described by the setting's name (``LLMRELAY_PROXY``,
``config file [providers.local] base_url``), never by a path of the file system.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from . import _keys, errors
from ._setting_table import (
    CLIENT_ROWS,
    KNOWN_VARIABLES,
    SETTINGS,
    TABLE_KEYS,
    TIMEOUT_DEFAULTS,
    TOP_KEYS,
    ProviderSettingsSpec,
    Setting,
    Sources,
    alias_retries,
    default_config_path,
    environ,
    keys_path,
    load_config,
    provider_settings,
)

__all__ = [
    "SETTINGS",
    "UNSET",
    "ProviderSettingsSpec",
    "Setting",
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


class Timeouts:
    """Timeouts in seconds; a field not given falls back to env, config, then default.

    Args:
        connect: to establish a connection (default 10).
        read: the longest silence allowed between two chunks of a response: an idle
            timeout, so a long generation that keeps streaming is never cut (default 120).
        first_token: from the request to the first content of the answer (text,
            reasoning or an image), per candidate, however much the service reports
            progress (queue positions); heartbeats do not count (default 120).
        total: an upper bound on a whole stream, or ``None`` for none (the default).
        silence: before the first content, the longest a candidate may stay silent --
            no progress report (a ``Queued`` event: a Space's queue estimation,
            Replicate's ``starting``, a declared keep-alive) since the request or the
            last report -- before the chain moves to the next candidate
            (``ProviderTimeout(kind="silence")``; never retried on the same candidate).
            Only when there *is* a next candidate: the last one waits up to
            ``first_token``. Response headers, an empty role chunk or an undeclared
            SSE comment are not progress (default 10; ``None``: off).
        stall: after the first content, the longest wait for the next content event
            (text, reasoning, an image) -- keep-alives, usage, state or a byte drip do
            not reset it; time the caller takes between reads does not count
            (``ProviderTimeout(kind="stall")``, then a rescue or ``StreamInterrupted``
            with the partial text; default 30; ``None``: off).

    Attributes:
        given: the names of the fields given explicitly.

    Raises:
        ValueError: a timeout that is not a positive number (``None`` only for
            ``first_token`` and ``total``: no bound).
    """

    __slots__ = ("connect", "first_token", "given", "read", "silence", "stall", "total")

    connect: float
    read: float
    first_token: float | None
    total: float | None
    silence: float | None
    stall: float | None
    given: frozenset[str]

    def __init__(
        self,
        connect: float | _Unset = UNSET,
        read: float | _Unset = UNSET,
        first_token: float | _Unset | None = UNSET,
        total: float | _Unset | None = UNSET,
        silence: float | _Unset | None = UNSET,
        stall: float | _Unset | None = UNSET,
    ) -> None:
        values = {
            "connect": connect,
            "read": read,
            "first_token": first_token,
            "total": total,
            "silence": silence,
            "stall": stall,
        }
        given = []
        for name, value in values.items():
            if value is UNSET:
                value = TIMEOUT_DEFAULTS[name]
            else:
                given.append(name)
            object.__setattr__(self, name, _check_timeout(name, value))
        object.__setattr__(self, "given", frozenset(given))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Timeouts is immutable")

    def __repr__(self) -> str:
        return (
            f"Timeouts(connect={self.connect!r}, read={self.read!r}, "
            f"first_token={self.first_token!r}, total={self.total!r}, "
            f"silence={self.silence!r}, stall={self.stall!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Timeouts):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def _values(self) -> tuple[float | None, ...]:
        return (self.connect, self.read, self.first_token, self.total, self.silence, self.stall)


def _check_timeout(name: str, value: Any) -> Any:
    if value is None:
        if name in ("connect", "read"):
            raise ValueError(f"timeout {name} must be a positive number of seconds")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"timeout {name} must be a positive number of seconds; got {value!r}")
    if value == float("inf"):
        return None if name not in ("connect", "read") else 1e9
    return float(value)


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one client. Keys are kept out of ``repr``.

    Attributes:
        endpoints: provider -> endpoint name -> URL, overrides only.
        endpoint_sources: ``(provider, endpoint)`` -> where the override came from
            (``"argument base_urls"``, an environment variable name, ``"config file
            [providers.x] base_url"``), for error messages: no file system path.
        key_sources: provider -> where its key came from (never the key itself).
        sources: setting name (``"proxy"``, ``"model"``, ``"timeouts.read"``) -> where
            its value came from, for the settings not left at their default.
        timeouts: connect, read, first-token and total timeouts.
        proxy: proxy URL or ``None``.
        verify: ``True``, ``False`` or a CA bundle path.
        model: default model reference or ``None``.
        strict: whether unsupported request parameters are errors.
        cooldown: seconds a candidate that failed retryably is tried last.
        allow_image_fetch: whether a provider may fetch an ``http(s)`` image URL its
            service cannot take (under ``ImageFetchPolicy``; never by default).
        cooldown: the longest a candidate that failed retryably stays at the back of its
            chain between probes (``llmrelay._router``).
        retries: same-candidate retries of a transient failure before failing over.
        provider_retries: provider -> its own ``retries`` (``[providers.NAME] retries``).
        alias_retries: alias -> its own ``retries`` (``[aliases] NAME = {models, retries}``).
        rescue: whether a stream broken after its first content is rescued
            (``llmrelay._rescue``).
        transport: the HTTP transport, ``"httpx"``, ``"aiohttp"`` or ``"auto"``.
        aliases: user aliases from the config file: name -> model references.
        tool_emulation: the providers and aliases whose requests with tools or a JSON
            response format are emulated where not native (``"*"``: all), from
            ``tool_emulation`` and ``[providers.<name>] tool_emulation = true``.
        config_path: the config file read, if any.
    """

    endpoints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    endpoint_sources: Mapping[tuple[str, str], str] = field(default_factory=dict)
    key_sources: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    proxy: str | None = None
    verify: bool | str = True
    model: str | None = None
    strict: bool = False
    cooldown: float = 15.0
    allow_image_fetch: bool = False
    retries: int = 2
    provider_retries: Mapping[str, int] = field(default_factory=dict)
    alias_retries: Mapping[str, int] = field(default_factory=dict)
    rescue: bool = True
    transport: str = "httpx"
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tool_emulation: frozenset[str] = frozenset()
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
        allow_image_fetch: bool | None = None,
        retries: int | None = None,
        rescue: bool | None = None,
        transport: str | None = None,
        env: Mapping[str, str] | None = None,
        plugins: Callable[[], Mapping[str, ProviderSettingsSpec]] | None = None,
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
            allow_image_fetch: a provider may fetch image URLs its service cannot take.
            retries: same-candidate retries before failing over.
            rescue: rescue streams broken after their first content.
            transport: ``"httpx"`` or ``"aiohttp"``; ``"auto"`` is a preference the
                environment and config file override (what ``llmrelay serve`` passes).
            env: the environment (default ``os.environ``); read here, never kept.
            plugins: called once, before anything is checked, when a config table, an
                argument or an ``LLMRELAY_<NAME>_...`` variable names a provider not in
                ``providers``: the providers it returns are added (the client's registry
                reads its plugins, ``llmrelay._registry``). Not called otherwise.

        Raises:
            llmrelay.errors.ConfigError: an invalid config document or value, naming the
                file and key (or the variable); an unknown provider in the config file.
        """
        env = environ() if env is None else env
        doc: Mapping[str, Any] = config or {}
        where = str(config_path) if config_path else "config file"
        if plugins is not None and _names_unknown(
            providers, doc, (base_urls, endpoints, api_keys), env
        ):
            providers = {**providers, **plugins()}
        _check_document(doc, providers, where)
        given = {"model": model, "proxy": proxy, "verify": verify, "strict": strict}
        # "auto" as an argument is a preference: the variable and config file override it
        preferred = None if transport == "auto" else transport
        arguments = _arguments(
            {
                **given,
                "cooldown": cooldown,
                "allow_image_fetch": allow_image_fetch,
                "retries": retries,
                "rescue": rescue,
                "transport": preferred,
            },
            timeouts,
        )
        arguments.update(_provider_arguments(providers, base_urls, endpoints, api_keys))
        sources = Sources(arguments, env, doc, where)
        _warn_unknown_variables(env, providers)
        values, origins = _resolve_rows(sources, CLIENT_ROWS)
        urls, keys, endpoint_sources, key_sources, provider_retries = _resolve_providers(
            sources, providers
        )
        return cls(
            endpoints=urls,
            endpoint_sources=endpoint_sources,
            key_sources=key_sources,
            sources=origins,
            timeouts=_timeouts(values),
            proxy=values["proxy"],
            verify=_verify(values, origins),
            model=values["model"],
            strict=values["strict"],
            cooldown=values["cooldown"],
            allow_image_fetch=values["allow_image_fetch"],
            retries=values["retries"],
            provider_retries=provider_retries,
            alias_retries=alias_retries(doc, where),
            rescue=values["rescue"],
            transport=_transport(values, origins, transport),
            aliases=values["aliases"],
            tool_emulation=values["tool_emulation"] | _emulated_providers(doc, where),
            config_path=config_path if config and config_path else None,
            _keys=keys,
        )

    def emulates(self, provider: str, ref: str | None) -> bool:
        """Whether tools and JSON answers are emulated for ``provider`` asked as ``ref``.

        ``ref`` is the model reference asked for (an alias name counts).
        """
        names = self.tool_emulation
        return "*" in names or provider in names or (ref is not None and ref in names)

    def with_providers(
        self, providers: Mapping[str, ProviderSettingsSpec], env: Mapping[str, str] | None = None
    ) -> Settings:
        """These settings plus the endpoints and keys of providers registered later.

        For plugins read after the settings were loaded (``llmrelay._registry``): their
        rows are resolved from the environment (``LLMRELAY_<NAME>_API_KEY``, the vendor
        key variable) and the keys file. An argument, a config table or an
        ``LLMRELAY_<NAME>_...`` variable naming one of them had them read at ``load``.

        Raises:
            llmrelay.errors.ConfigError: an invalid value, naming its variable.
        """
        sources = Sources({}, environ() if env is None else env, {}, "config file")
        urls, keys, endpoint_sources, key_sources, retries = _resolve_providers(sources, providers)
        return replace(
            self,
            provider_retries={**self.provider_retries, **retries},
            endpoints={**self.endpoints, **urls},
            endpoint_sources={**self.endpoint_sources, **endpoint_sources},
            key_sources={**self.key_sources, **key_sources},
            _keys={**self._keys, **keys},
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

    def retries_for(self, provider: str, alias: str | None = None) -> int:
        """Same-candidate retries of ``provider`` when reached through ``alias``.

        The provider's own setting wins, then the alias's, then the client's ``retries``.
        """
        if provider in self.provider_retries:
            return self.provider_retries[provider]
        if alias is not None and alias in self.alias_retries:
            return self.alias_retries[alias]
        return self.retries


def _did_you_mean(name: str, valid: Any) -> str:
    import difflib  # only to name a typo

    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _unknown(where: str, what: str, name: str, valid: Any) -> errors.ConfigError:
    return errors.ConfigError(
        f"{where}: {what} {name!r}"
        + _did_you_mean(name, valid)
        + f"; valid {what.rpartition(' ')[2]}s: {', '.join(sorted(valid))}"
    )


def _transport(values: Mapping[str, Any], origins: Mapping[str, str], given: str | None) -> str:
    """The transport setting; ``"auto"`` when only an argument preferred it.

    Its value is checked when the client is built (``llmrelay._transport``).
    """
    if "transport" not in origins and given == "auto":
        return "auto"
    return str(values["transport"])


def _arguments(given: Mapping[str, Any], timeouts: Timeouts | None) -> dict[str, tuple[Any, str]]:
    """The scalar arguments given (not ``None``, not empty) as row name -> ``(value, argument)``."""
    out = {name: (value, name) for name, value in given.items() if value not in (None, "")}
    for name in timeouts.given if timeouts is not None else ():
        out[f"timeouts.{name}"] = (getattr(timeouts, name), "timeouts")
    return out


def _check_document(
    doc: Mapping[str, Any], providers: Mapping[str, ProviderSettingsSpec], where: str
) -> None:
    """Every key of the config document is a known setting (else a ``ConfigError``)."""
    for key in doc:
        if key not in TOP_KEYS:
            raise _unknown(where, "unknown setting", key, TOP_KEYS)
    for top, allowed in TABLE_KEYS.items():
        _check_table(doc.get(top, {}), f"[{top}]", allowed, where)
    tables = doc.get("providers", {})
    if not isinstance(tables, dict):
        raise errors.ConfigError(f"{where}: [providers] must be a table")
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
        known = {*spec.endpoints, "api_key", "tool_emulation", "retries", *spec.config_keys}
        _check_table(table, f"[providers.{name}]", known, where)


def _check_table(table: Any, name: str, allowed: Collection[str], where: str) -> None:
    if not isinstance(table, dict):
        raise errors.ConfigError(f"{where}: {name} must be a table")
    for key in table:
        if key not in allowed:
            raise _unknown(where, f"{name} unknown key", key, allowed)


def _provider_arguments(
    providers: Mapping[str, ProviderSettingsSpec],
    base_urls: Mapping[str, str] | None,
    endpoints: Mapping[str, Mapping[str, str]] | None,
    api_keys: Mapping[str, str] | None,
) -> dict[str, tuple[Any, str]]:
    """The per-provider arguments as row name -> ``(value, argument)``, checked."""
    out: dict[str, tuple[Any, str]] = {}
    for name, url in (base_urls or {}).items():
        _check_provider_arg(name, providers, "base_urls")
        out[f"providers.{name}.base_url"] = (
            _argument_url(url, "base_urls", "base_url"),
            "base_urls",
        )
    for name, table in (endpoints or {}).items():
        spec = _check_provider_arg(name, providers, "endpoints")
        for endpoint, url in table.items():
            if endpoint not in spec.endpoints:
                raise errors.ConfigError(
                    f"endpoints[{name!r}]: {name} has no endpoint {endpoint!r}; "
                    f"valid: {', '.join(spec.endpoints)}"
                )
            out[f"providers.{name}.{endpoint}"] = (
                _argument_url(url, "endpoints", endpoint),
                "endpoints",
            )
    for name, key in (api_keys or {}).items():
        _check_provider_arg(name, providers, "api_keys")
        if key:
            out[f"providers.{name}.api_key"] = (key, "api_keys")
    return out


def _argument_url(url: Any, argument: str, endpoint: str) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise errors.ConfigError(
            f"argument {argument}: {endpoint} must be an http:// or https:// URL; got {url!r:.100}"
        )
    return url


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


_PROVIDER_ENDS = ("_URL", "_API_KEY")


def _names_unknown(
    providers: Mapping[str, ProviderSettingsSpec],
    doc: Mapping[str, Any],
    arguments: Sequence[Mapping[str, Any] | None],
    env: Mapping[str, str],
) -> bool:
    """Whether a config table, an argument or a variable names a provider not known."""
    tables = doc.get("providers", {})
    if isinstance(tables, dict) and any(name not in providers for name in tables):
        return True
    if any(name not in providers for given in arguments for name in given or ()):
        return True
    return bool(_unknown_variables(env, providers)[0])


def _unknown_variables(
    environ: Mapping[str, str], providers: Mapping[str, ProviderSettingsSpec]
) -> tuple[list[str], list[str]]:
    """``(set LLMRELAY_..._URL / _API_KEY variables no row reads, the ones rows read)``."""
    named = [v for v, value in environ.items() if value and _names_a_provider_setting(v)]
    if not named:  # the usual case: no row is built
        return [], []
    known = [v for name, spec in providers.items() for v in _variables(name, spec)]
    return [v for v in named if v not in known], known


def _warn_unknown_variables(
    environ: Mapping[str, str], providers: Mapping[str, ProviderSettingsSpec]
) -> None:
    """Warn about an ``LLMRELAY_..._URL`` / ``_API_KEY`` variable that no row reads."""
    unknown, known = _unknown_variables(environ, providers)
    for variable in unknown:
        log.warning(
            "%s names no provider setting and is ignored%s",
            variable,
            _did_you_mean(variable, known),
        )


def _variables(name: str, spec: ProviderSettingsSpec) -> list[str]:
    rows = provider_settings(name, spec)
    return [v for row in rows for v in row.variables if v.startswith("LLMRELAY_")]


def _names_a_provider_setting(variable: str) -> bool:
    """``LLMRELAY_..._URL`` or ``..._API_KEY``, and not a setting of the table."""
    return (
        variable.startswith("LLMRELAY_")
        and variable.endswith(_PROVIDER_ENDS)
        and variable not in KNOWN_VARIABLES
    )


def _resolve_rows(
    sources: Sources, rows: Sequence[Setting]
) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for row in rows:
        values[row.name], origin = sources.resolve(row)
        if origin is not None:
            origins[row.name] = origin
    return values, origins


def _resolve_providers(
    sources: Sources, providers: Mapping[str, ProviderSettingsSpec]
) -> tuple[
    dict[str, dict[str, str]],
    dict[str, str],
    dict[tuple[str, str], str],
    dict[str, str],
    dict[str, int],
]:
    """Endpoints, keys, retries: ``(urls, keys, endpoint sources, key sources, retries)``.

    A key nothing else sets comes from the keys file (``llmrelay keys set``).
    """
    urls: dict[str, dict[str, str]] = {}
    keys: dict[str, str] = {}
    endpoint_sources: dict[tuple[str, str], str] = {}
    key_sources: dict[str, str] = {}
    retries: dict[str, int] = {}
    file_keys: dict[str, str] | None = None
    for name, spec in providers.items():
        for row in provider_settings(name, spec):
            value, origin = sources.resolve(row)
            setting = row.key[-1]
            if origin is None:
                continue
            if setting == "api_key":
                keys[name], key_sources[name] = value, origin
            elif setting == "retries":
                retries[name] = value
            else:
                urls.setdefault(name, {})[setting] = value
                endpoint_sources[(name, setting)] = origin
        if name not in keys:
            if file_keys is None:
                file_keys = _keys.load_keys(keys_path(sources.env))
            if file_keys.get(name):
                keys[name] = file_keys[name]
                key_sources[name] = f"keys file {keys_path(sources.env)}"
    return urls, keys, endpoint_sources, key_sources, retries


def _emulated_providers(doc: Mapping[str, Any], where: str) -> frozenset[str]:
    """The providers whose config table says ``tool_emulation = true``."""
    names = []
    for name, table in doc.get("providers", {}).items():
        value = table.get("tool_emulation", False)
        if not isinstance(value, bool):
            raise errors.ConfigError(
                f"{where}: [providers.{name}] tool_emulation must be true or false"
            )
        if value:
            names.append(str(name))
    return frozenset(names)


def _timeouts(values: Mapping[str, Any]) -> Timeouts:
    given = {name: values[f"timeouts.{name}"] for name in TIMEOUT_DEFAULTS}
    try:
        return Timeouts(**given)
    except ValueError as exc:
        raise errors.ConfigError(str(exc)) from None


def _verify(values: Mapping[str, Any], origins: Mapping[str, str]) -> bool | str:
    """An explicit ``verify`` argument, else a CA bundle, else the ``verify`` setting."""
    if origins.get("verify") == "argument verify":
        value: bool | str = values["verify"]
        return value
    return values["ca_bundle"] or bool(values["verify"])
