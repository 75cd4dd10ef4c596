"""Shared pieces of the benchmarks: provider scenarios, recording, replay servers, raw loops.

A *scenario* is a provider on main with its wire-level contract fake
(``tests/contract``), a way to make that fake answer ``n`` tokens, and a minimal raw
parser of its wire format.  ``record()`` runs llmrelay twice against the live fake
(served in a thread by ``tests.fakes._server.serve``) and keeps every HTTP exchange;
``ReplayServer`` then serves those bytes from a separate process (``_replay.py``) so the
client's CPU time is its own.  ``raw_deltas`` / ``raw_deltas_sync`` repeat the requests of
one warm llmrelay stream with plain httpx and split the streamed bytes on ``\\n``
themselves (``aiter_lines()`` would split on U+2028): the minimal correct raw loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(os.environ.get("LLMRELAY_BENCH_SRC") or ROOT / "src")
"""The llmrelay sources measured (``LLMRELAY_BENCH_SRC`` = another checkout's ``src``,
e.g. an older commit's for before/after figures)."""
for entry in (str(ROOT), str(SRC)):
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)

import httpx  # noqa: E402

import llmrelay  # noqa: E402

PROMPT = "Count for me."
STREAMED = ("text/event-stream", "application/x-ndjson", "application/jsonl")


def make_chunks(n: int) -> list[str]:
    """``n`` distinct chunks; whitespace leads (``" w7"``) so no chunk is held back."""
    return ["w0", *(f" w{i}" for i in range(1, n))]


# -- raw parsers (one per wire format) -----------------------------------------------------


class Extractor:
    """Minimal parser of one streamed body: ``line(raw) -> delta or None``; ``done``."""

    done = False

    def __init__(self, context: list[Any]) -> None:
        self.context = context

    def line(self, raw: bytes) -> str | None:
        raise NotImplementedError


def _data(raw: bytes) -> bytes | None:
    if raw[:5] != b"data:":
        return None
    return raw[6:] if raw[5:6] == b" " else raw[5:]


class OpenAIExtractor(Extractor):
    """``data: {chunk}`` -> ``choices[0].delta.content``; ``[DONE]`` or a finish ends."""

    def line(self, raw: bytes) -> str | None:
        data = _data(raw)
        if data is None:
            return None
        if data == b"[DONE]":
            self.done = True
            return None
        chunk = json.loads(data)
        choices = chunk.get("choices")
        if not choices:
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            self.done = "usage" not in chunk  # wait for the usage chunk / [DONE]
        return choice["delta"].get("content") or None


class TGIExtractor(Extractor):
    """TGI ``data: {"token": {"text", "special"}, "generated_text"}``."""

    def line(self, raw: bytes) -> str | None:
        data = _data(raw)
        if data is None:
            return None
        event = json.loads(data)
        token = event["token"]
        if event.get("generated_text") is not None:
            self.done = True
        return None if token.get("special") else token["text"] or None


def _apply(value: Any, edits: list[Any]) -> Any:
    """Minimal Gradio diff apply: ``[action, path, value]`` edits (not llmrelay's code)."""
    for action, path, new in edits:
        if not path:
            value = value + new if action == "append" else new
            continue
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if action == "append":
            parent[key] += new
        elif action == "replace":
            parent[key] = new
        elif action == "add":
            if isinstance(parent, list):
                parent.insert(key, new)
            else:
                parent[key] = new
        elif action == "delete":
            del parent[key]
    return value


def _reply(chatbot: list[Any]) -> str:
    if chatbot and isinstance(chatbot[-1], dict) and chatbot[-1].get("role") == "assistant":
        return str(chatbot[-1]["content"])
    if chatbot and isinstance(chatbot[-1], list):  # Gradio 3/4 tuples
        return str(chatbot[-1][1] or "")
    return ""


