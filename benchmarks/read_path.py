"""CPU of llmrelay's outbound path without sockets: the stream read loop and the request build.

``python benchmarks/read_path.py [--rounds R] [--streams N] [--events E] [--before SRC]``

Two figures, each from a child interpreter per source tree (``R`` rounds, the trees
interleaved in alternating order; the best of three timed batches per child):

* **read loop** (µs per stream): ``providers._openai_stream.stream_chat`` reading an
  OpenAI chat-completions answer of ``E`` content chunks, the finish chunk, the usage
  chunk and ``[DONE]``, each chunk one read (as a paced upstream delivers them), from a
  response built like the aiohttp transport's: the chunk reader of ``READ_EXTENSION``
  (a coroutine wrapping the raw read) and, when the tree knows it,
  ``RAW_READ_EXTENSION``. No sockets, no engine: SSE decoding, the chunk parser, JSON,
  the drain after ``[DONE]`` and the generator layers between them.
* **provider** (µs per stream): the same answer through the OpenAI-compatible provider's
  ``stream(request)`` (``OpenAICompatible``, a configured ``kind = "openai"`` provider;
  its checks and payload, and whatever layer it puts between ``stream_chat`` and the
  engine). The response also tells that its body is in whole at ``[DONE]``
  (``BODY_DONE_EXTENSION``, when the tree knows it), as aiohttp's does when the
  upstream's last write holds the body's end.
* **build** (µs per request): ``_Client.build_request("POST", url, json=..., headers=...)``
  of the aiohttp transport's client, as a provider calls it.

CPU is ``time.process_time``; the machine's other load moves the figures (compare the
trees of one run, never figures of two runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _frame(value: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(value, separators=(",", ":")).encode() + b"\n\n"


def _chunks(events: int) -> list[bytes]:
    base = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion.chunk",
        "created": 1733000000,
        "model": "m",
    }
    out = [
        _frame(
            {
                **base,
                "choices": [{"index": 0, "delta": {"content": f" w{i}"}, "finish_reason": None}],
            }
        )
        for i in range(events)
    ]
    out.append(_frame({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    usage = {"prompt_tokens": 5, "completion_tokens": events, "total_tokens": events + 5}
    out.append(_frame({**base, "choices": [], "usage": usage}))
    out.append(b"data: [DONE]\n\n")
    return out


async def _read_loop(streams: int, events: int, provider: bool = False) -> float:
    import httpx

    from llmrelay import _transport
    from llmrelay.providers._openai_compat import OpenAICompatible
    from llmrelay.providers._openai_stream import stream_chat
    from llmrelay.types import ChatRequest, Message

    raw_key = getattr(_transport, "RAW_READ_EXTENSION", None)
    done_key = getattr(_transport, "BODY_DONE_EXTENSION", None)
    chunks = _chunks(events)

    class Body(httpx.AsyncByteStream):
        async def aclose(self) -> None:
            return None

    class Opened:
        async def __aenter__(self) -> httpx.Response:
            left = chunks[::-1]
            pop = left.pop

            async def readany() -> bytes:
                return pop() if left else b""

            async def read() -> bytes:  # as the transports' READ_EXTENSION reader
                try:
                    return await readany()
                except OSError as exc:
                    raise httpx.ReadError(str(exc)) from exc

            extensions: dict[str, Any] = {_transport.READ_EXTENSION: read}
            if raw_key is not None:
                extensions[raw_key] = (readany, (OSError,), lambda e: httpx.ReadError(str(e)))
            if done_key is not None:
                extensions[done_key] = lambda: not left
            self.response = httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                stream=Body(),
                extensions=extensions,
            )
            return self.response

        async def __aexit__(self, *exc_info: object) -> None:
            await self.response.aclose()

    class Http:
        def stream(self, method: str, url: str, **kwargs: Any) -> Opened:
            return Opened()

    http: Any = Http()
    table = {"kind": "openai", "base_url": "http://x/v1", "models": ["m"], "api_key": "sk-t"}
    local = OpenAICompatible.from_config("local", table)(http)
    request = ChatRequest(messages=(Message("user", "Count for me."),), model="m")

    async def one() -> None:
        n = 0
        if provider:
            source = local.stream(request)
        else:
            source = stream_chat(
                http,
                "http://x/v1/chat/completions",
                {"model": "m"},
                headers={},
                provider="p",
                model="m",
            )
        async for _ in source:
            n += 1
        assert n == events + 2, n  # the texts, the usage and the finish

    for _ in range(max(1, streams // 10)):
        await one()
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(streams):
            await one()
        best = min(best, (time.process_time() - start) / streams * 1e6)
    return best


def _build(requests: int) -> float:
    from llmrelay import Timeouts
    from llmrelay._transport import make_http_client

    http = make_http_client(Timeouts(), transport="aiohttp")
    url = "http://127.0.0.1:9/v1/chat/completions"
    payload = {
        "model": "m",
        "messages": [{"role": "user", "content": "Count for me."}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"accept": "text/event-stream", "Authorization": "Bearer sk-test"}
    for _ in range(max(1, requests // 10)):
        http.build_request("POST", url, json=payload, headers=headers)
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(requests):
            http.build_request("POST", url, json=payload, headers=headers)
        best = min(best, (time.process_time() - start) / requests * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=1000, help="streams per timed batch")
    parser.add_argument("--events", type=int, default=50, help="content chunks per stream")
    parser.add_argument("--before", help="also measure this checkout's src")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        read = asyncio.run(_read_loop(args.streams, args.events))
        through = asyncio.run(_read_loop(args.streams, args.events, provider=True))
        print(read, through, _build(args.streams * 10))
        return
    trees = [("after", str(ROOT / "src"))]
    if args.before:
        trees.insert(0, ("before", args.before))
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in trees}
    for r in range(args.rounds):
        for name, src in trees if r % 2 == 0 else trees[::-1]:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    *("--streams", str(args.streams)),
                    *(
                        "--events",
                        str(args.events),
                    ),
                ],
                env={**os.environ, "PYTHONPATH": src},
                check=True,
                capture_output=True,
                text=True,
            )
            read, through, build = (float(x) for x in out.stdout.split())
            figures[name].append((read, through, build))
    print(f"{args.events} content chunks per stream, {args.rounds} rounds (best of 3 per round)")
    print(
        f"{'tree':8} {'read loop µs/stream median':>27} {'best':>7} "
        f"{'provider µs/stream median':>26} {'best':>7} {'build µs/req median':>20} {'best':>6}"
    )
    for name, values in figures.items():
        reads = [v[0] for v in values]
        throughs = [v[1] for v in values]
        builds = [v[2] for v in values]
        print(
            f"{name:8} {statistics.median(reads):27.1f} {min(reads):7.1f} "
            f"{statistics.median(throughs):26.1f} {min(throughs):7.1f} "
            f"{statistics.median(builds):20.2f} {min(builds):6.2f}"
        )


if __name__ == "__main__":
    main()
