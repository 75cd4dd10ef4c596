"""Fault x provider x surface -> outcome, through ``tests.fakes.faults.FaultProxy``.

Every provider's contract fake is served behind the fault proxy; each fault is run
through each surface (the async library, the sync ``Client``, the CLI through click's
runner) with small timeouts. Expected: before any text a typed ``ProviderError`` (never
a silent success, never an untyped exception); after text a ``StreamInterrupted``
carrying a prefix of the answer (library) or exit status 1 with exactly one error line
after the partial text (CLI); a complete answer when only the connection's last bytes
were lost; no hang past the timeouts; bounded memory for the 50 MiB frame and the gzip
bomb; the key never reaches the redirect's other host, nor any message.

Every case runs on both HTTP transports (``tests/transports.py``); the run writes
``FAULT_MATRIX.md`` next to this file when every case ran (a cell where the transports
differ shows both outcomes).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from click.testing import CliRunner

import llmrelay
from llmrelay import AsyncClient, Client, LLMRelayError, StreamInterrupted, Timeouts
from llmrelay.cli import cli
from tests.contract.conftest import FAKES
from tests.contract.fake_openai_compat import NAME as OPENAI_NAME
from tests.contract.fake_openai_compat import OpenAICompatContractFake
from tests.fakes._server import TestServer, serve
from tests.fakes._streaming import Fault
from tests.fakes.faults import FaultProxy, fault_proxy, gzip_bomb, refused_url
from tests.transports import TRANSPORTS

SECRET = "sk-faults-3f9a1c5e7b2d4f6a8c0e"
PROMPT = "Say something"
TIMEOUTS = {"connect": 2.0, "read": 0.75, "first_token": 1.5, "total": 8.0}
"""The timeouts of the timed faults (``TIMED``): the one a fault must trip is short."""
UNTIMED = {**TIMEOUTS, "read": 6.0, "first_token": 6.0}
"""The other faults end on the fault itself (a reset, a status, a bad frame) well before
any timeout: theirs are far, so a loaded machine (a parallel run) cannot make a timeout
win the race and change the outcome; ``total`` still bounds a hang."""
HANG_BOUND = 20.0  # total timeout + a generous margin for a loaded 2-CPU machine
# a compressed body is inflated at most INFLATE_STEP (256 KiB) at a time and an SSE line
# is bounded (4 MiB): a 50 MiB frame or a GiB gzip bomb costs a few line buffers, never
# its size (httpx's own decoding inflated each 64 KiB network chunk whole: ~66 MiB)
MEMORY_BOUND = 32 * 1024 * 1024
HEAVY_READ = 10.0  # inflating under tracemalloc is slow enough to trip 1-2 s timeouts
HEAVY_TOTAL = 15.0  # and, on a loaded machine, the 8 s total (still under HANG_BOUND)
MATRIX = Path(__file__).with_name("FAULT_MATRIX.md")

PROVIDERS: dict[str, Callable[[], Any]] = dict(FAKES)
PROVIDERS.setdefault(OPENAI_NAME, OpenAICompatContractFake)

HTTP_STATUSES = (400, 401, 403, 404, 422, 429, 500, 503)
HTTP_TYPES = {
    400: "InvalidRequestError",
    401: "AuthenticationError",
    403: "AuthenticationError",
    404: "ModelNotFoundError",
    422: "InvalidRequestError",
    429: "RateLimitError",
    500: "ProviderUnavailable",
    503: "ProviderUnavailable",
}


def _inband_tgi_like(fake: Any) -> None:
    fake._script(Fault("inband_error", after=0))


def _inband_space(fake: Any) -> None:
    from tests.fakes.gradio_space import SpaceScript

    fake.fake.script = SpaceScript(mode="fail", fail_after=0)


def _inband_ai2(fake: Any) -> None:
    from tests.fakes.ai2 import Ai2Script

    fake.fake.script = Ai2Script(mode="error_line", fault_after=0)


def _inband_h2o(fake: Any) -> None:
    from tests.fakes.h2o import H2oScript

    fake.fake.script = H2oScript(mode="error_payload", fault_after=0)


def _inband_replicate(fake: Any) -> None:
    from tests.fakes.replicate import ReplicateScript

    fake.fake.reset(ReplicateScript(mode="error_event", fail_after=0))


INBAND: dict[str, Callable[[Any], None]] = {
    "huggingface": _inband_tgi_like,
    OPENAI_NAME: _inband_tgi_like,
    "hf_spaces": _inband_space,
    "ai2": _inband_ai2,
    "h2o": _inband_h2o,
    "replicate": _inband_replicate,
}
MALFORMED_FRAMES = {"replicate": b'event: done\ndata: {"malformed\n\n'}
"""Protocols that skip unknown frames (Replicate's untyped events) get a malformed frame
of a type they must read."""
"""How to script an in-band error event (inside a 200 stream) for each provider's fake."""
SKIPS_UNPARSABLE = {OPENAI_NAME}
"""Providers that skip an unparsable event and keep reading unless ``strict``
(failoverbench S10): an inserted malformed frame leaves the answer complete."""
QUEUED_FIRST = {
    "replicate": frozenset({"malformed", "inband_error"}),
    "hf_spaces": frozenset({"inband_error"}),
}
"""Faults that strike after the provider reported progress (``Queued``: Replicate's
``starting`` prediction, a Space's queue estimation): the server has answered 200 with SSE comments by then, so the
error is an in-band frame with no text (phase ``queued``)."""

# fault -> (phase, allowed error types); phase "before" = a typed error before any text,
# "after" = StreamInterrupted with partial text, "ok" = the complete answer
PROXY_FAULTS: dict[str, tuple[str, frozenset[str]]] = {
    "pass": ("ok", frozenset()),
    "reset": ("before", frozenset({"TransportError"})),
    "stall": ("before", frozenset({"ProviderTimeout"})),
    "heartbeats": ("before", frozenset({"ProviderTimeout"})),
    "stall_mid": ("after", frozenset({"ProviderTimeout"})),
    "cut_mid": ("after", frozenset({"TransportError", "ProtocolError"})),
    "cut_after_end": ("ok", frozenset()),
    "malformed": ("before", frozenset({"ProtocolError"})),
    "malformed_mid": ("after", frozenset({"ProtocolError"})),
    "frame_50mib": ("before", frozenset({"ProtocolError"})),
    "gzip_bomb": ("before", frozenset({"ProtocolError", "TransportError"})),
    "drip": ("before", frozenset({"ProviderTimeout"})),
    "drip_mid": ("after", frozenset({"ProviderTimeout"})),
    "redirect": (
        "before",
        frozenset(
            {"ProtocolError", "TransportError", "ProviderUnavailable", "InvalidRequestError"}
        ),
    ),
}
FAULTS: dict[str, tuple[str, frozenset[str]]] = {
    "refused": ("before", frozenset({"TransportError"})),
    **PROXY_FAULTS,
    "inband_error": (
        "before",
        frozenset(
            {
                "ProviderError",
                "ProviderUnavailable",
                "ProtocolError",
                "InvalidRequestError",
                "RateLimitError",
            }
        ),
    ),
    **{f"http_{s}": ("before", frozenset({HTTP_TYPES[s]})) for s in HTTP_STATUSES},
    # TGI's 422 names the prompt's length ("must be <= 4096"): its own subclass
    "http_422": ("before", frozenset({"InvalidRequestError", "ContextLengthExceeded"})),
}
HEAVY = {"frame_50mib", "gzip_bomb"}
HAS_SERVER = importlib.util.find_spec("llmrelay.server") is not None
SURFACES = ("async", "sync", "cli", "server") if HAS_SERVER else ("async", "sync", "cli")

RESULTS: dict[tuple[str, str, str, str], str] = {}
"""(fault, provider, surface, transport) -> the outcome's description."""


# -- fixtures -----------------------------------------------------------------------------


@dataclass
class Rig:
    name: str
    fake: Any
    proxy: FaultProxy

    def kwargs(self, url: str | None = None) -> dict[str, Any]:
        kwargs = self.fake.prepare_client_kwargs(url or self.proxy.url)
        kwargs["api_keys"] = {name: SECRET for name in kwargs.get("api_keys", {})}
        return kwargs


@pytest.fixture(scope="module", params=sorted(PROVIDERS))
def _rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    fake = PROVIDERS[request.param]()
    with serve(fake.app) as url, fault_proxy(url) as proxy:
        # the mid-stream faults strike after the frame carrying the answer's first word
        proxy.marker = re.findall(r"[A-Za-z]{3,}", fake.expected_text)[0].encode()
        proxy.malformed_frame = MALFORMED_FRAMES.get(request.param)
        try:
            yield Rig(request.param, fake, proxy)
        finally:
            stop_servers()


@pytest.fixture
def rig(_rig: Rig) -> Iterator[Rig]:
    _rig.fake.ok()
    _rig.proxy.reset()
    yield _rig
    _rig.proxy.reset()
    assert _rig.proxy.wait_idle(10), "a client connection was left open"
    assert _rig.fake.wait_closed(10), "an upstream stream was left open"


@pytest.fixture(scope="module", autouse=True)
def _write_matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    results = _share_results(tmp_path_factory)
    if len(results) == len(CASES) * len(TRANSPORTS):
        write_matrix(results)


def _share_results(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], str]:
    """This process's ``RESULTS`` merged with those of the run's other processes.

    Under pytest-xdist each worker runs some of the cells: each writes what it saw to the
    run's shared temporary directory (its workers' base directories have one parent)
    before reading everyone's, so the last to finish sees every cell.
    """
    base = tmp_path_factory.getbasetemp()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    shared = (base.parent if worker else base) / "fault-matrix-results"
    shared.mkdir(exist_ok=True)
    mine = shared / f"{worker or 'main'}.json"
    partial = mine.with_suffix(".tmp")
    partial.write_text(json.dumps([[*key, value] for key, value in RESULTS.items()]))
    partial.replace(mine)
    merged: dict[tuple[str, ...], str] = {}
    for path in shared.glob("*.json"):
        for *key, value in json.loads(path.read_text()):
            merged[tuple(key)] = value
    return merged


