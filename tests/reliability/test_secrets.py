"""Keys never leak: through every surface, in every failure, to any other host.

Each provider's fake runs behind the fault proxy with a known, unmistakable key. A run
(success, HTTP errors, a cut stream, and an upstream that *echoes the request headers*
in its error body) goes through the async library (errors, ``repr``s, tracebacks, every
log record at DEBUG) and the CLI with ``-vv`` (stdout, stderr and every file it wrote,
the SQLite exchange log included); all of it is searched for the key. Two clients with
different keys used concurrently never send each other's key; a key is only sent to the
provider's host (and to Replicate's declared stream host), never after a redirect.
"""

from __future__ import annotations

import functools
import re
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from llmrelay import (
    AllProvidersFailed,
    AsyncClient,
    LLMRelayError,
    ProviderError,
    StreamInterrupted,
    Timeouts,
    errors,
)
from llmrelay._redact import Secrets
from llmrelay.cli import cli
from tests.fakes._server import serve
from tests.fakes.faults import FaultProxy, fault_proxy
from tests.reliability.test_fault_matrix import PROVIDERS, cli_env

SECRET = "sk-live-4be1c0ffee7d9a2b8c3e"
OTHER_SECRET = "sk-live-9f8e7d6c5b4a39281706"
TIMEOUTS = Timeouts(connect=3, read=3, first_token=6, total=12)
SCENARIOS = ("ok", "http_401", "http_500", "cut_mid", "echo_401", "echo_500")
# providers that send stream requests to a host they were told about (Replicate's
# urls.stream): the fake names it "localhost" when the API was reached as 127.0.0.1
STREAM_HOSTS = {"replicate": "localhost"}


class Rig:
    def __init__(self, name: str, fake: Any, proxy: FaultProxy) -> None:
        self.name, self.fake, self.proxy = name, fake, proxy

    def kwargs(self, key: str = SECRET, url: str | None = None) -> dict[str, Any]:
        kwargs = self.fake.prepare_client_kwargs(url or self.proxy.url)
        kwargs["api_keys"] = {name: key for name in kwargs.get("api_keys", {})}
        return kwargs

    def script(self, scenario: str) -> None:
        self.fake.ok()
        self.proxy.reset()
        self.proxy.secret = SECRET
        if scenario.startswith("http_"):
            self.fake.http_error(int(scenario.removeprefix("http_")))
        elif scenario.startswith("echo_"):
            self.proxy.reset("echo")
            self.proxy.echo_status = int(scenario.removeprefix("echo_"))
        elif scenario == "cut_mid":
            self.proxy.reset("cut_mid")
            self.proxy.marker = re.findall(r"[A-Za-z]{3,}", self.fake.expected_text)[0].encode()


KEYED_TESTS = frozenset(
    {
        "test_library_never_shows_the_key",
        "test_cli_never_shows_the_key",
        "test_the_key_goes_only_to_the_providers_hosts",
        "test_two_clients_with_different_keys_never_cross",
        "test_server_never_shows_the_key",
        "test_server_takes_no_upstream_url_proxy_or_key_from_a_request",
    }
)
"""Tests about a key the provider sends: not collected for providers that send none."""


@functools.cache
def sends_a_key(provider: str) -> bool:
    """Whether ``provider``'s client configuration carries an API key at all."""
    return bool(PROVIDERS[provider]().prepare_client_kwargs("http://x").get("api_keys"))


def deselect(item: pytest.Item) -> bool:
    """Whether ``item`` does not apply (``tests/reliability/conftest.py`` deselects it):
    key tests for a provider that sends no key, the in-band echo where no frame is known."""
    params = getattr(item, "callspec", None)
    if params is None or "rig" not in params.params:
        return False
    provider = params.params["rig"]
    if item.originalname in KEYED_TESTS:
        return not sends_a_key(provider)
    if item.originalname == "test_an_in_band_error_echoing_the_key_is_redacted":
        return provider not in INBAND_ECHO
    return False


