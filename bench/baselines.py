"""Two baselines that `bench/retrieval_quality.py` runs beside this project, on the same questions.

- ``FixedDense``: what a quick RAG script does: fixed 500-character windows of the raw
  notes, dense search only, the question alone.
- ``ChatchatHybrid``: a Langchain-Chatchat-style hybrid: its ChineseRecursiveTextSplitter
  (750/150 characters), e5 dense search + BM25 over ``jieba.lcut_for_search``, combined
  like langchain's EnsembleRetriever (weights 0.5/0.5, reciprocal rank fusion, c=60),
  the question alone (no history).

Both return ``RetrievalResult``s whose hits carry true line spans (found by locating each
chunk's text in its note), so both gold formats score them like the project itself.
Neither ever declines a question.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.reading.chunking import Chunk
from rag.reading.ingest import discover
from rag.search.retrieval import Hit, RetrievalResult

NOTE_SUFFIXES = (".md", ".markdown", ".txt")


def _notes(corpus: Path) -> list[tuple[str, str]]:
    return [(p.relative_to(corpus).as_posix(), p.read_text(encoding="utf-8", errors="replace"))
            for p in discover(corpus, NOTE_SUFFIXES)]


class _Locator:
    """Line spans of chunk texts inside one note, compared without whitespace."""

    def __init__(self, text: str) -> None:
        chars, lines = [], []
        line = 1
        for ch in text:
            if ch == "\n":
                line += 1
            elif not ch.isspace():
                chars.append(ch)
                lines.append(line)
        self.squashed, self.lines, self.cursor = "".join(chars), lines, 0

    def span(self, chunk_text: str) -> tuple[int, int]:
        needle = re.sub(r"\s+", "", chunk_text)
        if not needle:
            return 1, 1
        at = self.squashed.find(needle, max(0, self.cursor - 2 * len(needle)))
        if at < 0:
            at = self.squashed.find(needle)
        if at < 0:  # should not happen: every chunk is a piece of the note
            return 1, 1
        self.cursor = at + 1
        return self.lines[at], self.lines[at + len(needle) - 1]


def _chunks(corpus: Path, split) -> list[Chunk]:
    chunks = []
    for source, text in _notes(corpus):
        locator = _Locator(text)
        for piece in split(text):
            start, end = locator.span(piece)
            chunks.append(Chunk(source, "", start, end, piece))
    return chunks


def _result(question: str, chunks: list[Chunk], order: Sequence[int], scores: Sequence[float]) -> RetrievalResult:
    hits = [Hit(r + 1, float(s), chunks[i]) for r, (i, s) in enumerate(zip(order, scores))]
    return RetrievalResult(question, question, True, hits)


class FixedDense:
    def __init__(self, corpus: Path, embedder, size: int = 500) -> None:
        self.embedder = embedder
        self.chunks = _chunks(corpus, lambda text: [text[i : i + size] for i in range(0, len(text), size)])
        self.vectors = embedder.embed_passages([c.text for c in self.chunks])

    def retrieve(self, question, history=(), k=None) -> RetrievalResult:
        scores = self.vectors @ self.embedder.embed_queries([question])[0]
        order = np.argsort(-scores)[: k or 5]
        return _result(question, self.chunks, order, scores[order])


# --- Langchain-Chatchat's ChineseRecursiveTextSplitter (its text_splitter/chinese_recursive_text_splitter.py),
# --- rewritten on langchain_text_splitters' RecursiveCharacterTextSplitter.
def _split_keep_separator_at_end(text: str, separator: str) -> list[str]:
    parts = re.split(f"({separator})", text)
    splits = ["".join(pair) for pair in zip(parts[0::2], parts[1::2])]
    if len(parts) % 2 == 1:
        splits += parts[-1:]
    return [s for s in splits if s]


def chinese_recursive_splitter(chunk_size: int = 750, chunk_overlap: int = 150):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    class ChineseRecursiveTextSplitter(RecursiveCharacterTextSplitter):
        def __init__(self, **kwargs) -> None:
            super().__init__(keep_separator=True, is_separator_regex=True, **kwargs)
            self._separators = ["\n\n", "\n", "。|！|？", r"\.\s|\!\s|\?\s", "；|;\s", "，|,\s"]

        def _split_text(self, text: str, separators: list[str]) -> list[str]:
            final: list[str] = []
            separator, new_separators = separators[-1], []
            for i, sep in enumerate(separators):
                if sep == "":
                    separator = sep
                    break
                if re.search(sep, text):
                    separator, new_separators = sep, separators[i + 1 :]
                    break
            splits = _split_keep_separator_at_end(text, separator) if separator else list(text)
            good: list[str] = []
            for s in splits:
                if self._length_function(s) < self._chunk_size:
                    good.append(s)
                    continue
                if good:
                    final.extend(self._merge_splits(good, ""))
                    good = []
                final.extend(self._split_text(s, new_separators) if new_separators else [s])
            if good:
                final.extend(self._merge_splits(good, ""))
            return [re.sub(r"\n{2,}", "\n", c.strip()) for c in final if c.strip()]

    return ChineseRecursiveTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)


class ChatchatHybrid:
    def __init__(self, corpus: Path, embedder, chunk_size: int = 750, chunk_overlap: int = 150,
                 weights: tuple[float, float] = (0.5, 0.5), c: int = 60) -> None:
        import jieba
        from rank_bm25 import BM25Okapi

        self.embedder, self.weights, self.c = embedder, weights, c
        splitter = chinese_recursive_splitter(chunk_size, chunk_overlap)
        self.chunks = _chunks(corpus, splitter.split_text)
        self.vectors = embedder.embed_passages([ch.text for ch in self.chunks])
        self._cut = jieba.lcut_for_search
        self.bm25 = BM25Okapi([self._cut(ch.text) for ch in self.chunks])

    def retrieve(self, question, history=(), k=None) -> RetrievalResult:
        k = k or 5
        dense = self.vectors @ self.embedder.embed_queries([question])[0]
        keyword = self.bm25.get_scores(self._cut(question))
        fused: dict[int, float] = {}
        for weight, scores in zip(self.weights, (dense, keyword)):
            for rank, i in enumerate(np.argsort(-scores)[:k], 1):
                fused[int(i)] = fused.get(int(i), 0.0) + weight / (rank + self.c)
        order = sorted(fused, key=fused.__getitem__, reverse=True)[:k]
        return _result(question, self.chunks, order, [fused[i] for i in order])