class GradioExtractor(Extractor):
    """Gradio queue SSE: diffs of the chatbot output, filtered by the join's event id."""

    def __init__(self, context: list[Any]) -> None:
        super().__init__(context)
        self.event_id = next(c["event_id"] for c in context if "event_id" in c)
        self.values: list[Any] | None = None
        self.sent = ""
        self.output: int | None = None

    def _text(self, data: list[Any]) -> str:
        if self.output is None:  # the chatbot: the output holding a list
            self.output = next(i for i, v in enumerate(data) if isinstance(v, list))
        return _reply(data[self.output])

    def line(self, raw: bytes) -> str | None:
        data = _data(raw)
        if data is None:
            return None
        message = json.loads(data)
        if message.get("event_id") != self.event_id:
            return None
        kind = message["msg"]
        if kind == "process_generating":
            output = message["output"]["data"]
            if self.values is None:
                self.values = list(output)
            else:
                self.values = [_apply(v, e) for v, e in zip(self.values, output, strict=True)]
            text = self._text(self.values)
        elif kind == "process_completed":
            self.done = True
            text = self._text(message["output"]["data"])
        else:
            return None
        if len(text) > len(self.sent):
            delta, self.sent = text[len(self.sent) :], text
            return delta
        return None


class ReplicateExtractor(Extractor):
    """nchan SSE: ``event: output`` events' ``data`` lines joined with ``\\n``; ``done`` ends."""

    def __init__(self, context: list[Any]) -> None:
        super().__init__(context)
        self.event = ""
        self.data: list[str] = []

    def line(self, raw: bytes) -> str | None:
        if not raw:  # dispatch
            event, data = self.event, self.data
            self.event, self.data = "", []
            if event == "output" and data:
                return "\n".join(data) or None
            if event == "done":
                self.done = True
            return None
        data = _data(raw)
        if data is not None:
            self.data.append(data.decode())
        elif raw[:6] == b"event:":
            self.event = raw[6:].strip().decode()
        return None


class Ai2Extractor(Extractor):
    """olmo-api ``/v4/threads/`` JSON lines: ``modelResponse`` chunks; the final thread ends."""

    def line(self, raw: bytes) -> str | None:
        if not raw:
            return None
        item = json.loads(raw)
        if item.get("type") == "modelResponse":
            return item["content"] or None
        messages = item.get("messages")
        if messages and messages[-1].get("final") is True:
            self.done = True
        return None


class H2oExtractor(TGIExtractor):
    """chat-ui (2023) relays TGI's SSE verbatim (``data:{...}``, no space): as TGI."""


# -- live providers' per-request state ---------------------------------------------------


class LiveState:
    """How the raw loop repeats one recorded llmrelay stream against a live fake.

    ``headers(ex)`` / ``url(url, ex)``: the request to send for recorded exchange ``ex``
    (with the state learnt so far); ``learn(response)``: what a response teaches (a
    prediction's stream URL, a session cookie, a conversation id).
    """

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def url(self, url: str, ex: Exchange) -> str:
        return url + ex.target

    def headers(self, ex: Exchange) -> dict[str, str]:
        return ex.request_headers

    def learn(self, response: httpx.Response, ex: Exchange) -> None:
        pass


class ReplicateState(LiveState):
    """``POST .../predictions`` -> ``urls.stream``, which the ``GET`` then reads."""

    def url(self, url: str, ex: Exchange) -> str:
        if ex.streamed:
            return self.values["stream"]
        return url + ex.target

    def learn(self, response: httpx.Response, ex: Exchange) -> None:
        if ex.method == "POST":
            self.values["stream"] = response.json()["urls"]["stream"]


class H2oState(LiveState):
    """``GET /`` sets the session cookie (refreshed by later answers); ``POST
    /conversation`` answers the ``conversationId`` the message is posted to."""

    def url(self, url: str, ex: Exchange) -> str:
        if ex.method == "POST" and ex.path.startswith("/conversation/"):
            return f"{url}/conversation/{self.values['cid']}"
        return url + ex.target

    def headers(self, ex: Exchange) -> dict[str, str]:
        cookie = self.values.get("cookie")
        return {**ex.request_headers, "cookie": cookie} if cookie else ex.request_headers

    def learn(self, response: httpx.Response, ex: Exchange) -> None:
        for value in response.headers.get_list("set-cookie"):
            self.values["cookie"] = value.split(";", 1)[0]
        if ex.method == "POST" and ex.path == "/conversation":
            self.values["cid"] = response.json()["conversationId"]


