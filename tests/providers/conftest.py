from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes._server import serve
from tests.fakes.gradio_space import FakeSpace, SpaceScript


@pytest.fixture(scope="session")
def _space_server() -> Iterator[tuple[FakeSpace, str]]:
    fake = FakeSpace()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def space(_space_server: tuple[FakeSpace, str]) -> Iterator[tuple[FakeSpace, str]]:
    """The fake Space, reset to a normal Gradio 5 run; yields ``(fake, base_url)``."""
    fake, url = _space_server
    fake.script = SpaceScript()
    fake.requests.clear()
    fake.uploads.clear()
    fake.received.clear()
    yield fake, url
    assert fake.wait_streams_closed(5), "a queue/data stream was left open"
