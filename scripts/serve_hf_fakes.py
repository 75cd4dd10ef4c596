"""Serve the Hugging Face fakes (inference API + hub + OpenAI-compatible router) by hand.

    PYTHONPATH=src:. python scripts/serve_hf_fakes.py          # serve until Ctrl-C
    PYTHONPATH=src:. python scripts/serve_hf_fakes.py --demo   # one chat, one image, one
                                                               # kind="openai" chat; exit

All routes are on one loopback port: ``/models/{id}`` (TGI), ``/api/models`` (hub) and
``/v1/chat/completions`` + ``/v1/models`` (OpenAI-compatible: the router, or any
``kind = "openai"`` provider). The environment lines it prints point llmrelay at it.
"""

from __future__ import annotations

import contextlib
import sys
import threading

import anyio
import httpx
from tests.fakes._server import serve
from tests.fakes._streaming import combine
from tests.fakes.hub import FakeHub
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.tgi import FakeTGI

from llmrelay.providers._openai_compat import OpenAICompatible
from llmrelay.providers.huggingface import HuggingFace
from llmrelay.types import ChatRequest, ImageRequest, Message, event_to_dict


async def demo(url: str) -> None:
    endpoints = {"base_url": url, "hub_url": url, "router_url": f"{url}/v1"}
    async with httpx.AsyncClient(timeout=10) as http:
        provider = HuggingFace(http, endpoints=endpoints)
        messages = (Message("system", "Be brief."), Message("user", "Say hello"))
        request = ChatRequest(messages, HuggingFace.resolve_model("qwen-2-72b"))
        print("$ huggingface chat (Qwen/Qwen2-72B-Instruct), events:")
        async for event in provider.stream(request):
            print("  ", event_to_dict(event))
        image = await provider.generate_image(
            ImageRequest("a red fox", "black-forest-labs/FLUX.1-schnell", seed=42)
        )
        print(
            f"$ huggingface image: {image.mime_type}, {len(image.data)} bytes, "
            f"{image.width}x{image.height}, seed {image.seed}"
        )
        local = OpenAICompatible.from_config("local", {"kind": "openai", "base_url": f"{url}/v1"})(
            http
        )
        print('$ [providers.local] kind = "openai": models', list(await local.list_models()))
        async for event in local.stream(ChatRequest((Message("user", "Hi"),), "")):
            print("  ", event_to_dict(event))


def main() -> None:
    app = combine(FakeTGI(), FakeHub(), FakeOpenAI())
    with serve(app) as url:
        if "--demo" in sys.argv:
            anyio.run(demo, url)
            return
        print(f"LLMRELAY_HUGGINGFACE_BASE_URL={url}")
        print(f"LLMRELAY_HUGGINGFACE_HUB_URL={url}")
        print(f"LLMRELAY_HUGGINGFACE_ROUTER_URL={url}/v1")
        print(f'[providers.local] kind = "openai" base_url = "{url}/v1"')
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