# -- scenarios ------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One provider on main: its contract fake, token scaling, raw parser and model."""

    name: str
    make_fake: Callable[[], Any]
    scale: Callable[[Any, int], None]
    extractor: type[Extractor]
    model: str | None = None
    note: str = ""
    live: type[LiveState] | None = None
    """Set for the ``LIVE_ONLY`` providers: the raw loop runs against the live fake."""

    @property
    def model_name(self) -> str:
        return self.model or self.name


def _scale_spaces(fake: Any, n: int) -> None:
    from tests.fakes.gradio_space import SpaceScript

    fake.fake.script = SpaceScript(chunks=make_chunks(n))


def _scale_tgi(fake: Any, n: int) -> None:
    from tests.fakes.hub import HubScript
    from tests.fakes.tgi import TGIScript

    fake.tgi.script = TGIScript(tokens=make_chunks(n))
    fake.hub.script = HubScript()


def _scale_openai(fake: Any, n: int) -> None:
    from tests.fakes.openai_server import OpenAIScript

    fake.fake.script = OpenAIScript(chunks=make_chunks(n))


def _scale_replicate(fake: Any, n: int) -> None:
    from tests.fakes.replicate import ReplicateScript

    fake.fake.reset(ReplicateScript(tokens=make_chunks(n)))


def _scale_ai2(fake: Any, n: int) -> None:
    from tests.fakes.ai2 import Ai2Script

    fake.fake.script = Ai2Script(chunks=make_chunks(n))


def _scale_h2o(fake: Any, n: int) -> None:
    from tests.fakes.h2o import H2oScript

    fake.fake.script = H2oScript(tokens=make_chunks(n))


LIVE_ONLY: dict[str, Callable[[Any, int], None]] = {
    "replicate": _scale_replicate,
    "ai2": _scale_ai2,
    "h2o": _scale_h2o,
}
"""Providers whose protocol carries per-request state (a prediction URL, a session
cookie, a conversation id): measured against the live fake in a child process; their
raw loop repeats a recorded llmrelay stream's requests with that state (``LiveState``)."""

_LIVE_RAW: dict[str, tuple[type[Extractor], type[LiveState]]] = {
    "replicate": (ReplicateExtractor, ReplicateState),
    "ai2": (Ai2Extractor, LiveState),
    "h2o": (H2oExtractor, H2oState),
}


def live_scenarios() -> list[Scenario]:
    """The ``LIVE_ONLY`` providers that have a contract fake on this branch."""
    from tests.contract.conftest import FAKES

    return [
        Scenario(name, FAKES[name], scale, *_LIVE_RAW[name][:1], live=_LIVE_RAW[name][1])
        for name, scale in LIVE_ONLY.items()
        if name in FAKES
    ]


def scenarios() -> list[Scenario]:
    """Every provider on main that has a contract fake (plus the ``kind = "openai"`` one)."""
    from tests.contract.conftest import FAKES
    from tests.contract.fake_openai_compat import NAME, OpenAICompatContractFake

    known: dict[str, tuple[Callable[[Any, int], None], type[Extractor]]] = {
        "hf_spaces": (_scale_spaces, GradioExtractor),
        "huggingface": (_scale_tgi, TGIExtractor),
    }
    out = [
        Scenario(name, factory, *known[name]) for name, factory in FAKES.items() if name in known
    ]
    out.append(Scenario(NAME, OpenAICompatContractFake, _scale_openai, OpenAIExtractor))
    missing = sorted(set(FAKES) - set(known) - set(LIVE_ONLY))
    if missing:
        print(f"note: no benchmark scenario yet for {', '.join(missing)}", file=sys.stderr)
    return out


# -- recording ------------------------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    target: str  # path?query
    request_headers: dict[str, str]
    request_body: bytes
    status: int = 0
    content_type: str = ""
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def streamed(self) -> bool:
        return self.content_type.startswith(STREAMED)