@pytest.fixture(scope="module", params=sorted(PROVIDERS))
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    fake = PROVIDERS[request.param]()
    with serve(fake.app) as url, fault_proxy(url) as proxy:
        yield Rig(request.param, fake, proxy)


def dump(exc: BaseException) -> str:
    """Everything an error can show: str, repr, traceback (with causes), body, attempts."""
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), str(getattr(seen, "body", ""))]
        if isinstance(seen, AllProvidersFailed):
            parts += [repr(a) for a in seen.attempts] + [str(a.to_dict()) for a in seen.attempts]
        if isinstance(seen, StreamInterrupted):
            parts.append(dump(seen.cause))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


async def run_library(rig: Rig) -> tuple[str, BaseException | None]:
    produced: list[str] = []
    error: BaseException | None = None
    # no same-candidate retry: a fault applied once must reach the caller as an error
    async with AsyncClient(**rig.kwargs(), timeouts=TIMEOUTS, retries=0) as client:
        produced += [repr(client), repr(client.providers()), repr(client.aliases())]
        stream = client.stream("Say something", model=rig.name)
        try:
            completion = await stream.collect()
            produced.append(repr(completion))
        except LLMRelayError as exc:
            error = exc
            produced.append(dump(exc))
        produced.append(repr(stream))
        produced += [repr(a) for a in stream.attempts]
    return "\n".join(produced), error


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_library_never_shows_the_key(
    rig: Rig, scenario: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig.script(scenario)
    caplog.set_level("DEBUG")
    produced, error = anyio.run(run_library, rig)
    assert (error is None) == (scenario == "ok"), (scenario, error)
    if scenario.startswith("echo_"):
        assert rig.proxy.faulted == 1, "no request carried the key: nothing was echoed"
        assert isinstance(error, ProviderError)
        if scenario == "echo_401":
            # a rejected key is an AuthenticationError wherever it happens (hf_spaces
            # used to fall back from a 401 /config and report the join's 404)
            assert error.status_code == 401, repr(error)
        if error.status_code == int(scenario[-3:]):  # the echo itself (not a later step)
            assert "[REDACTED]" in f"{error} {error.body}"
    assert SECRET not in produced
    assert SECRET not in caplog.text
    # the key did reach the provider (otherwise this test proves nothing)
    assert any(SECRET in str(r.headers) for r in rig.proxy.requests)


@pytest.mark.parametrize("scenario", ["ok", "http_401", "echo_401", "cut_mid"])
def test_cli_never_shows_the_key(rig: Rig, scenario: str, tmp_path: Path) -> None:
    rig.script(scenario)
    env = cli_env(rig.kwargs(), tmp_path, TIMEOUTS)
    result = CliRunner().invoke(cli, ["chat", "-vv", "-m", rig.name, "Say something"], env=env)
    assert result.exit_code == (0 if scenario == "ok" else 1), result.stderr
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in written), written  # the exchange log exists
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path
    assert any(SECRET in str(r.headers) for r in rig.proxy.requests)


def test_the_key_goes_only_to_the_providers_hosts(rig: Rig) -> None:
    rig.script("ok")
    anyio.run(run_library, rig)
    port = rig.proxy.port
    allowed = {f"127.0.0.1:{port}"}
    if rig.name in STREAM_HOSTS:
        allowed.add(f"{STREAM_HOSTS[rig.name]}:{port}")
    keyed_hosts = {r.headers.get("host") for r in rig.proxy.requests if SECRET in str(r.headers)}
    assert keyed_hosts
    assert keyed_hosts <= allowed


def test_a_redirect_never_carries_the_key_to_another_host(rig: Rig) -> None:
    rig.script("ok")
    rig.proxy.reset("redirect")
    _, error = anyio.run(run_library, rig)
    assert isinstance(error, ProviderError)
    assert rig.proxy.faulted >= 1
    assert all(SECRET not in str(r.headers) for r in rig.proxy.other.requests)