def write_matrix(results: dict[tuple[str, ...], str]) -> None:
    providers = sorted(PROVIDERS)
    lines = [
        "# Fault matrix",
        "",
        "Generated by `tests/reliability/test_fault_matrix.py` (do not edit). Timeouts: "
        + ", ".join(f"{k} {v:g}s" for k, v in TIMEOUTS.items())
        + " for the timed faults ("
        + ", ".join(sorted(TIMED))
        + f"; drip_mid: total {DRIP_MID_TOTAL:g}s, read {DRIP_MID_READ:g}s, stall_mid: "
        + f"first_token {UNTIMED['first_token']:g}s); read and first_token "
        + f"{UNTIMED['read']:g}s for the others (heavy: {HEAVY_READ:g}s, total {HEAVY_TOTAL:g}s)"
        + ". Library: `collect()` of a stream (`ok` = the complete answer; "
        "`Interrupted(cause, n chars)` = `StreamInterrupted` with the partial text). "
        "CLI: exit status, stderr error lines, stdout. Server: what the `openai` SDK saw "
        "streaming from `llmrelay serve`'s app (an HTTP error status before the first "
        "token, an in-band error frame after it). Every cell ran on both HTTP transports "
        "(httpx and aiohttp); one outcome is shown where they agree.",
        "",
    ]
    for surface in SURFACES:
        lines += [f"## {surface}", ""]
        lines.append("| fault | " + " | ".join(providers) + " |")
        lines.append("|---|" + "---|" * len(providers))
        for fault in FAULTS:
            cells = [cell(results, fault, p, surface) for p in providers]
            lines.append(f"| {fault} | " + " | ".join(cells) + " |")
        lines.append("")
    partial = MATRIX.with_name(f".{MATRIX.name}.{os.getpid()}")
    partial.write_text("\n".join(lines))
    partial.replace(MATRIX)  # two workers finishing at once each write it whole


