"""The sixteen failover scenarios, run through llmrelay and scored as failoverbench scores them.

``fault_wall`` (``tests/fakes/fault_wall.py``) is the faulty provider; llmrelay is put
in front of it the way failoverbench's methodology runs a gateway: one OpenAI-compatible
provider for the primary models and the healthy fallback (``wall``, which continues a
partial answer: ``prefill = true``), a second one for the fallback that refuses a
prefill (``wall_np``), and one alias per scenario, ``sNN = ["wall:sNN", fallback]``.
``run_scenario`` makes the scenario's call through a *system* -- ``Library``
(``AsyncClient.stream`` with the alias) or ``Server`` (``llmrelay serve`` on loopback,
read by a careful OpenAI-style SSE client) -- under a hard limit, then scores it from
both views, the caller's result and the wall's attempt log, with the catalogue's checks
(``CHECKS``): ``pass`` (the ideal outcome, every check clean), ``partial`` (rescued, an
advisory check failed), ``safe`` (a bounded clean error, every required check clean),
``fail``. Thresholds scale with the wall's timings, so the short test profile and the
catalogue's full one are judged alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import llmrelay
from llmrelay.server import ServerConfig, create_app
from tests.fakes._server import TestServer
from tests.fakes.fault_wall import ANSWER, FaultWall, Timing

__all__ = [
    "IDS",
    "Library",
    "Result",
    "Server",
    "System",
    "config_file",
    "run_scenario",
]

IDS = [f"S{n:02d}" for n in range(1, 17)]
PROMPT = "Why does a relay earn trust only when a provider misbehaves? Sixty words."


def config_file(directory: Path, wall: FaultWall) -> Path:
    """The llmrelay config: the wall twice (with and without prefill) and an alias each."""
    lines = [
        "[providers.wall]",
        'kind = "openai"',
        f'base_url = "{wall.url}"',
        "prefill = true",
        "",
        "[providers.wall_np]",
        'kind = "openai"',
        f'base_url = "{wall.url}"',
        "",
        "[aliases]",
    ]
    for sid in IDS:
        fallback = "wall_np:ok-noprefill" if sid == "S14" else "wall:ok"
        lines.append(f'{sid.lower()} = ["wall:{sid.lower()}", "{fallback}"]')
    path = directory / "failover.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Call:
    """What the caller got from one call."""

    ok: bool
    content: str = ""
    error: str | None = None
    code: str | None = None
    hang: bool = False
    model: str | None = None
    usage: Any = None
    elapsed: float = 0.0
    attempts: list[dict[str, Any]] = field(default_factory=list)


def _norm(text: str) -> str:
    return " ".join(text.split())


class System:
    """A way of calling llmrelay (``Library`` or ``Server``)."""

    name = "system"

    async def call(self, alias: str) -> Call:  # pragma: no cover - abstract
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the system holds."""


class Library(System):
    """``AsyncClient.stream(PROMPT, model=alias)``, collected."""

    name = "library"

    def __init__(self, config: Path, **client_kwargs: Any) -> None:
        self.client = llmrelay.AsyncClient(config_path=str(config), **client_kwargs)

    async def call(self, alias: str) -> Call:
        stream = self.client.stream(PROMPT, model=alias)
        try:
            async with stream:
                completion = await stream.collect()
        except llmrelay.LLMRelayError as exc:
            cause = getattr(exc, "cause", exc)
            return Call(
                False,
                stream.text,
                f"{type(exc).__name__}: {exc}",
                getattr(cause, "code", None),
                attempts=[a.to_dict() for a in stream.attempts],
            )
        return Call(
            True,
            completion.text,
            model=f"{completion.provider}:{completion.model}",
            usage=completion.usage,
            attempts=[a.to_dict() for a in completion.attempts],
        )

    async def aclose(self) -> None:
        """Close the client."""
        await self.client.aclose()


