"""Is the fake Space faithful?  The real Gradio server (scripts/demo_space.py) vs FakeSpace.

Only plain httpx and gradio_client's own ``apply_diff`` are used (no llmrelay code).  The real
server is whatever Gradio is installed (6.x here), compared with the fake in that version.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes._server import serve
from tests.fakes.gradio_space import FakeSpace, SpaceScript, Version, api_prefix, diff
from tests.gradio_servers import CHATINTERFACE, launch_subprocess

pytestmark = pytest.mark.gradio
gradio = pytest.importorskip("gradio")
apply_diff: Callable[[Any, Any], Any] = pytest.importorskip("gradio_client.utils").apply_diff

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo_space.py"
PROMPT, SYSTEM = "Привет 👋 la la", "Be brief.\nReally."
VERSION: Version = gradio.__version__.split(".", 1)[0]
IO_KEYS = ("id", "api_name", "targets", "inputs", "outputs")


def _load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_space", DEMO)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("demo_space", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    return _load_demo()


@pytest.fixture(scope="module")
def real_url(demo: ModuleType) -> Iterator[str]:
    url, close = demo.launch_in_thread()
    try:
        yield url
    finally:
        close()


@pytest.fixture(scope="module")
def fake_url(demo: ModuleType) -> Iterator[str]:
    if VERSION not in ("4", "5", "6"):
        pytest.skip(f"no fake for Gradio {gradio.__version__}")
    fake = FakeSpace(SpaceScript(version=VERSION, chunks=demo.answer_chunks(PROMPT, SYSTEM)))
    with serve(fake.app) as url:
        yield url


def _model_chat(config: dict[str, Any]) -> dict[str, Any]:
    deps: list[dict[str, Any]] = config["dependencies"]
    (dep,) = [d for d in deps if d.get("api_name") == "model_chat"]
    return dep


def _conversation(url: str, session: str, data: list[Any] | None = None) -> list[dict[str, Any]]:
    """config -> join -> data; every message except heartbeats."""
    with httpx.Client(base_url=url, timeout=30) as client:
        config = client.get("/config").json()
        prefix = config.get("api_prefix", "")
        dep = _model_chat(config)
        body = {"data": data if data is not None else [PROMPT, [], SYSTEM],
                "event_data": None, "fn_index": dep["id"], "trigger_id": dep["targets"][0][0],
                "session_hash": session}  # fmt: skip
        join = client.post(f"{prefix}/queue/join?", json=body)
        assert join.status_code == 200, join.text
        with client.stream("GET", f"{prefix}/queue/data", params={"session_hash": session}) as r:
            assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
            lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    messages = [json.loads(line[6:]) for line in lines]
    return [m for m in messages if m["msg"] != "heartbeat"]


def _reconstruct(messages: list[dict[str, Any]]) -> list[Any]:
    generating = [m["output"]["data"] for m in messages if m["msg"] == "process_generating"]
    values: list[Any] = generating[0]
    for diffs in generating[1:]:
        values = [apply_diff(value, d) for value, d in zip(values, diffs, strict=True)]
    return values


def test_config_matches(real_url: str, fake_url: str) -> None:
    real = httpx.get(f"{real_url}/config").json()
    fake = httpx.get(f"{fake_url}/config").json()
    for key in ("version", "protocol"):
        assert key in real
        assert key in fake
    assert real["protocol"] == fake["protocol"] == "sse_v3"
    assert real.get("api_prefix") == fake.get("api_prefix") == (api_prefix(VERSION) or None)
    real_dep, fake_dep = _model_chat(real), _model_chat(fake)
    assert set(IO_KEYS) <= set(real_dep)
    assert set(IO_KEYS) <= set(fake_dep)
    assert set(fake_dep) <= set(real_dep), set(fake_dep) - set(real_dep)
    assert real_dep["id"] == fake_dep["id"] == 0
    assert len(real_dep["inputs"]) == len(fake_dep["inputs"]) == 3
    real_types = {c["id"]: c["type"] for c in real["components"]}
    fake_types = {c["id"]: c["type"] for c in fake["components"]}
    assert [real_types[i] for i in real_dep["inputs"]] == [
        fake_types[i] for i in fake_dep["inputs"]
    ]
    assert _wiring(real) == _wiring(fake)


def _wiring(config: dict[str, Any]) -> dict[str, Any]:
    """Every dependency's wiring and visibility, and each component it touches (type,
    label, visibility, default): the layout discovery reads (the Qwen Space's hidden,
    unlabelled ``system_state`` box, its "System" box written by model_chat)."""
    components = {c["id"]: c for c in config["components"]}
    # ids as a fresh server numbers them (an in-process server counts on from the
    # components of apps built before it in the same process)
    base = min(components) - 1

    def component(cid: int) -> tuple[Any, ...]:
        props = components[cid]["props"]
        return (components[cid]["type"], props.get("label"), props.get("visible"),
                props.get("value"), props.get("type"))  # fmt: skip

    def ids(values: list[int]) -> list[int]:
        return [i - base for i in values]

    deps = config["dependencies"]
    return {
        "deps": [
            (d["id"], d["api_name"], [[t[0] - base, t[1]] for t in d["targets"]],
             ids(d["inputs"]), ids(d["outputs"]), d.get("api_visibility"), d.get("show_api"))
            for d in deps
        ],
        "components": {i - base: component(i) for d in deps
                       for i in [*d["inputs"], *d["outputs"]]},
        "all": sorted((c["id"] - base, c["type"]) for c in config["components"]),
    }  # fmt: skip


def test_gradio4_config_matches(demo: ModuleType, gradio4_python: str) -> None:
    """The fake's Gradio 4 layout, ``/info`` and answers to gradio_client against the
    real-layout demo on a real Gradio 4.44."""
    fake = FakeSpace(SpaceScript(version="4", chunks=demo.answer_chunks(PROMPT, SYSTEM)))
    with launch_subprocess(gradio4_python) as real_url, serve(fake.app) as fake_url:
        real = httpx.get(f"{real_url}/config").json()
        fake_config = httpx.get(f"{fake_url}/config").json()
        assert _info(real_url) == _info(fake_url)
        assert _gradio_client_answers(real_url) == _gradio_client_answers(fake_url)
    assert _wiring(real) == _wiring(fake_config)


def test_stream_matches(real_url: str, fake_url: str) -> None:
    real = _conversation(real_url, "realsession1")
    fake = _conversation(fake_url, "fakesession1")
    assert [m["msg"] for m in real] == [m["msg"] for m in fake]
    for r, f in zip(real, fake, strict=True):
        assert list(r) == list(f), r["msg"]  # same top-level keys, same order
        if "output" in r:
            assert list(r["output"]) == list(f["output"]), r["msg"]
            # the same chunks give the same values and the same diffs (paths, actions, text)
            assert r["output"]["data"] == f["output"]["data"], r["msg"]
            assert r["output"]["is_generating"] == f["output"]["is_generating"]
        for key in ("rank", "queue_size", "rank_eta", "eta", "success", "title", "time_limit"):
            assert r.get(key) == f.get(key), (r["msg"], key)
    assert _reconstruct(fake) == fake[-2]["output"]["data"]
    assert _reconstruct(real) == real[-2]["output"]["data"]


def test_missing_inputs_match(real_url: str, fake_url: str) -> None:
    real = _conversation(real_url, "realsession2", data=[PROMPT])
    fake = _conversation(fake_url, "fakesession2", data=[PROMPT])
    assert [(m["msg"], m.get("success")) for m in real] == [
        (m["msg"], m.get("success")) for m in fake
    ]
    assert real[-2]["output"] == fake[-2]["output"] == {"error": None}
    assert real[-2].get("title") == fake[-2].get("title")


@pytest.mark.parametrize("case", ["unknown_session", "other_prefix", "no_hash", "bad_fn"])
def test_errors_match(real_url: str, fake_url: str, case: str) -> None:
    def outcome(url: str) -> tuple[Any, ...]:
        prefix = httpx.get(f"{url}/config").json().get("api_prefix", "")
        other = "/gradio_api" if not prefix else ""
        body = {"data": [PROMPT, [], SYSTEM], "fn_index": 0, "session_hash": "s"}
        if case == "unknown_session":
            seen: list[bytes] = []
            with pytest.raises(httpx.RemoteProtocolError):
                with httpx.stream("GET", f"{url}{prefix}/queue/data",
                                  params={"session_hash": "never-joined"}) as response:  # fmt: skip
                    seen.extend(response.iter_raw())
            return response.status_code, b"".join(seen).decode()
        if case == "other_prefix":
            response = httpx.post(f"{url}{other}/queue/join", json=body)
        elif case == "no_hash":
            response = httpx.post(f"{url}{prefix}/queue/join", json={"data": [], "fn_index": 0})
        else:
            response = httpx.post(f"{url}{prefix}/queue/join", json={**body, "fn_index": 99})
        return response.status_code, response.headers["content-type"], response.text

    assert outcome(real_url) == outcome(fake_url)


def _info(url: str) -> Any:
    """What ``GET {prefix}/info`` documents: each endpoint's parameters and visibility."""
    config = httpx.get(f"{url}/config").json()
    prefix = config.get("api_prefix", "")
    info = httpx.get(f"{url}{prefix}/info", params={"serialize": "False"}).json()
    base = min(c["id"] for c in config["components"]) - 1  # as in _wiring

    def label(text: str) -> str:  # an unlabelled input is "parameter_<component id>"
        head, _, number = text.rpartition("_")
        return f"{head}_{int(number) - base}" if head == "parameter" else text

    return sorted(info), {
        name: (
            [(p["parameter_name"], label(p["label"]), p["component"],
              p["parameter_has_default"], p["parameter_default"])
             for p in endpoint["parameters"]],
            [r["component"] for r in endpoint["returns"]],
            endpoint.get("api_visibility"),
            endpoint.get("show_api"),
        )
        for name, endpoint in info["named_endpoints"].items()
    }  # fmt: skip


