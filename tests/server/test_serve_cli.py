"""``llmrelay serve``: flags, the bind rule, and the real command in a subprocess."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner
from tests.fakes.gradio_space import FakeSpace, SpaceScript

from llmrelay.cli import cli

SPACE_MODEL = "hf_spaces:qwen-2-72b"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def llmrelay_serve(args: list[str], env: dict[str, str], timeout: float = 90) -> Iterator[str]:
    """``llmrelay serve`` on a free port until the block ends; ``timeout``: its start-up
    (``--workers`` spawns processes that each import the server: slow on a loaded machine)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmrelay.cli", "serve", "--port", str(port), *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"llmrelay serve exited: {proc.stderr.read() if proc.stderr else ''}"
                )
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("llmrelay serve did not come up")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def _env(space_server: tuple[FakeSpace, str], home: Path) -> dict[str, str]:
    return {
        "LLMRELAY_HF_SPACES_BASE_URL": space_server[1],
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
    }


def test_beyond_loopback_needs_a_key_or_no_auth() -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--no-auth" in result.output
    result = CliRunner().invoke(cli, ["serve", "--host", "::"])
    assert result.exit_code == 2


def test_key_file_must_be_readable(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--api-key-file", str(tmp_path / "missing")])
    assert result.exit_code == 2
    empty = tmp_path / "empty"
    empty.write_text("\n")
    result = CliRunner().invoke(cli, ["serve", "--api-key-file", str(empty)])
    assert result.exit_code == 2


def test_missing_server_extra_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "from llmrelay.cli import main; sys.argv = ['llmrelay', 'serve']; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2
    assert "pip install 'llmrelay[server]'" in proc.stderr


def test_llmrelay_serve_with_the_openai_sdk_and_curl(
    space_server: tuple[FakeSpace, str], space: FakeSpace, tmp_path: Path
) -> None:
    with llmrelay_serve([], _env(space_server, tmp_path)) as url:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        completion = sdk.chat.completions.create(
            model=SPACE_MODEL, messages=[{"role": "user", "content": "hi"}]
        )
        import inspect

        assert completion.choices[0].message.content == inspect.cleandoc(
            "".join(SpaceScript().chunks)
        )
        assert any(m.id.startswith("hf_spaces") for m in sdk.models.list())
        out = subprocess.run(
            [
                "curl",
                "-sN",
                url + "/v1/chat/completions",
                "-H",
                "Content-Type: application/json",
                "-d",
                f'{{"model": "{SPACE_MODEL}", "stream": true, "messages": [{{"role": "user", "content": "hi"}}]}}',
            ],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert out.rstrip().endswith("data: [DONE]")


def test_llmrelay_serve_workers_and_key_file(
    space_server: tuple[FakeSpace, str], space: FakeSpace, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("file-key-42\n")
    with llmrelay_serve(
        ["--workers", "2", "--api-key-file", str(key_file)], _env(space_server, tmp_path)
    ) as url:
        denied: Any = httpx.get(url + "/v1/models", timeout=10)
        assert denied.status_code == 401
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="file-key-42", max_retries=0)
        answers = {
            sdk.chat.completions.create(
                model=SPACE_MODEL, messages=[{"role": "user", "content": "hi"}]
            )
            .choices[0]
            .message.content
            for _ in range(3)
        }
        assert len(answers) == 1
        assert answers != {""}


def test_serve_runs_on_uvloop_and_httptools_when_installed(
    monkeypatch: Any, tmp_path: Path
) -> None:
    """The loop and HTTP parser ``serve`` hands uvicorn resolve to uvloop and httptools."""
    uvloop = pytest.importorskip("uvloop")
    pytest.importorskip("httptools")
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    seen: dict[str, Any] = {}

    def run(app: Any, **kwargs: Any) -> None:
        seen.update(kwargs, app=app)

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code == 0, result.output
    app = seen.pop("app")
    config = uvicorn.Config(app, **seen)
    config.load()
    # uvicorn's httptools protocol, with the socket limits around it (llmrelay.server._sockets)
    assert issubclass(config.http_protocol_class.func, HttpToolsProtocol)  # type: ignore[attr-defined]
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_serve_hands_uvicorn_the_socket_limits_and_the_trusted_proxies(
    monkeypatch: Any, tmp_path: Path
) -> None:
    import pickle

    import uvicorn

    from llmrelay.server import SocketLimits

    seen: dict[str, Any] = {}

    def run(app: Any, **kwargs: Any) -> None:
        seen.update(kwargs, app=app)

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setenv("HOME", str(tmp_path))
    args = ["serve", "--port", "1", "--head-timeout", "3", "--keep-alive-timeout", "2"]
    args += ["--max-connections", "77", "--body-timeout", "9", "--log-max-pending", "12"]
    args += ["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert seen["http"].keywords["limits"] == SocketLimits(
        head_timeout=3, keep_alive=2, max_connections=77
    )
    assert pickle.loads(pickle.dumps(seen["http"])).keywords == seen["http"].keywords  # --workers
    assert seen["timeout_keep_alive"] == 2
    assert seen["proxy_headers"] is True
    assert seen["forwarded_allow_ips"] == ["10.0.0.0/8", "::1"]
    config = seen["app"].state.llmrelay.config
    assert (config.body_timeout, config.log_max_pending) == (9, 12)
    assert config.freeze_heap  # serve's process: its start-up objects out of the collector's way

    seen.clear()
    assert CliRunner().invoke(cli, ["serve", "--port", "1"]).exit_code == 0
    assert seen["proxy_headers"] is False  # uvicorn's default would trust 127.0.0.1
    result = CliRunner().invoke(cli, ["serve", "--port", "1", "--trusted-proxy", "10.0.0.1/8"])
    assert result.exit_code == 2
    assert "--trusted-proxy" in result.output
    assert "not an IP address or network" in result.output


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux ``/proc``)."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat_file.read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                found.append(int(stat_file.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_serve_hands_its_settings_to_every_worker_without_the_environment(
    space_server: tuple[FakeSpace, str], space: FakeSpace, tmp_path: Path
) -> None:
    key = "worker-key-5b7d9e1f"
    temp = tmp_path / "tmp"
    temp.mkdir()
    default = "hf_spaces:me/local-chat"  # not the registry's first default model
    args = ["--workers", "2", "--api-key", key, "--max-messages", "1", "-m", default]
    env = {**_env(space_server, tmp_path), "TMPDIR": str(temp)}
    with llmrelay_serve(args, env) as url:
        assert next(p.name for p in temp.iterdir()).startswith("llmrelay-serve-")
        auth = {"authorization": f"Bearer {key}"}
        assert httpx.get(url + "/v1/models", timeout=10).status_code == 401
        two = {"model": SPACE_MODEL, "messages": [{"role": "user", "content": "a"}] * 2}
        one = {"messages": [{"role": "user", "content": "hi"}]}  # no model: the -m default
        for _ in range(4):  # both workers, whichever accepts
            assert httpx.get(url + "/v1/models", headers=auth, timeout=10).status_code == 200
            refused = httpx.post(url + "/v1/chat/completions", json=two, headers=auth, timeout=10)
            assert refused.status_code == 400, refused.text  # --max-messages reached it
            answered = httpx.post(url + "/v1/chat/completions", json=one, headers=auth, timeout=30)
            assert answered.status_code == 200, answered.text
            assert answered.json()["model"] == default, answered.json()
        serve_pid = next(
            int(p.parent.name)
            for p in Path("/proc").glob("[0-9]*/cmdline")
            if f"--api-key\0{key}".encode() in p.read_bytes()
        )
        workers = _children(serve_pid)
        assert len(workers) >= 2, workers
        for pid in [serve_pid, *workers]:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert key.encode() not in environ
            assert b"LLMRELAY_SERVER" not in environ
    assert list(temp.iterdir()) == []  # the settings file went with serve
