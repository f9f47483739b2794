"""Hybrid retrieval: dense (FAISS) + keyword (BM25) with rank fusion, and a relevance decision."""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .bm25 import tokenize
from .chunking import Chunk
from .conversation import Message, followup_context, is_followup
from .embeddings import Embedder, make_embedder
from .settings import Settings
from .store import IndexNotFound, IndexStore, LoadedIndex

__all__ = ["Hit", "RetrievalResult", "IndexStatus", "Retriever", "IndexNotFound", "IndexMismatch"]

log = logging.getLogger(__name__)


class IndexMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    score: float
    chunk: Chunk

    @property
    def source(self) -> str:
        return self.chunk.source

    @property
    def heading(self) -> str:
        return self.chunk.heading

    @property
    def line_start(self) -> int:
        return self.chunk.line_start

    @property
    def line_end(self) -> int:
        return self.chunk.line_end

    @property
    def text(self) -> str:
        return self.chunk.text

    def to_dict(self) -> dict:
        return {
            "rank": self.rank,
            "score": round(self.score, 4),
            "source": self.source,
            "heading": self.heading,
            "line_start": self.line_start,
            "line_end": self.line_end,
            "text": self.text,
        }


@dataclass(frozen=True)
class RetrievalResult:
    question: str
    search_query: str  # the question after follow-up resolution
    relevant: bool
    hits: list[Hit] = field(default_factory=list)


@dataclass(frozen=True)
class IndexStatus:
    version: str
    files: int
    chunks: int
    built_at: float
    embedder: str
    dense_kind: str
    skipped: dict[str, str]
    # Set when what serves is not the current version as built (a damaged index fell back).
    warning: str | None = None


