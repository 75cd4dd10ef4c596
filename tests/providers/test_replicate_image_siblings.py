"""``generate_image(n>1)``: the first image that fails cancels its siblings' predictions.

Each image of a call is its own Replicate prediction. When one fails, the call raises
that error, and by then every other prediction has been cancelled (``POST urls.cancel``,
which the fake records): none keeps running, and billing, after the call has returned.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import llmrelay
from llmrelay import errors
from tests.fakes._server import serve
from tests.fakes.replicate import FakeReplicate, ReplicateScript

pytestmark = pytest.mark.anyio
KEY = "r8_test"


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeReplicate, str]]:
    server = FakeReplicate()
    with serve(server.app) as url:
        yield server, url


async def test_a_failed_image_cancels_the_other_predictions_before_the_call_returns(
    fake: tuple[FakeReplicate, str],
) -> None:
    server, url = fake
    server.reset(ReplicateScript(image_mode="fail_first", polls_before_done=1))
    before = set(server._predictions)
    started = time.monotonic()
    async with llmrelay.AsyncClient(
        base_urls={"replicate": f"{url}/v1"},
        api_keys={"replicate": KEY},
        timeouts=llmrelay.Timeouts(total=30),
    ) as client:
        with pytest.raises(errors.ProviderError, match="CUDA out of memory"):
            await client.generate_image("a llama", model="replicate:flux-schnell", n=3)
        cancels = list(server.cancels)  # as the call returned: nothing waited for
    assert time.monotonic() - started < 10  # not the 30 s deadline of the siblings
    created = [r.path for r in server.creations()]
    assert len(created) == 3
    new = set(server._predictions) - before
    failed = [pid for pid in new if server._predictions[pid].status == "failed"]
    assert len(failed) == 1
    siblings = new - set(failed)
    assert sorted(cancels) == sorted(siblings)
    assert len(siblings) == 2
    assert all(server._predictions[pid].status == "canceled" for pid in siblings)


async def test_every_image_of_a_successful_call_is_returned(
    fake: tuple[FakeReplicate, str],
) -> None:
    server, url = fake
    server.reset(ReplicateScript(image_mode="poll", polls_before_done=1))
    async with llmrelay.AsyncClient(
        base_urls={"replicate": f"{url}/v1"}, api_keys={"replicate": KEY}
    ) as client:
        images = await client.generate_image("a llama", model="replicate:flux-schnell", n=3)
    assert len(images) == 3
    assert all(image.mime_type == "image/png" for image in images)
    assert len(server.creations()) == 3
    assert server.cancels == []
