"""``GET /v1/models`` lists the embedding models, each one callable on ``/v1/embeddings``.

The ``openai`` SDK's ``models.list()`` against ``llmrelay serve``'s app: the Hugging Face
provider's ``embedding_models`` and a configured OpenAI-compatible server's
``embedding_models`` (``[providers.local]``, on the OpenAI fake) are listed as OpenAI
model objects with ``kind`` ``"embedding"``, as is an alias whose first candidate is one;
every model listed with that kind answers ``embeddings.create`` (the feature-extraction
fake, the OpenAI fake), and none of them is offered as a chat model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.fakes._server import serve
from tests.fakes._streaming import combine
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.tgi import FakeTGI
from tests.server.conftest import run_app

from llmrelay.providers.huggingface import EMBEDDING_MODELS
from llmrelay.server import ServerConfig, create_app

SMALL = "text-embedding-3-small"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tgi, oai = FakeTGI(), FakeOpenAI()
    with serve(combine(tgi)) as t, serve(oai.app) as o:
        path: Path = tmp_path_factory.mktemp("models-embeddings") / "config.toml"
        path.write_text(
            f'[providers.local]\nkind = "openai"\nbase_url = "{o}/v1"\n'
            f'models = ["fake-model"]\nembedding_models = ["{SMALL}"]\n\n'
            f'[aliases]\nemb = ["local:{SMALL}", "huggingface:{EMBEDDING_MODELS[0]}"]\n'
            'talk = ["local:fake-model"]\n'
        )
        config = ServerConfig(
            client_kwargs={
                "base_urls": {"huggingface": t},
                "config_path": str(path),
                "cooldown": 0,
                "retries": 0,
            }
        )
        with run_app(create_app(config=config)) as served:
            yield served


@pytest.fixture
def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=20)


def test_embedding_models_are_listed_with_their_kind(sdk: openai.OpenAI) -> None:
    listed = sdk.models.list()
    assert listed.object == "list"
    rows: dict[str, Any] = {m.id: m.model_dump() for m in listed.data}
    expected = {f"huggingface:{m}" for m in EMBEDDING_MODELS} | {f"local:{SMALL}", "emb"}
    embeddings = {id_ for id_, row in rows.items() if row["kind"] == "embedding"}
    assert embeddings == expected
    for id_ in expected:
        row = rows[id_]
        assert row["object"] == "model"
        assert isinstance(row["created"], int)
        assert row["vision"] is False
        assert row["ready"] is True
    assert rows[f"local:{SMALL}"]["owned_by"] == rows[f"local:{SMALL}"]["provider"] == "local"
    assert rows["emb"]["alias_of"] == [f"local:{SMALL}", f"huggingface:{EMBEDDING_MODELS[0]}"]
    # chat models stay chat models
    assert rows["local:fake-model"]["kind"] == rows["talk"]["kind"] == "chat"
    assert rows["huggingface:Qwen/Qwen2-72B-Instruct"]["kind"] == "chat"


def test_every_listed_embedding_model_can_be_called(sdk: openai.OpenAI) -> None:
    listed = [m for m in sdk.models.list().data if m.model_dump()["kind"] == "embedding"]
    assert listed
    for model in listed:
        response = sdk.embeddings.create(model=model.id, input="x", encoding_format="float")
        assert len(response.data) == 1
        assert response.data[0].embedding


def test_retrieve_names_an_embedding_model(sdk: openai.OpenAI) -> None:
    row = sdk.models.retrieve(f"local:{SMALL}").model_dump()
    assert (row["id"], row["kind"]) == (f"local:{SMALL}", "embedding")
