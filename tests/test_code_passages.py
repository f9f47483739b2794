"""Passages of code rank lower for a question not about code (rag/search/code_passages.py)."""
from __future__ import annotations

import pytest

from rag.reading.chunking import Chunk
from rag.search.code_passages import asks_code, code_heavy_mask
from rag.search.retrieval import Retriever
from tests.conftest import indexed_notes

CODE = '''# 注意力实现

```python
class Attention(nn.Module):
    def forward(self, q, k, v):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        return torch.softmax(scores, dim=-1) @ v
```
'''
PROSE = '''# 为什么要缩放

注意力分数除以维度的平方根，是为了防止点积过大，使 softmax 进入梯度很小的饱和区，有助于数值稳定。
'''


def test_a_passage_of_code_is_code_heavy_and_prose_with_a_snippet_is_not():
    code = Chunk("a.md", "注意力实现", 1, 8, CODE)
    prose = Chunk("b.md", "为什么要缩放", 1, 3, PROSE + "\n`x / sqrt(d)`\n")
    assert code_heavy_mask([code, prose]).tolist() == [True, False]


@pytest.mark.parametrize("question, about_code", [
    ("forward 里是怎么算注意力的？", True), ("TransformerBlock 的前馈网络是什么结构？", True),
    ("这段代码做了什么？", True), ("为什么注意力分数要除以根号 d？", False),
    ("Why are attention scores divided by the square root of the dimension?", False),
])
def test_a_question_about_code_names_code_or_an_identifier(question, about_code):
    assert asks_code(question) is about_code


def test_a_question_not_about_code_ranks_the_prose_above_the_code_it_shares_words_with(tmp_path, embedder):
    question = "Why are attention scores divided by the square root of the dimension before the softmax?"
    notes = {"code.md": CODE, "prose.md": PROSE}
    weighted = indexed_notes(tmp_path / "weighted", notes, embedder, chunk_min_chars=0)
    unweighted = indexed_notes(tmp_path / "unweighted", notes, embedder, chunk_min_chars=0, code_weight=1.0)
    hits = Retriever.from_settings(weighted, embedder).retrieve(question).hits
    assert hits[0].source == "prose.md"
    plain = {h.source: h.score for h in Retriever.from_settings(unweighted, embedder).retrieve(question).hits}
    scored = {h.source: h.score for h in hits}
    # The weighting moves the code down, whatever the order without it.
    assert scored["code.md"] / scored["prose.md"] < plain["code.md"] / plain["prose.md"]