def _gradio_client_answers(url: str) -> list[Any]:
    """The official client, by position and by the parameters' names (``/info``)."""
    client = gradio_client.Client(url, verbose=False, download_files=False)
    return [
        client.predict(PROMPT, [], SYSTEM, api_name="/model_chat"),
        client.predict(query=PROMPT, system=SYSTEM, api_name="/model_chat"),
    ]


gradio_client = pytest.importorskip("gradio_client")


# after the stream comparisons: a server that has answered reports a rank_eta
def test_info_matches(real_url: str, fake_url: str) -> None:
    assert _info(real_url) == _info(fake_url)


def test_gradio_client_gets_the_same_from_the_fake(real_url: str, fake_url: str) -> None:
    real, fake = _gradio_client_answers(real_url), _gradio_client_answers(fake_url)
    assert real == fake
    assert real[0][2] == SYSTEM  # the model_chat output to the visible "System" box


@pytest.mark.parametrize("version", ["4", "5", "6"])
def test_fake_diffs_reconstruct_completed(version: str) -> None:
    fake = FakeSpace(SpaceScript(version=version))  # type: ignore[arg-type]
    with serve(fake.app) as url:
        messages = _conversation(url, "recon", data=[PROMPT, [], SYSTEM])
    assert _reconstruct(messages) == messages[-2]["output"]["data"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(old=_json, new=_json)
def test_diff_applies_with_gradio_client(old: Any, new: Any) -> None:
    assert apply_diff(old, diff(old, new)) == new


# -- the gr.ChatInterface shape (scripts/demo_chatinterface.py) ------------------------

CI_DEMO = DEMO.with_name("demo_chatinterface.py")
CI_MESSAGE = "Привет 👋 la"


def _load_ci_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_chatinterface", CI_DEMO)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ci_demo() -> ModuleType:
    return _load_ci_demo()


@pytest.fixture(scope="module")
def ci_real_url(ci_demo: ModuleType) -> Iterator[str]:
    url, close = ci_demo.launch_in_thread()
    try:
        yield url
    finally:
        close()


@pytest.fixture(scope="module")
def ci_fake_url(ci_demo: ModuleType) -> Iterator[str]:
    if VERSION not in ("4", "6"):
        pytest.skip(f"no ChatInterface capture for Gradio {gradio.__version__}")
    chunks = ci_demo.answer_chunks(CI_MESSAGE, ci_demo.DEFAULT_SYSTEM, ci_demo.DEFAULT_TEMPERATURE)
    fake = FakeSpace(SpaceScript(version=VERSION, app="chatinterface", chunks=chunks))
    with serve(fake.app) as url:
        yield url


def _api_dependency(config: dict[str, Any]) -> dict[str, Any]:
    """ChatInterface's API dependency: the one bound to the hidden "Fake API" button."""
    components = {c["id"]: c for c in config["components"]}
    (dep,) = [
        d
        for d in config["dependencies"]
        if d["targets"]
        and components.get(d["targets"][0][0], {}).get("props", {}).get("value") == "Fake API"
    ]
    return dep


def _described(config: dict[str, Any], dep: dict[str, Any]) -> dict[str, Any]:
    components = {c["id"]: c for c in config["components"]}

    def component(cid: int) -> tuple[Any, ...]:
        props = components[cid]["props"]
        return components[cid]["type"], props.get("label"), props.get("value")

    return {
        "id": dep["id"],
        "api_name": dep["api_name"],
        "visibility": (dep.get("api_visibility"), dep.get("show_api")),
        "inputs": [component(i) for i in dep["inputs"]],
        "outputs": [components[i]["type"] for i in dep["outputs"]],
        "generator": dep["types"]["generator"],
        "api_prefix": config.get("api_prefix"),
        "mode": config.get("mode"),
    }


def test_chatinterface_config_matches(ci_real_url: str, ci_fake_url: str) -> None:
    real = httpx.get(f"{ci_real_url}/config").json()
    fake = httpx.get(f"{ci_fake_url}/config").json()
    real_dep, fake_dep = _api_dependency(real), _api_dependency(fake)
    assert _described(real, real_dep) == _described(fake, fake_dep)
    assert set(fake_dep) <= set(real_dep)
    # the fake's other public dependencies are none, as in the real app
    public = [d for d in real["dependencies"] if d.get("api_visibility", "public") == "public"
              and d.get("show_api", True) is not False]  # fmt: skip
    assert [d["id"] for d in public] == [real_dep["id"]]


def _ci_conversation(url: str, session: str, demo: ModuleType) -> list[dict[str, Any]]:
    config = httpx.get(f"{url}/config").json()
    dep = _api_dependency(config)
    data = [CI_MESSAGE, [], demo.DEFAULT_SYSTEM, demo.DEFAULT_TEMPERATURE]
    prefix = config.get("api_prefix", "")
    body = {"data": data, "event_data": None, "fn_index": dep["id"],
            "trigger_id": dep["targets"][0][0], "session_hash": session}  # fmt: skip
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post(f"{prefix}/queue/join?", json=body).status_code == 200
        with client.stream("GET", f"{prefix}/queue/data", params={"session_hash": session}) as r:
            lines = [line for line in r.iter_lines() if line]
    messages = [json.loads(line[6:]) for line in lines]
    return [m for m in messages if m["msg"] != "heartbeat"]


def _same_conversation(real: list[dict[str, Any]], fake: list[dict[str, Any]]) -> None:
    assert [m["msg"] for m in real] == [m["msg"] for m in fake]
    for r, f in zip(real, fake, strict=True):
        assert list(r) == list(f), r["msg"]
        if "output" in r:
            assert list(r["output"]) == list(f["output"]), r["msg"]
            assert r["output"]["data"] == f["output"]["data"], r["msg"]
    assert _reconstruct(fake) == fake[-2]["output"]["data"]


def test_chatinterface_info_and_gradio_client_match(
    ci_demo: ModuleType, ci_real_url: str, ci_fake_url: str
) -> None:
    assert _info(ci_real_url) == _info(ci_fake_url)
    name = "/respond" if VERSION == "6" else "/chat"

    def ask(url: str) -> Any:
        client = gradio_client.Client(url, verbose=False, download_files=False)
        return client.predict(CI_MESSAGE, api_name=name)  # the defaults of the others

    assert (
        ask(ci_real_url)
        == ask(ci_fake_url)
        == ci_demo.answer_text(CI_MESSAGE, ci_demo.DEFAULT_SYSTEM, ci_demo.DEFAULT_TEMPERATURE)
    )


def test_chatinterface_stream_matches(
    ci_demo: ModuleType, ci_real_url: str, ci_fake_url: str
) -> None:
    _same_conversation(
        _ci_conversation(ci_real_url, "cireal", ci_demo),
        _ci_conversation(ci_fake_url, "cifake", ci_demo),
    )


@pytest.fixture(scope="module")
def gradio4_python() -> str:
    # read before the per-test isolation clears LLMRELAY_* variables
    python = os.environ.get("LLMRELAY_GRADIO4_PYTHON")
    if not python:
        pytest.skip("set LLMRELAY_GRADIO4_PYTHON to a Python with gradio 4.44 (scripts/test.sh)")
    return python


def test_chatinterface_gradio4_matches(ci_demo: ModuleType, gradio4_python: str) -> None:
    """The fake's Gradio 4 ChatInterface against a real Gradio 4.44 server."""
    python = gradio4_python
    chunks = ci_demo.answer_chunks(CI_MESSAGE, ci_demo.DEFAULT_SYSTEM, ci_demo.DEFAULT_TEMPERATURE)
    fake = FakeSpace(SpaceScript(version="4", app="chatinterface", chunks=chunks))
    with launch_subprocess(python, script=CHATINTERFACE) as real_url, serve(fake.app) as fake_url:
        real_config = httpx.get(f"{real_url}/config").json()
        fake_config = httpx.get(f"{fake_url}/config").json()
        assert _described(real_config, _api_dependency(real_config)) == _described(
            fake_config, _api_dependency(fake_config)
        )
        _same_conversation(
            _ci_conversation(real_url, "ci4real", ci_demo),
            _ci_conversation(fake_url, "ci4fake", ci_demo),
        )