def cell(results: dict[tuple[str, ...], str], fault: str, provider: str, surface: str) -> str:
    """One cell of the matrix: the outcome, or each transport's when they differ."""
    outcomes = {t: results.get((fault, provider, surface, t)) for t in TRANSPORTS}
    if None in outcomes.values():
        return not_run(fault, provider, surface) or "-"
    if len(set(outcomes.values())) == 1:
        return str(outcomes[TRANSPORTS[0]])
    return "; ".join(f"{t}: {o}" for t, o in outcomes.items())


# -- running one case ---------------------------------------------------------------------


@dataclass
class Outcome:
    phase: str  # ok | before | after
    error: str = ""  # error type (the cause's, for "after")
    kind: str = ""
    text: str = ""
    message: str = ""
    elapsed: float = 0.0

    def describe(self) -> str:
        kind = f":{self.kind}" if self.kind else ""
        if self.phase == "ok":
            return "ok"
        if self.phase == "after":
            return f"Interrupted({self.error}{kind}, {len(self.text)} chars)"
        return f"{self.error}{kind}"


def _error_outcome(exc: LLMRelayError, elapsed: float) -> Outcome:
    if isinstance(exc, StreamInterrupted):
        cause = exc.cause
        return Outcome(
            "after",
            type(cause).__name__,
            getattr(cause, "kind", ""),
            exc.text,
            f"{exc} {exc!r} {cause!r} {getattr(cause, 'body', '')}",
            elapsed,
        )
    return Outcome(
        "before",
        type(exc).__name__,
        getattr(exc, "kind", ""),
        "",
        f"{exc} {exc!r} {getattr(exc, 'body', '')}",
        elapsed,
    )


