"""``docs/providers.md`` runs: its code against a loopback fake OpenAI-compatible server.

The page's blocks are taken as written (only the fake's URL replaces the service's):
the configuration row, the ``llmrelay_acme.py`` subclass used through ``providers=`` and
through the ``llmrelay.providers`` entry point, and some of the contract's checks on it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from llmrelay import AsyncClient, AuthenticationError, FinishReason, MissingCredentialsError
from tests.fakes._server import serve
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "providers.md"
SRC = ROOT / "src"
KEY = "sk-acme-guide-0123456789"
SERVICE = "https://api.acme.example/v1"


def blocks(language: str) -> list[str]:
    """The page's fenced code blocks of ``language``, in order."""
    text = GUIDE.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def block(language: str, first_line: str) -> str:
    """The block of ``language`` whose first line is ``first_line``."""
    found = [b for b in blocks(language) if b.splitlines()[0] == first_line]
    assert len(found) == 1, (language, first_line)
    return found[0]


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    server = FakeOpenAI()
    with serve(server.app) as url:
        yield server, f"{url}/v1"


@pytest.fixture
def acme(fake: tuple[FakeOpenAI, str], tmp_path: Path) -> tuple[FakeOpenAI, str, Path]:
    """The fake scripted as Acme, and a folder holding the page's ``llmrelay_acme.py``."""
    server, url = fake
    server.script = OpenAIScript(models=["acme-chat", "acme-chat-mini"], api_key=KEY)
    server.recorder.requests.clear()
    (tmp_path / "llmrelay_acme.py").write_text(block("python", "# llmrelay_acme.py"))
    return server, url, tmp_path


def run(args: list[str], folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(folder)]),
        "LLMRELAY_HOME": str(folder / "home"),
        **env,
    }
    environ.pop("LLMRELAY_MODEL", None)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=environ, timeout=60
    )


def test_the_configuration_row(fake: tuple[FakeOpenAI, str], tmp_path: Path) -> None:
    server, url = fake
    server.script = OpenAIScript(models=["acme-chat", "acme-chat-mini"])
    row = block("toml", "[providers.acme]")
    assert SERVICE in row
    config = tmp_path / "config.toml"
    config.write_text(row.replace(SERVICE, url))
    result = run(
        ["-m", "llmrelay", "chat", "--no-log", "-m", "acme:acme-chat-mini", "Hello"],
        tmp_path,
        LLMRELAY_CONFIG=str(config),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == server.expected_text + "\n"
    assert server.requests[-1].json["model"] == "acme-chat-mini"


def test_the_subclass_through_providers(acme: tuple[FakeOpenAI, str, Path]) -> None:
    server, url, folder = acme
    (folder / "use_acme.py").write_text(block("python", "# use_acme.py"))
    result = run(
        [str(folder / "use_acme.py")], folder, ACME_API_KEY=KEY, LLMRELAY_ACME_BASE_URL=url
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == server.expected_text + "\n"
    sent = server.requests[-1]
    assert sent.json["model"] == "acme-chat-mini"  # the alias "mini"
    assert sent.json["safety"] == "strict"  # the option, as Acme's own field
    assert sent.headers["authorization"] == f"Bearer {KEY}"  # from ACME_API_KEY


def test_the_subclass_through_the_entry_point(acme: tuple[FakeOpenAI, str, Path]) -> None:
    server, url, folder = acme
    declared = block("toml", '[project.entry-points."llmrelay.providers"]')
    info = folder / "llmrelay_acme-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llmrelay-acme\nVersion: 0.1\n")
    groups = tomllib.loads(declared)["project"]["entry-points"]  # what pip would install
    lines = [
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
        for group, eps in groups.items()
    ]
    (info / "entry_points.txt").write_text("".join(lines))
    env = {"LLMRELAY_ACME_API_KEY": KEY, "LLMRELAY_ACME_BASE_URL": url}
    listed = run(["-m", "llmrelay", "providers"], folder, **env)
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("acme\tAcme Cloud") for line in listed.stdout.splitlines())
    args = ["-m", "llmrelay", "chat", "--no-log", "-m", "acme:mini", "-o", "safety", "strict"]
    result = run([*args, "--strict", "Say hello"], folder, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == server.expected_text + "\n"
    assert server.requests[-1].json["safety"] == "strict"


def _acme_class(folder: Path, monkeypatch: pytest.MonkeyPatch) -> type:
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("llmrelay_acme", None)
    import llmrelay_acme  # type: ignore[import-not-found]

    cls: type = llmrelay_acme.Acme
    return cls


def test_the_subclass_keeps_the_contract(
    acme: tuple[FakeOpenAI, str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url, folder = acme
    acme_class = _acme_class(folder, monkeypatch)

    async def main() -> None:
        async with AsyncClient(providers=[acme_class], base_urls={"acme": url}) as client:
            with pytest.raises(MissingCredentialsError, match="ACME_API_KEY"):
                await client.stream("Hello", model="acme").start()
        kwargs = {"providers": [acme_class], "base_urls": {"acme": url}}
        async with AsyncClient(**kwargs, api_keys={"acme": "sk-wrong-0123456789"}) as client:
            with pytest.raises(AuthenticationError) as info:
                await client.stream("Hello", model="acme").start()
            assert info.value.status_code == 401
            assert "sk-wrong-0123456789" not in str(info.value)
        async with AsyncClient(**kwargs, api_keys={"acme": KEY}) as client:
            events = [e async for e in client.stream("Hello", model="acme")]
            assert sum(isinstance(e, FinishReason) for e in events) == 1
            assert isinstance(events[-1], FinishReason)
            assert "".join(e for e in events if isinstance(e, str)) == server.expected_text
            stream = client.stream("Hello", model="acme")
            async for event in stream:
                if isinstance(event, str):
                    break
            await stream.aclose()
            assert server.wait_closed(5)  # an early stop closes the connection

    anyio.run(main)


def test_the_pages_python_is_what_runs() -> None:
    # every python block of the page is one the tests above execute
    names = [b.splitlines()[0] for b in blocks("python")]
    assert names == ["# llmrelay_acme.py", "# use_acme.py"]
