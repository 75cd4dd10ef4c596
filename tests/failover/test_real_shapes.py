"""The mid-stream rescue on real-world shapes: TGI's generate route and Replicate, cut mid-stream.

The fakes cut the first stream after a few tokens (a dropped connection) and answer the
next request normally; given an open assistant turn that ends with the first tokens
(what llmrelay renders to continue), they stream only the rest, as TGI and a Llama 3
model given the whole prompt do. A Replicate model without a settable prompt template
is rescued by regenerating, and the regenerated answer is aligned with what was
delivered.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import llmrelay
from tests.fakes._server import serve
from tests.fakes._streaming import Fault, combine
from tests.fakes.hub import FakeHub
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.replicate import DEFAULT_TOKENS, FakeReplicate, ReplicateScript
from tests.fakes.tgi import FakeTGI, TGIScript

pytestmark = pytest.mark.anyio

QWEN = "Qwen/Qwen2-72B-Instruct"


@pytest.fixture(scope="module")
def hf() -> Iterator[tuple[FakeTGI, str]]:
    tgi = FakeTGI()
    with serve(combine(tgi, FakeHub(), FakeOpenAI())) as url:
        yield tgi, url


@pytest.fixture(scope="module")
def replicate() -> Iterator[tuple[FakeReplicate, str]]:
    fake = FakeReplicate()
    with serve(fake.app) as url:
        yield fake, url


async def test_a_cut_tgi_stream_is_continued_on_the_generate_route(
    hf: tuple[FakeTGI, str],
) -> None:
    tgi, url = hf
    tgi.script = TGIScript(fault=Fault("disconnect", after=3, times=1), continues=True)
    tgi.recorder.requests.clear()
    endpoints = {"huggingface": {"base_url": url, "hub_url": url, "router_url": url + "/v1"}}
    async with llmrelay.AsyncClient(endpoints=endpoints) as client:
        stream = client.stream("Hi", model=f"huggingface:{QWEN}")
        completion = await stream.collect()
    assert completion.text == tgi.expected_text  # nothing lost, nothing twice
    first, second = (r.json["inputs"] for r in tgi.requests)
    delivered = "Hello, world"
    # the same prompt, its assistant turn left open after the delivered text
    assert second == first + delivered
    assert [(a.outcome, a.message) for a in completion.attempts] == [
        ("interrupted", completion.attempts[0].message),
        ("rescued", f"continued after {len(delivered)} characters"),
    ]
    assert completion.attempts[0].error_type == "TransportError"


async def test_a_cut_replicate_stream_is_continued_through_the_prompt_template(
    replicate: tuple[FakeReplicate, str],
) -> None:
    fake, url = replicate
    fake.reset(ReplicateScript(mode="disconnect", fail_after=3, fault_times=1, continues=True))
    model = "meta/meta-llama-3-70b-instruct"
    async with llmrelay.AsyncClient(
        base_urls={"replicate": f"{url}/v1"}, api_keys={"replicate": "r8_test"}
    ) as client:
        completion = await client.complete("Hi", model=f"replicate:{model}", system="Brief.")
    assert completion.text == "".join(DEFAULT_TOKENS)
    first, second = (c.json["input"] for c in fake.creations())
    assert "prompt_template" not in first
    assert first["system_prompt"] == "Brief."
    delivered = "".join(DEFAULT_TOKENS[:3])
    assert second["prompt_template"] == "{prompt}"
    assert second["prompt"].startswith("<|begin_of_text|><|start_header_id|>system")
    assert second["prompt"].endswith(
        "<|start_header_id|>assistant<|end_header_id|>\n\n" + delivered
    )
    assert completion.attempts[-1].outcome == "rescued"
    assert "continued" in (completion.attempts[-1].message or "")


async def test_a_replicate_model_without_a_template_is_regenerated_and_aligned(
    replicate: tuple[FakeReplicate, str],
) -> None:
    fake, url = replicate
    fake.reset(ReplicateScript(mode="disconnect", fail_after=3, fault_times=1, continues=True))
    model = "meta/meta-llama-3.1-405b-instruct"
    async with llmrelay.AsyncClient(
        base_urls={"replicate": f"{url}/v1"}, api_keys={"replicate": "r8_test"}
    ) as client:
        stream = client.stream("Hi", model=f"replicate:{model}")
        texts = [e async for e in stream if isinstance(e, str)]
    assert "".join(texts) == "".join(DEFAULT_TOKENS)
    _, second = (c.json["input"] for c in fake.creations())
    assert "prompt_template" not in second  # never a prefill it did not declare
    assert second["prompt"] == "Hi"
    assert stream.attempts[-1].outcome == "rescued"
    assert "regenerated" in (stream.attempts[-1].message or "")