def run_async(kwargs: dict[str, Any], model: str, timeouts: Timeouts) -> Outcome:
    async def main() -> Outcome:
        started = time.monotonic()
        try:
            with anyio.fail_after(HANG_BOUND):
                async with AsyncClient(**kwargs, timeouts=timeouts) as client:
                    completion = await client.stream(PROMPT, model=model).collect()
        except LLMRelayError as exc:
            return _error_outcome(exc, time.monotonic() - started)
        return Outcome("ok", text=completion.text, elapsed=time.monotonic() - started)

    return anyio.run(main)


def run_sync(kwargs: dict[str, Any], model: str, timeouts: Timeouts) -> Outcome:
    started = time.monotonic()
    try:
        with Client(**kwargs, timeouts=timeouts) as client:
            text = "".join(e for e in client.stream(PROMPT, model=model) if isinstance(e, str))
    except LLMRelayError as exc:
        return _error_outcome(exc, time.monotonic() - started)
    return Outcome("ok", text=text, elapsed=time.monotonic() - started)


@dataclass
class CliOutcome:
    code: int
    stdout: str
    stderr: str
    elapsed: float

    def describe(self) -> str:
        errors = [line for line in self.stderr.splitlines() if line.startswith("llmrelay: error:")]
        out = "no stdout" if not self.stdout.strip() else f"{len(self.stdout.rstrip())} chars"
        return f"exit {self.code}, {len(errors)} error line(s), {out}"


def cli_env(kwargs: dict[str, Any], tmp: Path, timeouts: Timeouts) -> dict[str, str]:
    """The environment (and config file) giving the CLI what ``kwargs`` gives a client."""
    env = {
        "LLMRELAY_HOME": str(tmp),
        "LLMRELAY_CONNECT_TIMEOUT": str(timeouts.connect),
        "LLMRELAY_READ_TIMEOUT": str(timeouts.read),
        "LLMRELAY_FIRST_TOKEN_TIMEOUT": str(timeouts.first_token),
        "LLMRELAY_TOTAL_TIMEOUT": str(timeouts.total),
    }
    for name, url in kwargs.get("base_urls", {}).items():
        env[f"LLMRELAY_{name.upper()}_BASE_URL"] = url
    for name, table in kwargs.get("endpoints", {}).items():
        for endpoint, url in table.items():
            env[f"LLMRELAY_{name.upper()}_{endpoint.upper()}"] = url
    for name, key in kwargs.get("api_keys", {}).items():
        env[f"LLMRELAY_{name.upper()}_API_KEY"] = key
    configured = kwargs.get("providers", [])
    if configured:
        config = tmp / "config.toml"
        text = ""
        for cls in configured:
            text += (
                f'[providers.{cls.name}]\nkind = "openai"\nbase_url = "{cls.endpoints["base_url"]}"\n'
                f'models = ["{cls.default_model}"]\n'
            )
        config.write_text(text)
        env["LLMRELAY_CONFIG"] = str(config)
    return env


