"""Keyword search: BM25 over jieba-segmented Chinese, English words and code identifiers."""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import sparse

from rag.core.text import HAN_BASIC

log = logging.getLogger(__name__)

_jieba = None
_ASCII_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[.\-][A-Za-z0-9_]+)*|\d+(?:\.\d+)*")
_CJK_RUN = re.compile(f"[{HAN_BASIC}]+")  # the basic block only: the tokens every index holds
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# Function words that carry no topic; questions are full of them ("是什么", "如何", "哪些").
STOPWORDS = frozenset(
    "的 了 和 与 及 或 是 在 有 为 对 中 把 被 让 就 都 也 而 并 等 这 那 之 其 它 他 她 我 你 "
    "什么 怎么 怎样 如何 哪些 哪个 为什么 是否 一下 一些 一种 以及 可以 能 会 吗 呢 吧 啊 "
    "这个 那个 这些 那些 还 又 再 不 没有 需要 进行 通过 使用 主要 具体 一般 有没有 "
    "the a an of to in on for and or is are was be by with as at it its this that what how why "
    "which do does can i you we they".split()
)


def _segmenter():
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _jieba = jieba
    return _jieba


def tokenize(text: str) -> list[str]:
    """Terms for BM25: jieba search-mode words for Chinese runs; English words lower-cased;
    code identifiers kept whole and also split at '_' and camelCase, so `feed_forward`
    matches both "feed_forward" and "forward"."""
    jieba = _segmenter()
    tokens: list[str] = []
    for match in _ASCII_TOKEN.finditer(text):
        word = match.group(0)
        low = word.lower()
        tokens.append(low)
        parts = [p.lower() for piece in re.split(r"[_.\-]", word) for p in _CAMEL.findall(piece)]
        if len(parts) > 1:
            tokens.extend(parts)
    for run in _CJK_RUN.findall(text):
        tokens.extend(w for w in jieba.cut_for_search(run) if w.strip())
        # Single characters catch what segmentation splits differently in query and note.
        if len(run) <= 2:
            tokens.append(run)
    return [t for t in tokens if t not in STOPWORDS]


def _idf(n_docs: int, df):
    """BM25's inverse document frequency of a term found in ``df`` of ``n_docs`` passages."""
    return np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


class BM25Index:
    """Precomputed BM25 weights in a sparse chunk-by-term matrix: a query is a column sum."""

    def __init__(self, vocab: dict[str, int], weights: sparse.csc_matrix) -> None:
        self.vocab = vocab
        self.weights = weights

    @classmethod
    def build(cls, docs: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> "BM25Index":
        vocab: dict[str, int] = {}
        rows, cols, tfs = [], [], []
        lengths = np.zeros(len(docs), dtype=np.float32)
        for row, tokens in enumerate(docs):
            lengths[row] = len(tokens)
            for term, tf in Counter(tokens).items():
                rows.append(row)
                cols.append(vocab.setdefault(term, len(vocab)))
                tfs.append(tf)
        n_docs = max(len(docs), 1)
        rows_a = np.asarray(rows, dtype=np.int64)
        cols_a = np.asarray(cols, dtype=np.int64)
        tf_a = np.asarray(tfs, dtype=np.float32)
        df = np.bincount(cols_a, minlength=len(vocab)).astype(np.float32)
        idf = _idf(n_docs, df)
        avgdl = float(lengths.mean()) if len(docs) else 1.0
        norm = k1 * (1 - b + b * lengths[rows_a] / max(avgdl, 1e-6)) if len(rows_a) else np.zeros(0)
        data = idf[cols_a] * tf_a * (k1 + 1) / (tf_a + norm)
        weights = sparse.csc_matrix((data, (rows_a, cols_a)), shape=(len(docs), len(vocab)), dtype=np.float32)
        return cls(vocab, weights)

    def idf(self, term: str) -> float:
        """The term's inverse document frequency, as the weights were built with (0 passages: unknown)."""
        col = self.vocab.get(term)
        indptr = self.weights.indptr  # column-compressed: a term's passages lie between two pointers
        df = 0 if col is None else int(indptr[col + 1] - indptr[col])
        return float(_idf(max(self.weights.shape[0], 1), df))

    def scores(self, query_tokens: Iterable[str]) -> np.ndarray:
        cols = [self.vocab[t] for t in dict.fromkeys(query_tokens) if t in self.vocab]
        if not cols or self.weights.shape[0] == 0:
            return np.zeros(self.weights.shape[0], dtype=np.float32)
        return np.asarray(self.weights[:, cols].sum(axis=1)).ravel()

    def best_of(self, groups: Iterable[Iterable[str]]) -> np.ndarray:
        """Scores where each group of alternative terms counts once, by its best term in each
        passage: the Chinese words of one English word (rag/search/glossary.py) are one vote,
        however many synonyms the dictionary lists."""
        total = np.zeros(self.weights.shape[0], dtype=np.float32)
        for group in groups:
            cols = [self.vocab[t] for t in dict.fromkeys(group) if t in self.vocab]
            if cols:
                total += np.asarray(self.weights[:, cols].max(axis=1).todense(), dtype=np.float32).ravel()
        return total

    def save(self, directory: Path) -> None:
        import json

        sparse.save_npz(directory / "bm25.npz", self.weights)
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        (directory / "bm25_vocab.json").write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "BM25Index":
        import json

        terms = json.loads((directory / "bm25_vocab.json").read_text(encoding="utf-8"))
        return cls({t: i for i, t in enumerate(terms)}, sparse.load_npz(directory / "bm25.npz").tocsc())
