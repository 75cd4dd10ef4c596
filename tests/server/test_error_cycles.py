"""An error reply is freed by reference counting, as a successful request is.

A raised error's traceback holds the frames it passed through, and those frames the
objects that kept the error (the chat stream that raises it again, the engine's trial
loop that remembers the last failure): before ``error_reply`` dropped the tracebacks, an
unknown model or an upstream 500 left 90-160 objects (frames, tracebacks, the stream,
the request body) in reference cycles, for the cyclic collector, whose full collections
pause every request being served. Each request here goes through ``serve``'s protocol and
app in this process with the collector off (``DEBUG_SAVEALL``: what it would have freed is
kept in ``gc.garbage``); the upstream is the OpenAI fake on loopback plus a scripted
provider. ``tests/server/test_inbound_cost.py`` checks the successful stream.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import pytest
from tests.fakes._server import serve
from tests.fakes._streaming import Fault
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript
from tests.server import scripted
from tests.server.test_inbound_cost import _connected

import llmrelay
from llmrelay.server import ServerConfig, create_app

pytest.importorskip("httptools")

HELD = {
    "frame",
    "traceback",
    "AsyncChatStream",
    "TrialLoop",
    "OpenPhase",
    "RequestResponseCycle",
    "ChatCompletionRequest",
}
"""What a request leaves behind when its error's traceback is in a cycle (none of it is
garbage after a successful request: the harness's own garbage is uvicorn's logging set-up)."""


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        yield fake, url


def _request(path: str, body: dict[str, Any]) -> bytes:
    raw = json.dumps(body).encode()
    return (
        f"POST /v1/{path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    ).encode() + raw


CHAT = [{"role": "user", "content": "hi"}]
CASES = {
    "answered": ("chat/completions", {"model": "beta:m", "messages": CHAT}, 200),  # control
    "unknown-model": ("chat/completions", {"model": "nope:x", "messages": CHAT}, 404),
    "unknown-model-stream": (
        "chat/completions",
        {"model": "nope:x", "messages": CHAT, "stream": True},
        404,
    ),
    "upstream-500": ("chat/completions", {"model": "local:fake-model", "messages": CHAT}, 503),
    "upstream-500-stream": (
        "chat/completions",
        {"model": "local:fake-model", "messages": CHAT, "stream": True},
        503,
    ),
    "every-candidate": ("chat/completions", {"model": "chain", "messages": CHAT}, 502),
    "messages-unknown-model": (
        "messages",
        {"model": "nope:x", "max_tokens": 5, "messages": CHAT},
        404,
    ),
    "responses-unknown-model": ("responses", {"model": "nope:x", "input": "hi"}, 404),
    "embeddings-upstream-500": ("embeddings", {"model": "local:fake-model", "input": "x"}, 503),
}


_OURS = (str(Path(llmrelay.__file__).parent), str(Path(__file__).parent))


def _kind(obj: object) -> str:
    """What ``obj`` is, as ``HELD`` names it; ``""`` for what is not this request's.

    A frame or traceback counts when its code is llmrelay's (or this test's server), an
    exception when it is an ``LLMRelayError``: a pooled connection the fake closed can
    leave httpcore's own exception and frames in a cycle, which is no part of the reply.
    """
    frame = obj.tb_frame if isinstance(obj, TracebackType) else obj
    if isinstance(frame, FrameType):
        ours = frame.f_code.co_filename.startswith(_OURS)
        return type(obj).__name__ if ours else ""
    if isinstance(obj, BaseException):
        return "exception" if isinstance(obj, llmrelay.LLMRelayError) else ""
    return type(obj).__name__


@pytest.mark.parametrize("case", list(CASES))
def test_an_error_reply_leaves_no_reference_cycle(
    case: str, upstream: tuple[FakeOpenAI, str], tmp_path: Path
) -> None:
    path, body, status = CASES[case]
    fake, url = upstream
    fake.script = OpenAIScript(fault=Fault("http_error", status=500))
    scripted.reset()
    scripted.SCRIPTS["alpha"] = [llmrelay.ProviderUnavailable("down", provider="alpha")]
    config = tmp_path / "config.toml"
    config.write_text(
        f'[providers.local]\nkind = "openai"\nbase_url = "{url}/v1"\nmodels = ["fake-model"]\n'
        '[aliases]\nchain = ["local:fake-model", "alpha:m"]\n'
    )
    client = llmrelay.AsyncClient(
        providers=list(scripted.ALL), config_path=str(config), retries=0, cooldown=0
    )
    app = create_app(client, config=ServerConfig())
    request = _request(path, body)

    async def one() -> bytes:
        proto = _connected("httptools", app, request)
        for _ in range(1000):  # the upstream is a real socket: wait in real time
            await asyncio.sleep(0.005)
            if proto.cycle is not None and proto.cycle.response_complete:
                break
        assert proto.cycle.response_complete
        for _ in range(5):
            await asyncio.sleep(0)
        proto.connection_lost(None)
        return b"".join(e for e in proto.transport.events if isinstance(e, bytes))

    async def run() -> tuple[bytes, set[str]]:
        await one()  # the first request imports and builds what later ones reuse
        gc.collect()
        enabled, flags = gc.isenabled(), gc.get_debug()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            out = await one()
            gc.collect()
            kinds = {_kind(o) for o in gc.garbage}
        finally:
            gc.set_debug(flags)
            gc.garbage.clear()
            if enabled:
                gc.enable()
        await client.aclose()
        return out, kinds

    out, kinds = asyncio.run(run())
    assert out.startswith(f"HTTP/1.1 {status} ".encode())
    held = kinds & (HELD | {"exception"})
    assert not held, f"held in reference cycles after a {status}: {sorted(held)}"
