"""The reranking seam (rag/search/rerankers/): no reranker model ships in a PyPI package, so the
retriever is driven by the scripted test double (a fake, named as such); the index, the
embedder and the rest of the search are real."""
from __future__ import annotations

from rag.core.settings import Settings
from rag.search.rerankers import make_reranker
from rag.search.rerankers.scripted import ScriptedReranker
from rag.search.retrieval import Retriever
from tests.conftest import indexed_notes

NOTES = {
    "lora.md": "# LoRA\n\nLoRA freezes the pretrained weights and trains two small low-rank matrices A and B "
               "beside each attention projection; their product is the update.\n",
    "adapter.md": "# Adapters\n\nAdapters insert small bottleneck layers between the transformer blocks and "
                  "train only those, keeping the pretrained weights frozen.\n",
    "prefix.md": "# Prefix tuning\n\nPrefix tuning learns a few virtual tokens prepended to every layer's keys "
                 "and values; the pretrained weights stay frozen.\n",
}


def test_no_reranker_is_used_unless_one_is_configured():
    assert make_reranker(Settings(reranker_model=None)) is None


def test_the_retriever_reads_hits_in_the_order_the_reranker_returns(tmp_path, embedder):
    settings = indexed_notes(tmp_path, NOTES, embedder)
    question = "How does LoRA keep the pretrained weights frozen?"
    plain = Retriever(settings, embedder).retrieve(question, k=3)
    assert plain.hits[0].source == "lora.md"

    fake = ScriptedReranker(key=lambda text: 1.0 if "virtual tokens" in text else 0.0)  # fake: prefix first
    reranked = Retriever(settings, embedder, reranker=fake).retrieve(question, k=3)

    assert reranked.hits[0].source == "prefix.md"
    assert fake.calls and fake.calls[0][0] == question
    assert {h.source for h in reranked.hits} == {h.source for h in plain.hits}