class Retriever:
    """Answers `retrieve()` from the current index version, following swaps made by rebuilds."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.store = IndexStore(settings.index_dir, settings)
        self._embedder = embedder
        self._index: LoadedIndex | None = None
        self._seen_current: str | None = None  # the CURRENT name the loaded index answers for
        self._warning: str | None = None
        self._reload_lock = threading.Lock()
        self._refresh(required=True)

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder | None = None) -> "Retriever":
        return cls(settings, embedder)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.settings)
        return self._embedder

    def _refresh(self, required: bool = False) -> LoadedIndex:
        """Load the current version if it is not the one in memory (cheap when nothing changed).

        A damaged version falls back to the newest intact one (IndexStore.load_serving), or
        keeps what is in memory, with ``status().warning`` saying so; it never fails a question
        while an index is loaded.
        """
        version = self.store.current_version()
        index = self._index
        if index is not None and version == self._seen_current:
            return index
        with self._reload_lock:
            if self._index is not None and version == self._seen_current:
                return self._index
            try:
                loaded, self._warning = self.store.load_serving(ef_search=self.settings.hnsw_ef_search)
            except IndexNotFound as exc:
                if self._index is None:
                    raise
                self._warning = f"{exc} (still serving {self._index.manifest.version}, loaded earlier)"
                log.warning("%s", self._warning)
                self._seen_current = version
                return self._index
            if loaded.manifest.embedder != self.embedder.identity:
                raise IndexMismatch(
                    f"the index was built with {loaded.manifest.embedder} but the configured embedder is "
                    f"{self.embedder.identity}: run `rag index` to rebuild"
                )
            self._seen_current = version
            self._index = loaded  # one reference swap: queries in flight keep the old object
            log.info("serving index %s (%d chunks)", version, len(loaded.chunks))
            return loaded

    def status(self) -> IndexStatus:
        m = self._refresh().manifest
        return IndexStatus(m.version, len(m.files), m.chunk_count, m.built_at, m.embedder, m.dense_kind,
                           dict(m.skipped), self._warning)

    def retrieve(self, question: str, history: Sequence[Message] = (), k: int | None = None) -> RetrievalResult:
        question = (question or "").strip()
        if not question:
            raise ValueError("the question is empty")
        question = question[: self.settings.max_question_chars]
        k = k or self.settings.top_k
        index = self._refresh()
        context = followup_context(question, history)
        search_query = f"{question}\n{context}" if context else question
        if not index.chunks:
            return RetrievalResult(question, search_query, False, [])

        s = self.settings
        n_cand = min(max(s.candidates, k * 3), len(index.chunks))
        signals: list[_Signal] = []
        q_tokens = tokenize(question)
        keyword = index.bm25.scores(q_tokens)
        lean, elliptical = 0.0, False
        if context:
            q_vec, c_vec = self.embedder.embed_queries([question, context])
            both = q_vec + c_vec
            query_vec = both / max(float(np.linalg.norm(both)), 1e-12)
            dense_scores, dense_ids = index.dense.search(np.stack([query_vec, q_vec, c_vec]), n_cand)
            # An elliptical question leans on the earlier turns; a complete one only a little,
            # in case the user changed the subject.
            elliptical = is_followup(question)
            lean = 1.0 if elliptical else 0.4
            signals.append(_Signal(dense_ids[0], dense_scores[0], s.dense_weight * lean))
            signals.append(_Signal(dense_ids[1], dense_scores[1], s.dense_weight * (1.5 - lean)))
            c_keyword = index.bm25.scores(tokenize(context))
            keyword = keyword + 0.5 * lean * c_keyword
            # The subject of the earlier turns: the passages that clearly match them, not the runners-up.
            topic = [int(i) for i, sc in zip(dense_ids[2][:3], dense_scores[2][:3]) if sc >= dense_scores[2][0] - 0.02]
            topic += [int(i) for i in np.argsort(-c_keyword)[:3] if c_keyword[i] >= 0.5 * c_keyword.max() > 0]
            # A complete question is matched, and judged relevant or not, on its own words.
            own_vec, own_top = (query_vec, dense_scores[0][0]) if elliptical else (q_vec, dense_scores[1][0])
        else:
            query_vec = self.embedder.embed_queries([question])[0]
            dense_scores, dense_ids = index.dense.search(query_vec[None, :], n_cand)
            signals.append(_Signal(dense_ids[0], dense_scores[0], s.dense_weight))
            topic = []
            own_vec, own_top = query_vec, dense_scores[0][0]
        title_scores, title_ids = index.title_dense.search(own_vec[None, :], n_cand)
        signals.append(_Signal(title_ids[0], title_scores[0], s.title_weight))
        kw_ids = np.array([i for i in np.argsort(-keyword)[:n_cand] if keyword[i] > 0], dtype=np.int64)
        signals.append(_Signal(kw_ids, keyword[kw_ids], s.keyword_weight))
        fused = _fuse(signals, s.fusion, s.rrf_k)
        unit = 1.0 / (s.rrf_k + 1) if s.fusion == "rrf" else 1.0  # what a first place is worth
        topic_bonus = lean * s.topic_weight * (unit if s.fusion == "rrf" else 0.5) if topic else 0.0
        if topic and elliptical:
            # A follow-up asks about the same part of the notes as the turn before it. A complete
            # question may well be on a new subject: the earlier turns only nudge its search above.
            for idx in list(fused):
                if any(_same_topic(index.chunks[idx], index.chunks[t]) for t in topic):
                    fused[idx] += topic_bonus
        best = sum(sig.weight for sig in signals) * unit + topic_bonus  # first everywhere, on topic: 1.0
        ranked = sorted(fused, key=fused.__getitem__, reverse=True)
        kept: list[int] = []
        shingles: dict[int, set[str]] = {}
        for idx in ranked:
            if len(kept) >= k:
                break
            shingles[idx] = _shingles(index.chunks[idx].text)
            # A near-duplicate passage (the same paragraph pasted into two notes) adds nothing new.
            # Compared by text: embeddings of merely related passages are too close to tell apart.
            if any(_overlap(shingles[idx], shingles[j]) >= s.dedup_similarity for j in kept):
                continue
            kept.append(idx)
        hits = [
            Hit(rank=r + 1, score=min(1.0, fused[idx] / best), chunk=index.chunks[idx])
            for r, idx in enumerate(kept)
        ]
        relevant = self.is_relevant(question, float(own_top), index)
        return RetrievalResult(question, search_query, relevant, hits)

    def is_relevant(self, question: str, top_dense: float, index: LoadedIndex) -> bool:
        """Do the notes cover the question?

        Two votes, calibrated on bench/data/dev.jsonl: the best dense similarity (lower
        for English questions over Chinese notes, so their bar is lower), and, for a
        question that names a technical term in Latin letters inside Chinese text, whether
        the notes mention that term at all: "投机解码（speculative decoding）" with no
        "speculative" anywhere in the notes is a question about something else.
        """
        s = self.settings
        english = _latin_share(question) > 0.6
        score = top_dense + (s.relevance_english_offset if english else 0.0)
        if score < s.relevance_threshold:
            return False
        if not english and score < s.relevance_sure_threshold:
            terms = [m.group(0).lower() for m in _LATIN_TERM.finditer(question)]
            if any(_term_unknown(t, index) for t in terms):
                return False
        return True


_LATIN_TERM = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{2,}")


def _latin_share(text: str) -> float:
    """Share of Latin words among words and CJK characters: a word weighs what a character does,
    so "投机解码（speculative decoding）是怎么加速推理的？" is a Chinese question."""
    latin = len(re.findall(r"[A-Za-z]+", text))
    cjk = len(re.findall(r"[\u3400-\u9fff]", text))
    return latin / (latin + cjk) if latin + cjk else 0.0


def _term_unknown(term: str, index: LoadedIndex) -> bool:
    """Neither the term nor any of its parts (split like the keyword index does) is in the notes."""
    parts = [p for p in tokenize(term) if len(p) >= 3] or [term]
    return all(p not in index.bm25.vocab for p in parts)


@dataclass
class _Signal:
    """One ranking of candidate chunks (ids best first) with the scores behind it."""

    ids: np.ndarray
    scores: np.ndarray
    weight: float


def _fuse(signals: list[_Signal], mode: str, rrf_k: int) -> dict[int, float]:
    """Combine rankings: reciprocal rank fusion, or a weighted sum of min-max scaled scores."""
    fused: dict[int, float] = {}
    for sig in signals:
        valid = sig.ids >= 0
        ids, scores = sig.ids[valid], np.asarray(sig.scores, dtype=np.float64)[valid]
        if not len(ids):
            continue
        if mode == "rrf":
            contrib = sig.weight / (rrf_k + 1 + np.arange(len(ids)))
        else:
            lo, hi = float(scores.min()), float(scores.max())
            contrib = sig.weight * ((scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores))
        for idx, c in zip(ids.tolist(), contrib.tolist()):
            fused[idx] = fused.get(idx, 0.0) + c
    return fused


def _shingles(text: str, n: int = 5) -> set[str]:
    squashed = re.sub(r"\s+", "", text)
    return {squashed[i : i + n] for i in range(max(len(squashed) - n + 1, 1))}


def _overlap(a: set[str], b: set[str]) -> float:
    """Share of the smaller passage found in the other (1.0: one contains the other)."""
    return len(a & b) / max(min(len(a), len(b)), 1)


def _same_topic(a: Chunk, b: Chunk) -> bool:
    """Same note and the same section or sibling sections, or a few lines apart."""
    if a.source != b.source:
        return False
    pa, pb = a.heading.split(" > "), b.heading.split(" > ")
    if a.heading and b.heading and ((len(pa) > 1 and pa[:-1] == pb[:-1]) or a.heading.startswith(b.heading)
                                    or b.heading.startswith(a.heading)):
        return True
    return abs(a.line_start - b.line_start) <= 8