class Server(System):
    """``llmrelay serve`` on loopback, read as a careful OpenAI SSE client reads it.

    An in-band ``{"error": ...}`` event is an error whatever came before it; a stream
    that ends (with or without ``[DONE]``) after content is a success with that content.
    """

    name = "server"

    def __init__(self, config: Path, **client_kwargs: Any) -> None:
        kwargs = {"config_path": str(config), **client_kwargs}
        app = create_app(config=ServerConfig(client_kwargs=kwargs))
        self._stack = contextlib.ExitStack()
        self.url = self._stack.enter_context(_run(app))
        self.http = httpx.AsyncClient(base_url=self.url, timeout=None)

    async def call(self, alias: str) -> Call:
        body = {
            "model": alias,
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        parts: list[str] = []
        model = usage = None
        try:
            async with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
                attempts = json.loads(response.headers.get("x-llmrelay-attempts") or "[]")
                if response.status_code != 200:
                    error = json.loads(await response.aread()).get("error", {})
                    return Call(
                        False,
                        error=f"HTTP {response.status_code}: {error.get('message')}",
                        code=error.get("code"),
                        attempts=attempts,
                    )
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("error"):
                        error = chunk["error"]
                        return Call(
                            False,
                            "".join(parts),
                            f"in-band error: {error.get('message')}",
                            error.get("code"),
                            model=model,
                        )
                    model = chunk.get("model") or model
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            parts.append(text)
        except httpx.HTTPError as exc:
            return Call(False, "".join(parts), f"{type(exc).__name__}: {exc}")
        return Call(True, "".join(parts), model=model, usage=usage, attempts=attempts)

    async def aclose(self) -> None:
        """Stop the server."""
        await self.http.aclose()
        self._stack.close()


@contextlib.contextmanager
def _run(app: Any) -> Iterator[str]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
    )
    server = TestServer(config)
    thread = threading.Thread(target=server.run, name="failover-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- scoring --------------------------------------------------------------------------


@dataclass
class Measure:
    """Both views of one scenario: the caller's result and the wall's log."""

    call: Call
    primary: list[float]
    fallback: int
    prefill_rejections: int
    alive: bool = True
    seq: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """``"success"``, ``"error"`` or ``"hang"``."""
        if self.call.hang:
            return "hang"
        return "success" if self.call.ok else "error"

    @property
    def complete(self) -> bool:
        """The content is the whole canonical answer."""
        return _norm(self.call.content) == _norm(ANSWER)

    def within(self, window: float) -> int:
        """Primary attempts inside the first ``window`` seconds."""
        return sum(1 for t in self.primary if t - self.primary[0] < window) if self.primary else 0


Check = tuple[str, str, Callable[[Measure], bool]]
"""(name, ``"required"`` | ``"advisory"`` | ``"info"``, predicate)."""


def _checks(sid: str, t: Timing) -> list[Check]:
    """The catalogue's checks of scenario ``sid``, thresholds scaled to ``t``."""
    no_hang: Check = ("no_hang", "required", lambda m: m.outcome != "hang")
    untruncated: Check = (
        "no_truncated_success",
        "required",
        lambda m: not (m.outcome == "success" and not m.complete),
    )
    alive: Check = ("alive_after", "required", lambda m: m.alive)
    scale = t.no_response / 120.0
    table: dict[str, list[Check]] = {
        "S01": [
            ("retried", "advisory", lambda m: len(m.primary) >= 2),
            (
                "retry_after_honoured",
                "advisory",
                lambda m: (
                    len(m.primary) >= 2 and m.primary[1] - m.primary[0] >= 0.9 * t.retry_after
                ),
            ),
            ("no_hammer", "required", lambda m: m.within(1.5) <= 2),
        ],
        "S02": [
            ("no_hammer", "required", lambda m: m.within(3.0) <= 4),
            ("bounded_attempts", "required", lambda m: len(m.primary) <= 6),
            no_hang,
        ],
        "S03": [no_hang, ("same_provider_retry", "advisory", lambda m: len(m.primary) >= 2)],
        "S04": [("bounded_attempts", "required", lambda m: len(m.primary) <= 6), no_hang],
        "S05": [no_hang],
        "S06": [
            ("within_budget", "required", lambda m: m.call.elapsed <= 100 * scale),
            no_hang,
            ("silent_route_not_retried", "advisory", lambda m: len(m.primary) <= 1),
        ],
        "S07": [
            no_hang,
            ("ttft_limit", "advisory", lambda m: m.call.elapsed <= 0.75 * t.slow_ttft),
        ],
        "S08": [untruncated, no_hang],
        "S09": [
            ("bounded", "required", lambda m: m.call.elapsed <= 1.5 * t.stall),
            untruncated,
            alive,
            no_hang,
        ],
        "S10": [
            alive,
            untruncated,
            no_hang,
            ("recovered_in_place", "advisory", lambda m: m.complete),
        ],
        "S11": [
            ("prompt_finalise", "required", lambda m: m.call.elapsed <= 8),
            ("usage_reported", "advisory", lambda m: bool(m.call.usage)),
        ],
        "S12": [("no_same_model_retry", "required", lambda m: len(m.primary) == 1), no_hang],
        "S13": [
            ("no_same_model_retry", "required", lambda m: len(m.primary) == 1),
            no_hang,
            ("fallback_attempted", "info", lambda m: m.fallback >= 1),
        ],
        "S14": [
            (
                "no_prefill_masking",
                "required",
                lambda m: not (m.outcome == "error" and m.prefill_rejections > 0),
            ),
            untruncated,
        ],
        "S15": [
            ("no_hang", "required", lambda m: m.seq["hangs"] == 0),
            ("served_during_outage", "required", lambda m: m.seq["served"] == m.seq["during"] > 0),
            (
                "recovered",
                "required",
                lambda m: (
                    m.seq["recovered"] is not None
                    and m.seq["recovered"] <= max(t.flap_down / 2, 2.0)
                ),
            ),
            ("probe_discipline", "info", lambda m: m.seq["primary_during"] <= m.seq["during"]),
        ],
        "S16": [
            (
                "reports_fallback_model",
                "required",
                lambda m: (
                    m.fallback == 0 or (m.call.model or "").endswith(":ok") or m.call.model == "ok"
                ),
            ),
            ("usage_present", "advisory", lambda m: bool(m.call.usage)),
            ("bounded_attempts", "required", lambda m: len(m.primary) <= 6),
        ],
    }
    return table[sid]


def max_wall(sid: str, t: Timing) -> float:
    """The hard limit of one call of scenario ``sid`` (a call past it is a hang)."""
    scale = t.no_response / 120.0
    limits = {"S01": 20, "S02": 40, "S03": 20, "S04": 40, "S05": 20, "S06": 130, "S07": 60}
    limits |= {"S08": 40, "S09": 70, "S10": 30, "S11": 30, "S12": 20, "S13": 20, "S14": 40}
    base = limits.get(sid, 45)
    if sid in ("S06", "S07", "S09"):
        return max(5.0, base * scale)
    return float(base)


@dataclass
class Result:
    """One scored scenario."""

    sid: str
    verdict: str
    reason: str
    checks: dict[str, str]
    measure: Measure

    def line(self) -> str:
        """``S08 pass  rescued (...)``: one line for a report."""
        call = self.measure.call
        how = "; ".join(
            f"{a.get('provider')}:{a.get('model')} {a.get('outcome')}"
            + (f" ({a.get('message')})" if a.get("outcome") in ("rescued", "diverged") else "")
            for a in call.attempts
        )
        seq = self.measure.seq
        if seq:  # S15: the outage as the provider saw it
            how = (
                f"{seq['primary_during']} primary attempt(s) during the outage, "
                f"{seq['served']}/{seq['during']} request(s) served; primary used again "
                f"{seq['recovered']}s after it recovered"
            )
        return f"{self.sid} {self.verdict:<8} {call.elapsed:6.1f}s  {self.reason}  [{how}]"


def verdict(sid: str, checks: list[Check], m: Measure) -> tuple[str, str, dict[str, str]]:
    """The catalogue's verdict: pass, partial, safe or fail, with the reason."""
    states = {
        name: ("pass" if ok(m) else ("info" if sev == "info" else "fail"))
        for name, sev, ok in checks
    }
    if m.outcome == "hang":
        return "fail", "hang", states
    if m.outcome == "success" and not m.complete and sid != "S13":
        return "fail", "truncated answer presented as success", states
    required = [n for n, sev, _ in checks if sev == "required" and states[n] == "fail"]
    if required:
        return "fail", "failed: " + ", ".join(required), states
    advisory = [n for n, sev, _ in checks if sev == "advisory" and states[n] == "fail"]
    if sid == "S13":
        if m.outcome == "success":
            return "partial", "answered by routing around the rejection", states
        rescued = True
    else:
        rescued = m.outcome == "success" and m.complete
    if rescued:
        return (
            ("partial", "advisory: " + ", ".join(advisory), states)
            if advisory
            else (
                "pass",
                "rescued" if sid != "S13" else "clean error",
                states,
            )
        )
    return "safe", f"clean error: {(m.call.error or '')[:90]}", states


async def _guarded(system: System, alias: str, limit: float) -> Call:
    started = time.monotonic()
    try:
        call = await asyncio.wait_for(system.call(alias), timeout=limit + 1.0)
    except TimeoutError:
        call = Call(False, error=f"hang: no result within {limit:g}s", hang=True)
    call.elapsed = round(time.monotonic() - started, 3)
    return call


async def run_scenario(
    system: System,
    wall: FaultWall,
    sid: str,
    *,
    sequence: tuple[int, float] | None = None,
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Result:
    """Run scenario ``sid`` through ``system`` against ``wall`` and score it.

    Args:
        system: the llmrelay surface under test.
        wall: the running fault wall (reset here).
        sid: ``"S01"`` .. ``"S16"``.
        sequence: for S15, ``(count, interval)`` (default ``(20, 4.0)``, the catalogue's).
        pause: how to sleep between S15's requests.
    """
    t = wall.timing
    alias = sid.lower()
    primary = f"s{sid[1:]}"
    fallback = "ok-noprefill" if sid == "S14" else "ok"
    wall.reset()
    seq: dict[str, Any] = {}
    if sid == "S15":
        count, interval = sequence or (20, 4.0)
        started = time.monotonic()
        items: list[tuple[float, Call]] = []
        for index in range(count):
            delay = started + index * interval - time.monotonic()
            if delay > 0:
                await pause(delay)
            sent = time.monotonic() - started
            items.append((sent, await _guarded(system, alias, 30.0)))
        during = [c for s, c in items if s < t.flap_down]
        prim = wall.attempts(primary)
        recovered = [a.t for a in prim if a.action.startswith("200")]
        seq = {
            "hangs": sum(1 for _, c in items if c.hang),
            "during": len(during),
            "served": sum(1 for c in during if c.ok),
            "primary_during": sum(1 for a in prim if a.t < t.flap_down),
            "recovered": round(min(recovered) - t.flap_down, 3) if recovered else None,
        }
        last = items[-1][1]
        call = Call(
            all(c.ok for _, c in items),
            ANSWER if all(c.ok and _norm(c.content) == _norm(ANSWER) for _, c in items) else "",
            next((c.error for _, c in items if not c.ok), None),
            hang=seq["hangs"] > 0,
            attempts=last.attempts,
            elapsed=round(time.monotonic() - started, 3),
        )
    else:
        call = await _guarded(system, alias, max_wall(sid, t))
    log = list(wall.log)
    measure = Measure(
        call,
        [a.t for a in log if a.model == primary],
        sum(1 for a in log if a.model == fallback),
        sum(1 for a in log if a.action.startswith("400 prefill")),
        seq=seq,
    )
    alive = await _guarded(system, "wall:ok", 10.0)
    measure.alive = alive.ok and _norm(alive.content) == _norm(ANSWER)
    checks = _checks(sid, t)
    grade, reason, states = verdict(sid, checks, measure)
    return Result(sid, grade, reason, states, measure)


def grid(rows: dict[str, list[Result]]) -> str:
    """A scenario x verdict grid: one column per row name (``server defaults`` ...)."""
    names = list(rows)
    width = max(len(n) for n in names) + 2
    lines = ["scenario " + "".join(n.ljust(width) for n in names)]
    for index, sid in enumerate(IDS):
        cells = [rows[n][index].verdict if index < len(rows[n]) else "-" for n in names]
        lines.append(f"{sid:<9}" + "".join(c.ljust(width) for c in cells))
    totals = []
    for n in names:
        counts = {
            v: sum(1 for r in rows[n] if r.verdict == v)
            for v in ("pass", "partial", "safe", "fail")
        }
        totals.append("/".join(str(counts[v]) for v in ("pass", "partial", "safe", "fail")))
    lines.append("p/pa/s/f " + "".join(c.ljust(width) for c in totals))
    return "\n".join(lines)