def test_two_clients_with_different_keys_never_cross(rig: Rig) -> None:
    rig.fake.ok()
    upstream = rig.proxy.upstream
    with fault_proxy(upstream) as proxy_a, fault_proxy(upstream) as proxy_b:

        async def main() -> None:
            async with (
                AsyncClient(**rig.kwargs(SECRET, proxy_a.url), timeouts=TIMEOUTS) as a,
                AsyncClient(**rig.kwargs(OTHER_SECRET, proxy_b.url), timeouts=TIMEOUTS) as b,
                anyio.create_task_group() as group,
            ):
                for _ in range(4):
                    for client in (a, b):
                        group.start_soon(collect, client)

        async def collect(client: AsyncClient) -> None:
            completion = await client.stream("Say something", model=rig.name).collect()
            assert completion.text

        anyio.run(main)
    keyed_a = [r for r in proxy_a.requests if SECRET in str(r.headers)]
    keyed_b = [r for r in proxy_b.requests if OTHER_SECRET in str(r.headers)]
    assert keyed_a
    assert keyed_b
    assert all(OTHER_SECRET not in str(r.headers) for r in proxy_a.requests)
    assert all(SECRET not in str(r.headers) for r in proxy_b.requests)


# -- redaction (llmrelay.errors) --------------------------------------------------------------


def test_known_keys_are_redacted_from_error_text() -> None:
    key = "hf_redaction_unit_0123456789"
    with Secrets([key]).active():  # what a client does while its provider code runs
        exc = errors.AuthenticationError(
            f"request failed: HTTP 401: bad token {key}",
            provider="p",
            model="m",
            status_code=401,
            body='{"detail": "bad token ' + key + '"}',
        )
    assert key not in str(exc)
    assert key not in repr(exc)
    assert key not in (exc.body or "")
    assert "[REDACTED]" in str(exc)
    assert "[REDACTED]" in (exc.body or "")
    exc.message = f"changed later: {key}"  # the engine appends to messages
    assert key not in str(exc)
    interrupted = StreamInterrupted(exc, "partial")
    assert key not in str(interrupted)
    failed = AllProvidersFailed([errors.Attempt("p", "m", "failed", "X", str(exc), exc)])
    assert key not in str(failed)


def test_short_values_are_not_treated_as_keys() -> None:
    with Secrets(["abc", "", None]).active():
        assert str(errors.ProviderError("abc def", provider="p")) == "p: abc def"


def test_a_key_cut_by_the_body_limit_is_still_redacted() -> None:
    key = "sk-cut-by-the-limit-0123456789"
    body = "x" * 1990 + key
    with Secrets([key]).active():
        exc = errors.ProviderError("failed", provider="p", body=body)
    assert exc.body is not None
    assert key[:10] not in exc.body


def test_secrets_belong_to_their_client_and_nothing_is_kept_process_wide() -> None:
    first, second = "sk-first-client-0123456789", "sk-second-client-0123456789"
    a, b = Secrets([first]), Secrets([second])
    with a.active():
        from_a = errors.ProviderError(f"echo {first} {second}", provider="p")
    with b.active():
        from_b = errors.ProviderError(f"echo {first} {second}", provider="p")
    outside = errors.ProviderError(f"echo {first}", provider="p")
    assert str(from_a) == f"p: echo [REDACTED] {second}"  # only its own client's key
    assert str(from_b) == f"p: echo {first} [REDACTED]"
    assert first in str(outside)  # no client was running: nothing process-wide
    assert first not in repr(a)
    assert not hasattr(errors, "_secrets")
    assert not hasattr(errors, "register_secret")