class RecordingApp:
    """ASGI middleware keeping every exchange (request + whole response)."""

    KEEP = ("content-type", "authorization", "accept", "cache-control", "x-anonymous-user-id")

    def __init__(self, app: Any) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode()
        headers = {
            k.decode().lower(): v.decode()
            for k, v in scope["headers"]
            if k.decode().lower() in self.KEEP
        }
        target = scope["path"] + (f"?{query}" if query else "")
        exchange = Exchange(scope["method"], target, headers, b"")
        with self.lock:
            self.exchanges.append(exchange)

        async def recv() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                exchange.request_body += message.get("body", b"")
            return message

        async def snd(message: Any) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                for k, v in message.get("headers", []):
                    if k.lower() == b"content-type":
                        exchange.content_type = v.decode()
            elif message["type"] == "http.response.body":
                exchange.body += message.get("body", b"")
            await send(message)

        await self.app(scope, recv, snd)


@dataclass
class Recording:
    """What one scenario's replay serves and what one warm stream requests."""

    scenario: Scenario
    tokens: int
    routes: list[Exchange]
    per_stream: list[Exchange]
    client_kwargs: Callable[[str], dict[str, Any]] = field(repr=False)


def record(scenario: Scenario, tokens: int) -> Recording:
    """Run llmrelay twice against the live fake; keep the exchanges of both runs."""
    from tests.fakes._server import serve

    fake = scenario.make_fake()
    fake.ok()
    scenario.scale(fake, tokens)
    app = RecordingApp(fake.app)

    async def run(url: str) -> None:
        async with llmrelay.AsyncClient(**fake.prepare_client_kwargs(url)) as client:
            for _ in range(2):
                async for _event in client.stream(PROMPT, model=scenario.model_name):
                    pass
                fake.wait_closed(5)
                mark.append(len(app.exchanges))

    mark: list[int] = []
    with serve(app) as url:
        asyncio.run(run(url))
    routes: dict[tuple[str, str], Exchange] = {}
    for ex in app.exchanges:
        routes[(ex.method, ex.path)] = ex
    return Recording(
        scenario,
        tokens,
        list(routes.values()),
        app.exchanges[mark[0] : mark[1]],
        fake.prepare_client_kwargs,
    )


# -- replay server process ------------------------------------------------------------------


