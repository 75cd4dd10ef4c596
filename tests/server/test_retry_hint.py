"""``x-should-retry`` after llmrelay's own retries: the ``openai`` SDK does not multiply them.

The real ``openai`` SDK (default ``max_retries=2``) against ``llmrelay serve``'s app on
loopback, in front of the OpenAI fake; every request the fake receives is counted. A
retryable failure that llmrelay already retried (``retries``) or fell back from is
answered ``x-should-retry: false``, so the SDK sends it once (3 upstream requests, not
3 x 3); one that reached the service once only keeps ``true`` (the SDK's retries are the
only ones). See ``llmrelay.server._errors``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.fakes._server import serve
from tests.fakes._streaming import Fault
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript
from tests.server.conftest import run_app

from llmrelay import _retry
from llmrelay.server import ServerConfig, create_app

MESSAGES: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture(scope="module")
def server(
    upstream: tuple[FakeOpenAI, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``retrying`` (2 same-candidate retries), ``once`` and ``other`` (none), and the
    alias ``chain`` falling back from ``once`` to ``other``: all on the one fake."""
    table = '[providers.{}]\nkind = "openai"\nbase_url = "{}/v1"\nmodels = ["fake-model"]\n'
    config = "".join(table.format(name, upstream[1]) for name in ("retrying", "once", "other"))
    config = config.replace('["fake-model"]\n', '["fake-model"]\nretries = 2\n', 1)
    config += '\n[aliases]\nchain = ["once:fake-model", "other:fake-model"]\n'
    path: Path = tmp_path_factory.mktemp("retry-hint") / "config.toml"
    path.write_text(config)
    kwargs = {"config_path": str(path), "cooldown": 0, "retries": 0}
    with run_app(create_app(config=ServerConfig(client_kwargs=kwargs))) as url:
        yield url + "/v1"


@pytest.fixture
def fake(upstream: tuple[FakeOpenAI, str], monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setattr(_retry, "BASE_DELAY", 0.01)  # the relay's back-off, in this process
    upstream[0].recorder.requests.clear()
    return upstream[0]


def _sent(fake: FakeOpenAI, path: str = "/v1/chat/completions") -> int:
    return sum(1 for r in fake.requests if r.path == path)


def _failing(fake: FakeOpenAI, status: int, retry_after: str | None = None) -> None:
    fake.script = OpenAIScript(fault=Fault("http_error", status=status, retry_after=retry_after))


@pytest.mark.parametrize("stream", [False, True])
def test_after_the_relays_own_retries_the_sdk_does_not_retry(
    server: str, fake: FakeOpenAI, stream: bool
) -> None:
    _failing(fake, 503)
    sdk = openai.OpenAI(base_url=server, api_key="unused", timeout=20)  # 2 retries
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="retrying:fake-model", messages=MESSAGES, stream=stream)
    assert caught.value.status_code == 503
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert _sent(fake) == 3  # the relay's 1 + 2 retries; not 3 x 3


def test_after_a_fallback_the_sdk_does_not_retry(server: str, fake: FakeOpenAI) -> None:
    _failing(fake, 503)
    sdk = openai.OpenAI(base_url=server, api_key="unused", timeout=20)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="chain", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-should-retry"] == "false"
    body: Any = caught.value.body
    assert [a["provider"] for a in body["attempts"]] == ["once", "other"]
    assert _sent(fake) == 2  # not 2 x 3


def test_a_failure_the_relay_did_not_retry_is_left_to_the_sdk(
    server: str, fake: FakeOpenAI
) -> None:
    _failing(fake, 503)
    sdk = openai.OpenAI(base_url=server, api_key="unused", timeout=20, max_retries=1)
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="once:fake-model", messages=MESSAGES)
    assert caught.value.response.headers["x-should-retry"] == "true"
    assert _sent(fake) == 2  # the SDK's retry is the only one


def test_a_retry_after_longer_than_the_relay_waits_is_the_clients(
    server: str, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 429 whose wait the relay does not take (past ``RETRY_AFTER_CAP``): one upstream
    request, then ``true`` with the wait, which the SDK honours."""
    monkeypatch.setattr(_retry, "RETRY_AFTER_CAP", 0.5)
    _failing(fake, 429, retry_after="1")
    sdk = openai.OpenAI(base_url=server, api_key="unused", timeout=20, max_retries=1)
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="retrying:fake-model", messages=MESSAGES)
    headers = caught.value.response.headers
    assert (headers["x-should-retry"], headers["retry-after"]) == ("true", "1")
    assert _sent(fake) == 2  # the relay waited for none; the SDK asked once more


def test_embeddings_after_the_relays_retries(server: str, fake: FakeOpenAI) -> None:
    _failing(fake, 503)
    sdk = openai.OpenAI(base_url=server, api_key="unused", timeout=20)
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.embeddings.create(model="retrying:fake-model", input="x")
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert _sent(fake, "/v1/embeddings") == 3