@pytest.mark.anyio
async def test_concurrent_clients_in_one_loop_keep_their_own_keys() -> None:
    keys = {name: f"sk-{name}-0123456789abcdef" for name in "ab"}
    made: dict[str, errors.ProviderError] = {}

    async def work(name: str) -> None:
        with Secrets([keys[name]]).active():
            await anyio.sleep(0.01)  # the other client runs meanwhile
            made[name] = errors.ProviderError(f"{keys['a']} {keys['b']}", provider=name)

    async with anyio.create_task_group() as group:
        group.start_soon(work, "a")
        group.start_soon(work, "b")
    assert str(made["a"]) == f"a: [REDACTED] {keys['b']}"
    assert str(made["b"]) == f"b: {keys['a']} [REDACTED]"


INBAND_ECHO = {
    "huggingface": b'data: {"error": "bad token SECRET", "error_type": "validation"}\n\n',
    "local": b'data: {"error": {"message": "bad token SECRET", "type": "invalid_request_error"}}\n\n',
    "replicate": b'event: error\ndata: {"detail": "bad token SECRET"}\n\n',
}


def test_an_in_band_error_echoing_the_key_is_redacted(rig: Rig) -> None:
    rig.script("ok")
    rig.proxy.reset("replace")
    rig.proxy.body = [INBAND_ECHO[rig.name].replace(b"SECRET", SECRET.encode())]
    produced, error = anyio.run(run_library, rig)
    assert isinstance(error, ProviderError), error
    assert "[REDACTED]" in str(error)
    assert SECRET not in produced


# -- the server (llmrelay serve's app, through the openai SDK) ------------------------------

SERVER_KEY = "srv-key-5c0a1e9d7b3f"