class ReplayServer:
    """``_replay.py`` in a child process serving ``routes``; ``url`` once it listens."""

    def __init__(self, routes: list[Exchange], pace: float = 0.0, uvloop: bool = True) -> None:
        handle, name = tempfile.mkstemp(suffix=".json", prefix="llmrelay-replay-")
        items = [
            {
                "method": ex.method,
                "path": ex.path,
                "status": ex.status,
                "content_type": ex.content_type,
                "body": ex.body.decode("latin-1"),
            }
            for ex in routes
        ]
        with os.fdopen(handle, "w") as f:
            json.dump(items, f)
        self.file = Path(name)
        args = [sys.executable, str(Path(__file__).with_name("_replay.py")), name]
        args += ["--pace", str(pace)] + (["--uvloop"] if uvloop else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError("the replay server did not start")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.file.unlink(missing_ok=True)

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- raw loops --------------------------------------------------------------------------------


async def raw_deltas(http: httpx.AsyncClient, url: str, rec: Recording) -> AsyncIterator[str]:
    """The minimal correct raw loop: same requests, bytes split on ``\\n`` by hand.

    For a live scenario the per-request state (``Scenario.live``) is learnt from the
    answers as it goes.
    """
    context: list[Any] = []
    state = (rec.scenario.live or LiveState)()
    for ex in rec.per_stream:
        target, headers = state.url(url, ex), state.headers(ex)
        if not ex.streamed:
            response = await http.request(
                ex.method, target, content=ex.request_body, headers=headers
            )
            state.learn(response, ex)
            if response.headers.get("content-type", "").startswith("application/json"):
                context.append(response.json())
            continue
        extractor = rec.scenario.extractor(context)
        line = extractor.line
        async with http.stream(
            ex.method, target, content=ex.request_body, headers=headers
        ) as response:
            buffer = b""
            async for chunk in response.aiter_bytes():
                *lines, buffer = (buffer + chunk).split(b"\n")
                for raw in lines:
                    delta = line(raw.rstrip(b"\r"))
                    if delta:
                        yield delta
                    if extractor.done:
                        return


async def raw_deltas_aiohttp(session: Any, url: str, rec: Recording) -> AsyncIterator[str]:
    """``raw_deltas`` with an ``aiohttp.ClientSession`` (the baseline of llmrelay's aiohttp
    transport): same requests, same splitting. A non-streamed answer the live state learns
    from is handed to it as an ``httpx.Response`` (its headers and body)."""
    context: list[Any] = []
    state = (rec.scenario.live or LiveState)()
    for ex in rec.per_stream:
        target, headers = state.url(url, ex), state.headers(ex)
        if not ex.streamed:
            async with session.request(
                ex.method, target, data=ex.request_body or None, headers=headers
            ) as answer:
                body = await answer.read()
                response = httpx.Response(answer.status, headers=answer.raw_headers, content=body)
            state.learn(response, ex)
            if response.headers.get("content-type", "").startswith("application/json"):
                context.append(response.json())
            continue
        extractor = rec.scenario.extractor(context)
        line = extractor.line
        async with session.request(
            ex.method, target, data=ex.request_body or None, headers=headers
        ) as response:
            buffer = b""
            async for chunk in response.content.iter_any():
                *lines, buffer = (buffer + chunk).split(b"\n")
                for raw in lines:
                    delta = line(raw.rstrip(b"\r"))
                    if delta:
                        yield delta
                    if extractor.done:
                        return


def aiohttp_session() -> Any:
    """An aiohttp session as the raw baselines use it: no connection limit, no cookies."""
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
    )


def raw_deltas_sync(http: httpx.Client, url: str, rec: Recording) -> Iterator[str]:
    """``raw_deltas`` with a sync ``httpx.Client`` (the baseline of ``Client.stream``)."""
    context: list[Any] = []
    state = (rec.scenario.live or LiveState)()
    for ex in rec.per_stream:
        target, headers = state.url(url, ex), state.headers(ex)
        if not ex.streamed:
            response = http.request(ex.method, target, content=ex.request_body, headers=headers)
            state.learn(response, ex)
            if response.headers.get("content-type", "").startswith("application/json"):
                context.append(response.json())
            continue
        extractor = rec.scenario.extractor(context)
        line = extractor.line
        with http.stream(ex.method, target, content=ex.request_body, headers=headers) as response:
            buffer = b""
            for chunk in response.iter_bytes():
                *lines, buffer = (buffer + chunk).split(b"\n")
                for raw in lines:
                    delta = line(raw.rstrip(b"\r"))
                    if delta:
                        yield delta
                    if extractor.done:
                        return


class LiveFakeServer:
    """A provider's contract fake, scaled to ``tokens``, served from a child process."""

    def __init__(self, scenario: Scenario, tokens: int) -> None:
        self.scenario = scenario
        args = [sys.executable, __file__, "--serve-fake", scenario.name, str(tokens)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("URL "):
            self.close()
            raise RuntimeError(f"the {scenario.name} fake did not start")
        self.url = line.split()[1]
        self.client_kwargs = scenario.make_fake().prepare_client_kwargs

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> LiveFakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve_fake(name: str, tokens: int) -> None:
    """Child process of ``LiveFakeServer``: serve until stdin closes."""
    from tests.contract.conftest import FAKES
    from tests.fakes._server import serve

    fake = FAKES[name]()
    fake.ok()
    LIVE_ONLY[name](fake, tokens)
    with serve(fake.app) as url:
        print(f"URL {url}", flush=True)
        sys.stdin.read()


def rss_kib() -> int:
    """Current resident set size of this process, KiB (Linux ``/proc``)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__" and sys.argv[1:2] == ["--serve-fake"]:
    _serve_fake(sys.argv[2], int(sys.argv[3]))
