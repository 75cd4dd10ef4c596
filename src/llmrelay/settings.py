"""The table of llmrelay's settings, and the process-wide ones read from the environment.

``SETTINGS`` lists every setting as a ``Setting`` row: its name, the argument that sets
it, its environment variables (the first one set wins), its config-file key, its type
and its default (a provider's endpoints and key are rows too: ``provider_settings``).
A client resolves its rows as arguments > environment > config file > defaults
(``llmrelay.AsyncClient``); the process-wide rows are read from the environment with
``read`` or a typed helper:

* ``home()``: ``LLMRELAY_HOME``, the directory of the keys file and the exchange log;
* ``database_url()``: ``LLMRELAY_DATABASE_URL``, the exchange log's database;
* ``redis_url()``: ``LLMRELAY_REDIS_URL``, the Redis several workers share;
* ``log_enabled()``: ``LLMRELAY_LOG`` (``off``, ``0``, ``false``, ``no``: no CLI log);
* ``server_api_key()``: ``LLMRELAY_SERVER_API_KEY``, the key ``llmrelay serve`` requires;
* ``dumb_terminal()``: ``TERM`` is ``dumb`` or ``unknown`` (the CLI's status line).

Each helper takes an optional ``env`` mapping (default: the process environment).
"""

from ._setting_table import (
    SETTINGS,
    ProviderSettingsSpec,
    Setting,
    database_url,
    dumb_terminal,
    home,
    log_enabled,
    provider_settings,
    read,
    redis_url,
    server_api_key,
)

__all__ = [
    "SETTINGS",
    "ProviderSettingsSpec",
    "Setting",
    "database_url",
    "dumb_terminal",
    "home",
    "log_enabled",
    "provider_settings",
    "read",
    "redis_url",
    "server_api_key",
]