@pytest.fixture
def server_for(rig: Rig) -> Iterator[Any]:
    pytest.importorskip("llmrelay.server")
    import threading
    import time

    import uvicorn

    from llmrelay.server import ServerConfig, create_app
    from tests.fakes._server import TestServer

    servers: list[tuple[Any, threading.Thread]] = []

    def start(**client_kwargs: Any) -> str:
        config = ServerConfig(
            api_key=SERVER_KEY, client_kwargs={**client_kwargs, "timeouts": TIMEOUTS}
        )
        server = TestServer(
            uvicorn.Config(
                create_app(config=config),
                host="127.0.0.1",
                port=0,
                log_level="debug",
                lifespan="on",
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("scenario", ["ok", "echo_401", "cut_mid", "http_500"])
def test_server_never_shows_the_key(
    rig: Rig, server_for: Any, scenario: str, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx
    import openai

    caplog.set_level("DEBUG")
    rig.script(scenario)
    url = server_for(**rig.kwargs())
    produced: list[str] = []
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=SERVER_KEY, max_retries=0, timeout=30)
    try:
        text = ""
        for chunk in sdk.chat.completions.create(
            model=rig.name, messages=[{"role": "user", "content": "Say something"}], stream=True
        ):
            text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
            produced.append(chunk.model_dump_json())
        failure: openai.APIError | None = None
    except openai.APIError as exc:
        failure = exc
        produced += [str(exc), repr(exc), str(exc.body), "".join(traceback.format_exception(exc))]
    finally:
        sdk.close()
    assert (failure is None) == (scenario == "ok"), failure
    with httpx.Client(headers={"authorization": f"Bearer {SERVER_KEY}"}) as http:
        for path in ("/v1/models", "/metrics", "/health", f"/v1/models/{rig.name}"):
            response = http.get(url + path)
            produced.append(f"{path} {response.status_code} {response.headers} {response.text}")
        bad = http.get(url + "/v1/models", headers={"authorization": "Bearer wrong"})
        assert bad.status_code == 401
        produced.append(bad.text)
    everything = "\n".join(produced) + caplog.text
    assert SECRET not in everything
    assert SERVER_KEY not in "\n".join(produced[-6:])  # no endpoint shows the server's key
    assert any(SECRET in str(r.headers) for r in rig.proxy.requests)


def test_server_takes_no_upstream_url_proxy_or_key_from_a_request(
    rig: Rig, server_for: Any
) -> None:
    import openai

    rig.script("ok")
    url = server_for(**rig.kwargs())
    other = rig.proxy.other.url
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=SERVER_KEY, max_retries=0, timeout=30)
    hostile = {
        "base_url": other,
        "base_urls": {rig.name: other},
        "endpoints": {rig.name: {"base_url": other}},
        "api_key": OTHER_SECRET,
        "api_keys": {rig.name: OTHER_SECRET},
        "proxy": other,
        "options": {"base_url": other, "api_key": OTHER_SECRET},
    }
    try:
        text = ""
        for chunk in sdk.chat.completions.create(
            model=rig.name,
            messages=[{"role": "user", "content": "Say something"}],
            stream=True,
            extra_body=hostile,
        ):
            text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
        status = 200
    except openai.APIStatusError as exc:
        status = exc.status_code
    finally:
        sdk.close()
    assert status == 200 or 400 <= status < 500  # refusing the fields is fine too
    assert rig.proxy.other.requests == [], "the server fetched a URL from the request"
    assert all(OTHER_SECRET not in str(r.headers) for r in rig.proxy.requests)


# -- a client's keys are active whenever its provider code runs -------------------------------


class _Echoing:
    """A provider that builds errors echoing its key: when opening, mid-stream, on close."""

    @staticmethod
    def make(when: str) -> Any:
        import logging
        from collections.abc import AsyncGenerator
        from types import MappingProxyType

        from llmrelay.providers import Auth, AuthMode, Provider
        from llmrelay.types import ChatRequest, Event

        log = logging.getLogger("llmrelay.test.echoing")

        class Echoing(Provider):
            name = "echoing"
            label = "Echoing"
            endpoints = MappingProxyType({"base_url": "https://echoing.invalid"})
            default_model = "m"
            models = ("m",)
            auth = Auth(AuthMode.REQUIRED, "ECHOING_TOKEN")

            def _echo(self) -> errors.ProviderError:
                error = errors.ProviderUnavailable(
                    f"upstream said: bad token {self._api_key}",
                    provider="echoing",
                    body=f'{{"token": "{self._api_key}"}}',
                )
                log.warning("echoing: %s", error)
                return error

            async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
                try:
                    if when == "open":
                        raise self._echo()
                    yield "partial"
                    if when == "mid":
                        raise self._echo()
                    yield "more"
                finally:
                    if when == "close":
                        self._echo()

        return Echoing


@pytest.mark.parametrize("when", ["open", "mid", "close"])
def test_errors_built_by_provider_code_redact_their_clients_key(
    when: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")

    async def main() -> str:
        produced: list[str] = []
        async with AsyncClient(
            providers=[_Echoing.make(when)], api_keys={"echoing": SECRET}, model="echoing"
        ) as client:
            stream = client.stream("hi")
            try:
                async for event in stream:
                    produced.append(repr(event))
                    if when == "close":
                        break  # the provider's cleanup runs in aclose
            except LLMRelayError as exc:
                produced.append(dump(exc))
            finally:
                await stream.aclose()
        return "\n".join(produced)

    produced = anyio.run(main)
    assert "echoing: " in caplog.text  # the provider did log its error
    assert "[REDACTED]" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in produced


def test_nested_clients_redact_both_keys_and_a_keyless_client_activates_nothing() -> None:
    outer_key, inner_key = "sk-outer-client-0123456789", "sk-inner-client-0123456789"
    outer, inner = Secrets([outer_key]), Secrets([inner_key])
    with outer.active():
        with inner.active():  # e.g. a provider that calls another client
            both = errors.ProviderError(f"{outer_key} {inner_key}", provider="p")
        after = errors.ProviderError(f"{outer_key} {inner_key}", provider="p")
        assert Secrets().activate() is None
    assert str(both) == "p: [REDACTED] [REDACTED]"
    assert str(after) == f"p: [REDACTED] {inner_key}"
