"""``llmrelay chat -a/--attachment``: images sent with the prompt (as ``llm -a``).

Against the OpenAI-compatible fake: a local file arrives as a ``data:`` URL of its bytes
and a URL as it is, after the prompt's text part; a provider without vision refuses the
message before anything is sent; a file that is not an image is a usage error.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Space, run
from tests.fakes._server import serve
from tests.fakes.openai_server import FakeOpenAI
from tests.images_server import png


@pytest.fixture
def openai(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[providers.local]\nkind = "openai"\nbase_url = "{url}/v1"\n'
            'models = ["m"]\nvision = true\n'
        )
        monkeypatch.setenv("LLMRELAY_CONFIG", str(config))
        yield fake


def test_a_file_and_a_url_reach_the_provider_after_the_text(
    openai: FakeOpenAI, tmp_path: Path
) -> None:
    image = png(3, 2)
    path = tmp_path / "dot.png"
    path.write_bytes(image)
    url = "https://example.com/cat.jpg"
    code, out, err = run("chat", "-m", "local:m", "-a", str(path), "--attachment", url, "What?")
    assert code == 0, err
    assert out.rstrip("\n") == openai.expected_text
    [request] = openai.requests
    [message] = request.json["messages"]
    assert message["role"] == "user"
    assert message["content"] == [
        {"type": "text", "text": "What?"},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()},
        },
        {"type": "image_url", "image_url": {"url": url}},
    ]


def test_a_provider_without_vision_refuses_the_message(space: Space, tmp_path: Path) -> None:
    fake, _ = space
    path = tmp_path / "dot.png"
    path.write_bytes(png(3, 2))
    code, out, err = run("chat", "-a", str(path), "What?")
    assert code == 1
    assert out == ""
    assert "messages[0] has an image_url part (content[1])" in err
    assert "hf_spaces cannot take" in err
    assert fake.joins == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"hello", "is not a PNG, JPEG, WebP or GIF file"),
        ("missing.png", None, "cannot read"),
    ],
)
def test_a_file_that_is_not_an_image_is_a_usage_error(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code, out, err = run("chat", "-m", "local:m", "-a", str(path), "What?")
    assert code == 2
    assert out == ""
    assert message in err
    assert "--attachment" in err
