"""``llmrelay serve``: the OpenAI-compatible server (needs ``pip install 'llmrelay[server]'``)."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

import click

import llmrelay

from ._common import fail

_KEY_ENV = "LLMRELAY_SERVER_API_KEY"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _read_key(api_key: str | None, api_key_file: Path | None) -> str | None:
    if api_key:
        return api_key
    if api_key_file is not None:
        try:
            key = api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read it: {exc.strerror}", param_hint="--api-key-file"
            ) from None
        if not key:
            raise click.BadParameter("the file is empty", param_hint="--api-key-file")
        return key
    from llmrelay.settings import server_api_key

    return server_api_key()


def _check_proxies(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_network(value)
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is not an IP address or network (e.g. 10.0.0.0/8)"
            ) from None
    return values


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key", help=f"Key clients must send as a bearer token (or {_KEY_ENV}).")
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the server key from this file (keeps it off the command line).",
)
@click.option("--no-auth", is_flag=True, help="Allow serving beyond loopback without a key.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--cors-origin", "cors_origins", multiple=True, help="Allow this CORS origin.")
@click.option(
    "--max-body-bytes", default=2 * 1024 * 1024, show_default=True, type=click.IntRange(1024)
)
@click.option("--max-messages", default=256, show_default=True, type=click.IntRange(1))
@click.option(
    "--rate-limit",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Chat requests allowed per caller and --rate-window (0: no limit); shared by "
    "every worker when LLMRELAY_REDIS_URL is set.",
)
@click.option(
    "--rate-window",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.001),
    help="Seconds of the rate limit's window.",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    callback=_check_proxies,
    help="Take the client address (rate limit, access log) from X-Forwarded-For when the "
    "connection comes from this address or network (repeatable; default: never).",
)
@click.option(
    "--head-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds for a request's head to arrive (then the connection is closed).",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds for a request's body to arrive after its head (then 408).",
)
@click.option(
    "--keep-alive-timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds an idle connection is kept between requests.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    help="Open connections per worker; more are refused with 503 "
    "[default: half the open-file limit less 64].",
)
@click.option(
    "--log-max-pending",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    help="Exchange-log rows waiting in memory per worker before more go to the spill file "
    "(with LLMRELAY_DATABASE_URL).",
)
@click.option("--log-prompts", is_flag=True, help="Also log request messages (off by default).")
@click.option(
    "--allow-image-fetch",
    is_flag=True,
    help="Let a provider fetch an http(s) image URL its service cannot take itself (public "
    "addresses only, size cap, timeout); otherwise such a URL is refused and never fetched.",
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("-m", "--model", help="Default model when a request names none.")
@click.option(
    "--transport",
    type=click.Choice(["auto", "httpx", "aiohttp"]),
    help="HTTP transport to the providers [default: auto: aiohttp when installed and no "
    "socks proxy is set, unless LLMRELAY_TRANSPORT or the config file's transport say "
    "otherwise].",
)
def serve(
    host: str,
    port: int,
    api_key: str | None,
    api_key_file: Path | None,
    no_auth: bool,
    workers: int,
    cors_origins: tuple[str, ...],
    max_body_bytes: int,
    max_messages: int,
    rate_limit: int,
    rate_window: float,
    trusted_proxies: tuple[str, ...],
    head_timeout: float,
    body_timeout: float,
    keep_alive_timeout: float,
    max_connections: int | None,
    log_max_pending: int,
    log_prompts: bool,
    allow_image_fetch: bool,
    config_path: str | None,
    model: str | None,
    transport: str | None,
) -> None:
    """Serve the OpenAI-compatible API and the web chat page at http://HOST:PORT/.

    Binding beyond loopback needs a key (--api-key, --api-key-file or
    LLMRELAY_SERVER_API_KEY), or --no-auth to serve without one on purpose.
    """
    key = _read_key(api_key, api_key_file)
    if key is None and not no_auth and not _is_loopback(host):
        raise click.UsageError(
            f"binding to {host} without a server key: give --api-key, --api-key-file or "
            f"{_KEY_ENV}, or --no-auth to serve without one"
        )
    try:
        import uvicorn

        from llmrelay.server import (
            ServerConfig,
            SocketLimits,
            check_shared_config,
            configure_access_log,
            create_app,
            redact_root_handlers,
            uvicorn_options,
            worker_settings_file,
        )
    except ImportError as exc:
        fail(
            f"llmrelay serve needs the server extra ({exc.name} is missing): "
            "pip install 'llmrelay[server]'",
            code=2,
        )
    client_kwargs: dict[str, Any] = {}
    if config_path:
        client_kwargs["config_path"] = config_path
    if model:
        client_kwargs["model"] = model
    if allow_image_fetch:
        client_kwargs["allow_image_fetch"] = True
    client_kwargs["transport"] = transport or "auto"
    config = ServerConfig(
        api_key=key,
        cors_origins=cors_origins,
        max_body_bytes=max_body_bytes,
        max_messages=max_messages,
        rate_limit=rate_limit,
        rate_window=rate_window,
        body_timeout=body_timeout,
        log_max_pending=log_max_pending,
        log_prompts=log_prompts,
        client_kwargs=client_kwargs,
        freeze_heap=True,
    )
    try:
        check_shared_config()  # LLMRELAY_REDIS_URL / LLMRELAY_DATABASE_URL, before binding
    except llmrelay.LLMRelayError as exc:
        fail(str(exc), code=2)
    configure_access_log()
    redact_root_handlers()
    where = f"[{host}]" if ":" in host else host
    click.echo(
        f"llmrelay: serving on http://{where}:{port}/ "
        f"({'server key required' if key else 'no server key'}, {workers} worker(s))",
        err=True,
    )
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "server_header": False,
        # uvloop when installed; httptools when installed, else h11 (bounded: _sockets)
        "loop": "auto",
    }
    limits = SocketLimits(head_timeout=head_timeout, keep_alive=keep_alive_timeout)
    if max_connections is not None:
        limits = dataclasses.replace(limits, max_connections=max_connections)
    common.update(uvicorn_options(limits, trusted_proxies))
    if workers == 1:
        uvicorn.run(create_app(config=config), **common)
    else:
        # each worker process reads the config from a private file (not the environment)
        with worker_settings_file(config) as factory:
            uvicorn.run(factory, factory=True, workers=workers, **common)
