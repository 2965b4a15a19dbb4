"""LangChain's MLflow integration (langchain-community) against Switchyard's MLflow paths.

This module owns the LangChain surface: ``ChatMlflow`` (chat, including through a traffic route),
``Mlflow`` (completions) and ``MlflowEmbeddings``. All three wrap MLflow's deployments client, so
they send what LangChain sends (e.g. ``temperature``/``n`` on chat) and parse what it parses.
``ChatMlflow.stream`` is not tested: it calls the deployments client's ``predict_stream``, which
MLflow's client does not implement for any gateway.
"""

from __future__ import annotations

import pytest

from conftest import EMBEDDING_DIMS, ROUTE

pytest.importorskip("langchain_community", reason="langchain-community is not installed")

from langchain_community.chat_models import ChatMlflow  # noqa: E402
from langchain_community.embeddings import MlflowEmbeddings  # noqa: E402
from langchain_community.llms import Mlflow  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage  # noqa: E402


def test_chat_mlflow_invoke(base_url):
    chat = ChatMlflow(target_uri=base_url, endpoint="chat", temperature=0.1, max_tokens=32)
    reply = chat.invoke([SystemMessage(content="be kind"), HumanMessage(content="hello from langchain")])
    assert isinstance(reply, AIMessage)
    assert reply.content == "hello from langchain"


def test_chat_mlflow_invoke_string_and_route(base_url):
    chat = ChatMlflow(target_uri=base_url, endpoint=ROUTE)
    assert chat.invoke("through the route").content == "through the route"


def test_chat_mlflow_batch(base_url):
    # batch() runs the calls concurrently on a thread pool: answers must not get crossed.
    chat = ChatMlflow(target_uri=base_url, endpoint="chat")
    prompts = [f"batch item {i}" for i in range(8)]
    assert [reply.content for reply in chat.batch(prompts)] == prompts


def test_mlflow_llm_completions(base_url):
    llm = Mlflow(target_uri=base_url, endpoint="completions")
    assert llm.invoke("complete me, LangChain") == "complete me, LangChain"


def test_mlflow_embeddings(base_url, deploy_client):
    embeddings = MlflowEmbeddings(target_uri=base_url, endpoint="embeddings")
    documents = embeddings.embed_documents(["doc one", "doc two"])
    query = embeddings.embed_query("doc one")
    assert [len(v) for v in documents] == [EMBEDDING_DIMS, EMBEDDING_DIMS]
    assert query == documents[0]
    assert documents[0] != documents[1]
    direct = deploy_client.predict(endpoint="embeddings", inputs={"input": ["doc two"]})
    assert documents[1] == direct["data"][0]["embedding"]