def run_cli(kwargs: dict[str, Any], model: str, tmp: Path, timeouts: Timeouts) -> CliOutcome:
    started = time.monotonic()
    env = cli_env(kwargs, tmp, timeouts)
    result = CliRunner().invoke(cli, ["-v", "chat", "-m", model, PROMPT], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # an untyped exception escaped the CLI
    return CliOutcome(result.exit_code, result.stdout, result.stderr, time.monotonic() - started)


@dataclass
class ServerOutcome:
    """What the ``openai`` SDK saw from ``llmrelay serve``'s app."""

    phase: str  # ok | before (an HTTP error status) | after (an in-band error frame)
    status: int | None
    text: str
    message: str
    elapsed: float

    def describe(self) -> str:
        if self.phase == "ok":
            return "ok"
        if self.phase == "before":
            return f"HTTP {self.status}"
        return f"in-band error after {len(self.text)} chars"


SERVERS: dict[str, tuple[TestServer, threading.Thread]] = {}
"""Running servers by their client settings: a case reuses the server of its settings."""


def server_url(kwargs: dict[str, Any], timeouts: Timeouts) -> str:
    from llmrelay.server import ServerConfig, create_app

    # a configured class carries its URL in its endpoints, not in its repr
    urls = [dict(cls.endpoints) for cls in kwargs.get("providers", [])]
    key = f"{kwargs!r} {urls!r} {timeouts!r} {os.environ['LLMRELAY_TRANSPORT']}"
    if key not in SERVERS:
        config = ServerConfig(client_kwargs={**kwargs, "timeouts": timeouts})
        server = TestServer(
            uvicorn.Config(
                create_app(config=config),
                host="127.0.0.1",
                port=0,
                log_level="warning",
                lifespan="on",
                access_log=False,
            )
        )
        thread = threading.Thread(target=server.run, name="llmrelay-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "the server did not start"
            assert time.monotonic() < deadline, "the server did not start in time"
            time.sleep(0.01)
        SERVERS[key] = (server, thread)
    return f"http://127.0.0.1:{SERVERS[key][0].port}"


def stop_servers() -> None:
    for server, thread in SERVERS.values():
        server.should_exit = True
        thread.join(10)
    SERVERS.clear()


def run_server(kwargs: dict[str, Any], model: str, timeouts: Timeouts) -> ServerOutcome:
    import openai

    sdk = openai.OpenAI(
        base_url=f"{server_url(kwargs, timeouts)}/v1",
        api_key="unused",
        max_retries=0,
        timeout=HANG_BOUND,
    )
    started = time.monotonic()
    text = ""
    try:
        stream = sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        outcome = ServerOutcome("ok", None, text, "", time.monotonic() - started)
    except openai.APIStatusError as exc:
        message = f"{exc} {exc.body}"
        outcome = ServerOutcome(
            "before", exc.status_code, text, message, time.monotonic() - started
        )
    except openai.APIError as exc:  # an error frame inside the 200 stream
        message = f"{exc} {exc.body}"
        outcome = ServerOutcome("after", None, text, message, time.monotonic() - started)
    finally:
        sdk.close()
    return outcome


def check_server(outcome: ServerOutcome, phase: str, expected: str, fault: str) -> None:
    assert SECRET not in outcome.message
    if phase == "queued":  # answered at once (SSE comments), then the error frame
        assert outcome.phase == "after", f"{fault}: {outcome}"
        assert outcome.text == ""
        assert outcome.message
        return
    assert outcome.phase == phase, f"{fault}: {outcome}"
    if phase == "ok":
        assert outcome.text == expected
    elif phase == "before":
        assert outcome.status is not None
        assert outcome.status >= 400
        assert outcome.text == ""
    else:
        assert outcome.text, "the partial answer was not streamed before the error frame"
        assert expected.startswith(outcome.text)
        assert outcome.text != expected


def scripted(rig: Rig, fault: str) -> dict[str, Any]:
    """Script the fake and the proxy for ``fault``; the client kwargs to use."""
    if fault == "refused":
        return rig.kwargs(refused_url())
    if fault.startswith("http_"):
        rig.fake.http_error(int(fault.removeprefix("http_")))
    elif fault == "inband_error":
        INBAND[rig.name](rig.fake)
    else:
        rig.proxy.reset(fault)
    return rig.kwargs()


# -- the matrix -----------------------------------------------------------------------------


TIMED = {"stall", "heartbeats", "stall_mid", "drip", "drip_mid"}
DRIP_MID_TOTAL = 2.0  # the total timeout is what ends a stream that keeps dripping
DRIP_MID_READ = 1.5  # a byte each 0.1 s: far from the read timeout even on a loaded machine


def timeouts_for(fault: str) -> Timeouts:
    """The timeouts of ``fault``'s cells: only the timeout the fault must trip is short."""
    if fault in HEAVY:
        return Timeouts(
            **{**UNTIMED, "read": HEAVY_READ, "first_token": HEAVY_READ, "total": HEAVY_TOTAL}
        )
    if fault == "drip_mid":
        return Timeouts(**{**TIMEOUTS, "total": DRIP_MID_TOTAL, "read": DRIP_MID_READ})
    if fault == "stall_mid":  # the read timeout ends it, after the first text
        return Timeouts(**{**TIMEOUTS, "first_token": UNTIMED["first_token"]})
    if fault in TIMED:
        return Timeouts(**TIMEOUTS)
    return Timeouts(**UNTIMED)


SURFACE_HTTP = {"http_401", "http_429", "http_503"}
"""The sync client and the CLI share the async engine: through them, the faults that
cost seconds (timeouts, heavy) run for ``SURFACE_PROVIDER`` only and the HTTP errors for
three statuses; the async library runs every cell (keeps the file under 3 minutes)."""
SURFACE_PROVIDER = "hf_spaces"


def not_run(fault: str, provider: str, surface: str) -> str | None:
    """Why the matrix does not run this cell (its text in ``FAULT_MATRIX.md``), or None."""
    if fault == "inband_error" and provider not in INBAND:
        return "n/a"  # no in-band error mode known for this fake
    if surface == "async":
        return None
    if fault in TIMED or fault in HEAVY:
        return None if provider == SURFACE_PROVIDER else "(async only)"
    if fault.startswith("http_") and fault not in SURFACE_HTTP:
        return "(async only)"
    return None


CASES = [
    (f, p, s)
    for f in FAULTS
    for p in sorted(PROVIDERS)
    for s in SURFACES
    if not_run(f, p, s) is None
]
"""The cells the matrix runs; the others are deselected at collection (see ``deselect``)."""


def deselect(item: pytest.Item) -> bool:
    """Whether ``item`` is a cell the matrix does not run (``tests/reliability/conftest.py``
    deselects it at collection, so no skipped placeholders are reported)."""
    params = getattr(item, "callspec", None)
    if item.originalname != "test_fault" or params is None:
        return False
    cell = (params.params["fault"], params.params["_rig"], params.params["surface"])
    return cell not in CASES


def _params() -> list[Any]:
    params = []
    for fault in FAULTS:
        for surface in SURFACES:
            marks = [pytest.mark.heavy] if fault in HEAVY else []
            params.append(pytest.param(fault, surface, marks=marks, id=f"{fault}-{surface}"))
    return params


@pytest.mark.parametrize(("fault", "surface"), _params())
def test_fault(rig: Rig, fault: str, surface: str, tmp_path: Path, transport: str) -> None:
    phase, allowed = FAULTS[fault]
    if fault in ("malformed", "malformed_mid") and rig.name in SKIPS_UNPARSABLE:
        phase = "ok"
    kwargs = scripted(rig, fault)
    expected = rig.fake.expected_text
    measure = fault in HEAVY and surface == "async"
    timeouts = timeouts_for(fault)
    if fault == "gzip_bomb":
        # built once per process (seconds, tens of MiB): before the clock and the memory
        # trace start, which measure the client reading it
        gzip_bomb()
    if measure:
        tracemalloc.start()
    try:
        if surface == "server":
            outcome: Any = run_server(kwargs, rig.name, timeouts)
        elif surface == "cli":
            outcome = run_cli(kwargs, rig.name, tmp_path, timeouts)
        elif surface == "sync":
            outcome = run_sync(kwargs, rig.name, timeouts)
        else:
            outcome = run_async(kwargs, rig.name, timeouts)
    finally:
        if measure:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    RESULTS[(fault, rig.name, surface, transport)] = outcome.describe() + (
        # rounded up to 32 MiB so the committed matrix does not churn between runs
        f" (peak < {math.ceil(peak / 2**25) * 32} MiB)" if measure else ""
    )
    assert outcome.elapsed < HANG_BOUND, f"{fault} took {outcome.elapsed:.1f}s"
    if fault == "drip_mid" and surface in ("async", "sync"):
        assert outcome.kind == "total", outcome
    if measure:
        assert peak < MEMORY_BOUND, f"{fault}: peak traced memory {peak / 2**20:.0f} MiB"
    # a credential never reaches the redirect's other host
    for request in rig.proxy.other.requests:
        assert SECRET not in str(request.headers), f"{fault}: key sent to another host"
    if fault == "redirect":
        assert rig.proxy.faulted >= 1
    elif fault in PROXY_FAULTS and fault != "pass":
        assert rig.proxy.faulted >= 1, f"{fault} never reached a streaming response"
    if surface == "server":
        queued = fault in QUEUED_FIRST.get(rig.name, frozenset())
        check_server(outcome, "queued" if queued else phase, expected, fault)
    elif surface == "cli":
        check_cli(outcome, phase, expected)
    else:
        check_library(outcome, phase, allowed, expected, fault)


def check_library(
    outcome: Outcome, phase: str, allowed: frozenset[str], expected: str, fault: str
) -> None:
    assert SECRET not in outcome.message
    assert outcome.phase == phase, f"{fault}: {outcome}"
    if phase == "ok":
        assert outcome.text == expected
        return
    assert outcome.error in allowed, f"{fault}: {outcome}"
    if phase == "after":
        assert outcome.text, "StreamInterrupted without the partial text"
        assert expected.startswith(outcome.text)
        assert outcome.text != expected


def check_cli(outcome: CliOutcome, phase: str, expected: str) -> None:
    assert SECRET not in outcome.stdout + outcome.stderr
    if phase == "ok":
        assert outcome.code == 0, outcome.stderr
        assert outcome.stdout.rstrip("\n") == expected.rstrip("\n")
        return
    assert outcome.code == 1, outcome.stderr
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("llmrelay: error:")]
    assert len(errors) == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    if phase == "after":
        assert outcome.stdout.strip(), "the partial answer was not printed"
        assert expected.startswith(outcome.stdout.rstrip("\n"))
    else:
        assert outcome.stdout == ""


def test_llmrelay_exports_the_matrix_error_types() -> None:
    names = {n for _, allowed in FAULTS.values() for n in allowed}
    assert all(issubclass(getattr(llmrelay, n), llmrelay.ProviderError) for n in names)


# -- fallback before the first token ---------------------------------------------------------

FALLBACK_FAULTS = ("refused", "reset", "http_503", "http_429", "malformed", "http_401")


@pytest.mark.parametrize("fault", FALLBACK_FAULTS)
def test_a_fault_before_the_first_token_falls_back_or_is_typed(
    rig: Rig, fault: str, tmp_path: Path
) -> None:
    """A retryable fault moves on to the next candidate (nothing of the first leaks
    into the answer); a non-retryable one ends the chain with its typed error."""
    from llmrelay import FinishReason
    from tests.unit.scripted_provider import scripted as scripted_provider

    backup, script = scripted_provider("backup", ["from the backup", FinishReason("stop")])
    kwargs = scripted(rig, fault)
    kwargs["providers"] = [*kwargs.get("providers", []), backup]
    config = tmp_path / "config.toml"
    model = rig.fake.prepare_client_kwargs("http://x").get("providers", [None])[0]
    first = f"{rig.name}:{model.default_model}" if model else rig.name
    config.write_text(f'[aliases]\nchain = ["{first}", "backup:shared-model"]\n')

    async def main() -> Any:
        async with AsyncClient(
            **kwargs,
            config_path=str(config),
            timeouts=timeouts_for(fault),
            cooldown=0,
            retries=0,  # same-candidate retries: tests/unit/test_failover.py
        ) as client:
            try:
                return await client.stream(PROMPT, model="chain").collect()
            except LLMRelayError as exc:
                return exc

    result = anyio.run(main)
    expected_type = FAULTS[fault][1]
    if fault == "malformed" and rig.name in SKIPS_UNPARSABLE:
        assert isinstance(result, llmrelay.Completion), repr(result)
        assert result.text == rig.fake.expected_text
        assert [a.outcome for a in result.attempts] == ["ok"]
        assert "skipped 1 unparsable event" in (result.attempts[0].message or "")
        assert script.started == 0, "the backup was asked although the first answered"
    elif isinstance(result, llmrelay.Completion):
        assert result.text == "from the backup"
        assert result.provider == "backup"
        assert [a.outcome for a in result.attempts] == ["failed", "ok"]
        assert result.attempts[0].error_type in expected_type
        assert isinstance(result.attempts[0].error, llmrelay.ProviderError)
        assert result.attempts[0].error.retryable
    else:
        assert type(result).__name__ in expected_type, repr(result)
        assert isinstance(result, llmrelay.ProviderError)
        assert not result.retryable
        assert script.started == 0, "a non-retryable error must end the chain"
