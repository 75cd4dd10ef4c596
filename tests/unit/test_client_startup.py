"""What ``AsyncClient()`` builds at construction and what on first use (issue 21, start-up).

Construction reads and checks the settings and imports neither httpx, a transport nor a
provider's module (checked in fresh interpreters); the engine and the shared HTTP client
are built on first use, once, under a lock, so racing first uses share one HTTP client;
``aclose()`` before any use builds nothing, and one racing a build in another thread
still closes what the build made; settings that can be wrong are still refused at
construction.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import llmrelay
import llmrelay._transport
from llmrelay import AsyncClient, ClientClosed, ConfigError, FinishReason
from tests.unit.scripted_provider import scripted

pytestmark = pytest.mark.anyio

# Modules a constructed client must not have imported (a fresh interpreter's sys.modules).
HEAVY = (
    "httpx",
    "httpcore",
    "h11",
    "aiohttp",
    "anyio",
    "llmrelay._engine",
    "llmrelay._transport",
    "llmrelay._pool",
    "llmrelay._aiohttp",
    "llmrelay._http",
    "llmrelay._router",
    "llmrelay._stream",
    "llmrelay._resources",
    "llmrelay._redis",
)
# The providers package may load its base class and catalogue (names, settings rows).
PROVIDER_MODULES_ALLOWED = {
    "llmrelay.providers",
    "llmrelay.providers._base",
    "llmrelay.providers._catalogue",
}

PROBE = """
import json, sys
import llmrelay
{setup}
mods = sorted(sys.modules)
print(json.dumps(mods))
"""


def _modules_after(setup: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    return set(json.loads(out.stdout))


def _heavy(modules: set[str]) -> list[str]:
    found = [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY]
    found += [
        m
        for m in modules
        if m.startswith("llmrelay.providers") and m not in PROVIDER_MODULES_ALLOWED
    ]
    return sorted(found)


CONSTRUCTIONS = """
import asyncio
llmrelay.AsyncClient()
llmrelay.AsyncClient(transport="aiohttp")
repr(llmrelay.AsyncClient(transport="auto", model="hf_spaces:owner/space"))
asyncio.run(llmrelay.AsyncClient().aclose())
llmrelay.Client().close()
"""


def test_construction_imports_no_http_stack_and_no_provider() -> None:
    """One fresh interpreter: default, aiohttp, auto and sync clients, unused, closed."""
    assert _heavy(_modules_after(CONSTRUCTIONS)) == []


def test_import_llmrelay_leaves_the_error_hints_and_the_user_directories_for_later() -> None:
    # difflib (an unknown model's suggestions) and platformdirs with tempfile (the
    # config file's default place) load when they are used, not at every start
    assert not {"difflib", "platformdirs", "tempfile"} & _modules_after("")


def test_first_use_builds_the_http_client_and_imports_httpx() -> None:
    """The probe can see the modules: the first use does import them."""
    modules = _modules_after("c = llmrelay.AsyncClient(); c.candidates()")
    assert {"httpx", "httpcore", "llmrelay._engine", "llmrelay._pool"} <= modules
    assert "llmrelay.providers.hf_spaces" in modules  # the default model's provider


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[httpx.AsyncClient]:
    """Every HTTP client ``make_http_client`` builds (slowed: races get a wide window)."""
    made: list[httpx.AsyncClient] = []
    real = llmrelay._transport.make_http_client

    def slow(*args: Any, **kwargs: Any) -> httpx.AsyncClient:
        time.sleep(0.05)
        client = real(*args, **kwargs)
        made.append(client)
        return client

    monkeypatch.setattr(llmrelay._transport, "make_http_client", slow)
    return made


def _answering() -> tuple[type[Any], Any]:
    return scripted("first", ["hello", FinishReason("stop")])


def test_construction_builds_nothing(builds: list[httpx.AsyncClient]) -> None:
    client = AsyncClient()
    assert builds == []
    assert client._built is None
    assert repr(client) == "<AsyncClient model=None>"


async def test_concurrent_first_requests_share_one_http_client(
    builds: list[httpx.AsyncClient],
) -> None:
    cls, _ = _answering()
    seen: list[Any] = []

    class Recording(cls):  # type: ignore[misc,valid-type]
        def __init__(self, http: httpx.AsyncClient, **kwargs: Any) -> None:
            seen.append(http)
            super().__init__(http, **kwargs)

    async with AsyncClient(providers=[Recording]) as client:
        answers = await asyncio.gather(
            *(client.complete("hi", model="first:shared-model") for _ in range(5))
        )
    assert [a.text for a in answers] == ["hello"] * 5
    assert len(builds) == 1
    assert seen == [builds[0]]  # one provider instance, on the one HTTP client
    assert builds[0].is_closed


async def test_prepare_builds_now_once_and_not_after_close(
    builds: list[httpx.AsyncClient],
) -> None:
    client = AsyncClient()
    client.prepare()
    client.prepare()
    assert len(builds) == 1
    assert client._engine.http is builds[0]
    await client.aclose()
    assert builds[0].is_closed
    unused = AsyncClient()
    await unused.aclose()
    with pytest.raises(ClientClosed):
        unused.prepare()
    assert len(builds) == 1


def test_first_uses_from_threads_build_once(builds: list[httpx.AsyncClient]) -> None:
    client = AsyncClient()
    barrier = threading.Barrier(6)
    engines: list[Any] = []

    def first_use() -> None:
        barrier.wait()
        engines.append(client._engine)

    threads = [threading.Thread(target=first_use) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(engines) == 6
    assert len(builds) == 1
    assert all(engine is engines[0] for engine in engines)
    assert engines[0].http is builds[0]
    asyncio.run(client.aclose())
    assert builds[0].is_closed


async def test_aclose_before_any_use_builds_nothing_and_closes_the_client(
    builds: list[httpx.AsyncClient],
) -> None:
    client = AsyncClient()
    await client.aclose()
    await client.aclose()  # idempotent
    assert builds == []
    with pytest.raises(ClientClosed):
        client.stream("hi")
    with pytest.raises(ClientClosed):
        client.candidates()  # would build the engine: refused, nothing built
    with pytest.raises(ClientClosed):
        await client.complete("hi")
    assert builds == []


async def test_aclose_after_use_closes_the_built_http_client_only_if_owned(
    builds: list[httpx.AsyncClient],
) -> None:
    cls, _ = _answering()
    client = AsyncClient(providers=[cls])
    assert (await client.complete("hi", model="first:shared-model")).text == "hello"
    assert len(builds) == 1
    assert not builds[0].is_closed
    await client.aclose()
    assert builds[0].is_closed
    assert client.candidates("first:shared-model") == ["first:shared-model"]  # no I/O: works

    own = httpx.AsyncClient()
    cls, _ = _answering()
    async with AsyncClient(providers=[cls], http_client=own) as given:
        assert (await given.complete("hi", model="first:shared-model")).text == "hello"
        assert given._engine.http is own
    assert builds[1:] == []  # the caller's client was used, not a new one
    assert not own.is_closed  # and is the caller's to close
    await own.aclose()


def test_aclose_racing_a_build_in_another_thread_closes_what_it_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    building = threading.Event()
    made: list[httpx.AsyncClient] = []
    real = llmrelay._transport.make_http_client

    def slow(*args: Any, **kwargs: Any) -> httpx.AsyncClient:
        building.set()
        time.sleep(0.3)
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(llmrelay._transport, "make_http_client", slow)
    client = AsyncClient()
    engines: list[Any] = []
    builder = threading.Thread(target=lambda: engines.append(client._engine))
    builder.start()
    assert building.wait(10)
    asyncio.run(client.aclose())  # while the build runs
    builder.join(10)
    assert len(made) == 1
    assert len(engines) == 1
    assert engines[0].http is made[0]
    assert made[0].is_closed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"transport": "carrier-pigeon"}, "unknown transport"),
        ({"transport": "aiohttp", "proxy": "socks5://127.0.0.1:1080"}, "no socks proxies"),
        ({"verify": "/nonexistent/ca.pem"}, "cannot use CA bundle"),
        ({"proxy": "ftp://127.0.0.1:1"}, "unusable proxy setting"),
        ({"proxy": "http://u:pw@127.0.0.1:notaport"}, "unusable proxy setting: Invalid port"),
        ({"proxy": "http://127.0.0.1:x", "transport": "aiohttp"}, "unusable proxy setting"),
    ],
)
def test_bad_http_settings_are_refused_at_construction(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        AsyncClient(**kwargs)


def test_aiohttp_missing_is_refused_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("llmrelay._http_setup.fast_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"llmrelay\[fast\]"):
        AsyncClient(transport="aiohttp")
    assert AsyncClient(transport="auto")._transport == "httpx"


def test_a_proxy_builds_the_http_client_at_construction(
    builds: list[httpx.AsyncClient],
) -> None:
    client = AsyncClient(proxy="http://127.0.0.1:3128")
    assert len(builds) == 1
    assert client._engine.http is builds[0]
    asyncio.run(client.aclose())
    assert builds[0].is_closed


def test_a_ca_bundle_path_is_checked_now_and_loaded_at_the_first_https_request(
    tmp_path: Path, builds: list[httpx.AsyncClient]
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate")
    client = AsyncClient(verify=str(bundle))  # readable: accepted; its content is not read
    assert builds == []
    bundle.unlink()
    with pytest.raises(ConfigError, match="cannot use CA bundle"):
        client.candidates()  # the build checks it again
    assert builds == []


def test_the_sync_client_prepares_once(builds: list[httpx.AsyncClient]) -> None:
    with llmrelay.Client() as client:
        assert builds == []
        client.prepare()
        client.prepare()
        assert len(builds) == 1
    assert builds[0].is_closed


def test_the_sync_client_shares_the_lazy_path(builds: list[httpx.AsyncClient]) -> None:
    cls, _ = _answering()
    with llmrelay.Client(providers=[cls]) as client:
        assert builds == []
        barrier = threading.Barrier(4)
        texts: list[str] = []

        def ask() -> None:
            barrier.wait()
            texts.append(client.complete("hi", model="first:shared-model").text)

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert texts == ["hello"] * 4
        assert len(builds) == 1
    assert builds[0].is_closed
