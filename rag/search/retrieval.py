"""Hybrid retrieval: dense (FAISS) + keyword (BM25) with rank fusion, and a relevance decision."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from rag.index.bm25 import STOPWORDS, tokenize
from rag.reading.chunking import Chunk
from rag.reading.structure import top_sections
from rag.search.conversation import Message, followup_context, is_followup
from rag.index.embedders.factory import Embedder, make_embedder
from rag.index.hubness import dehub
from rag.search.glossary import english_glosses
from rag.search.note_finder import NOTE_CANDIDATES, NOTES_LISTED, NoteMatch, naming_passages, rank_notes
from rag.search.note_outline import NoteSection, OutlineItem, note_by_name, note_sections, outline
from rag.search.rerankers import Reranker, make_reranker
from rag.reading.scope import Scope, scope_mask, search_within
from rag.search.ranking import Signal, follow_topic, fuse, select_hits, weigh_marked
from rag.search.unit_signal import NO_UNIT, best_unit_scores
from rag.search.code_passages import asks_code
from rag.search.windows import fit_budget, question_terms
from rag.search.note_lines import NoteLines
from rag.core.settings import Settings
from rag.core.text import latin_share, written_like_name
from rag.index.unit_vectors import MAX_EMBEDDED_WHEN_ASKED
from rag.index.version_files import IndexNotFound, LoadedIndex
from rag.search.served_index import IndexMismatch, IndexStatus, IndexView, ServedIndex

__all__ = ["Hit", "RetrievalResult", "IndexStatus", "Retriever", "IndexNotFound", "IndexMismatch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    score: float
    chunk: Chunk
    # The passage that matched, when the hit is read as a larger section around it ("" : the
    # whole hit matched). Not part of the JSON contract: answers use it to look there first.
    focus: str = ""
    # What an answer with a character budget (the prompt's context_chars) reads of the hit, when
    # not all of it: a long hit that, after the hits before it, would pass the budget is read as
    # the stretch of it that matches the question (rag/search/windows.py), so the next hits are
    # still read. None: read whole. Not part of the JSON contract; the hit itself stays whole for
    # the extractive answer and for what is shown.
    window: Chunk | None = None

    @property
    def reading(self) -> Chunk:
        """The hit as a budgeted reader (the answer prompt) reads it: its window, else all of it."""
        return self.window or self.chunk

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
        } | ({"page": self.chunk.page} if self.chunk.page is not None else {})


@dataclass(frozen=True)
class RetrievalResult:
    question: str
    search_query: str  # the question after follow-up resolution
    relevant: bool
    hits: list[Hit] = field(default_factory=list)
    # The vector of the question's own words: answers score the sentences of the passages
    # found (with the earlier turns, for a follow-up) against what is asked now. Not in the
    # JSON contract.
    query_vector: np.ndarray | None = field(default=None, repr=False, compare=False)
    # The index's template lines (a blog footer many notes repeat): never part of an answer.
    template_lines: frozenset[str] = field(default=frozenset(), repr=False, compare=False)


# --- follow-ups (chosen on bench/data/dev.jsonl's follow-up questions) -----------------
# How much the earlier turns count for a question that refers back ("那它的缺点呢？"). A
# complete question ignores them: leaning 0.4 on them cost a question asked after an
# unrelated exchange recall@5 0.986 -> 0.971 and MRR 0.891 -> 0.824 on held-back questions.
ELLIPTICAL_LEAN = 1.0
# The question's own dense signal weighs this much minus the lean.
OWN_QUESTION_WEIGHT = 1.5
# Keyword scores of the earlier turns count this share of the lean.
CONTEXT_KEYWORD_SHARE = 0.5
# Weight of an English question's words found in Chinese (rag/search/glossary.py) against the
# words themselves in the keyword ranking: each English word counts once, by its best Chinese
# word. Chosen on dev-md.jsonl's English questions (rag eval MRR 0.900 without, 0.850 / 0.900 /
# 1.000 / 0.950 / 0.883 at 0.25 / 0.5 / 1 / 1.5 / 2), dev.jsonl's four at 1.000 throughout;
# checked on bench/data/check_english.jsonl (bench/README.md, issue 15 round 9).
GLOSS_SHARE = 1.0
# The subject of the earlier turns: the passages within this cosine of the best match,
# and the keyword matches above this share of the best keyword score.
TOPIC_PASSAGES = 3
TOPIC_DENSE_MARGIN = 0.02
TOPIC_KEYWORD_SHARE = 0.5
# A score-fusion topic bonus (rank fusion uses the value of one first place instead).
SCORE_TOPIC_BONUS = 0.5


@dataclass(frozen=True)
class Query:
    """A question ready for search: its own words, the earlier turns, and their vectors."""

    text: str
    context: str  # the earlier turns it may refer to; "" without history
    elliptical: bool  # leans on the earlier turns rather than standing alone
    lean: float  # how much the earlier turns count (0 without history)
    vector: np.ndarray  # the question blended with the earlier turns (the question alone without history)
    question_vector: np.ndarray  # the question's own words
    context_vector: np.ndarray | None  # the earlier turns
    own_vector: np.ndarray  # what title search and the relevance decision use
    glosses: dict[str, frozenset[str]] = field(default_factory=dict)  # an English question's words in Chinese

    @property
    def search_text(self) -> str:
        return f"{self.text}\n{self.context}" if self.context else self.text


class Retriever:
    """Answers `retrieve()` from the current index version, following swaps made by rebuilds.

    Stages, in order: candidates per signal (dense passage vectors, heading vectors,
    BM25) → rank fusion → follow-up topic → boilerplate weighting → optional reranking
    (`rag.search.rerankers`) → selection (read each hit as its enclosing section when it fits,
    drop near-duplicates) → the relevance decision. The version it answers from, followed
    across rebuilds, is ``served`` (rag/search/served_index.py).
    """

    def __init__(self, settings: Settings, embedder: Embedder | None = None,
                 reranker: Reranker | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._reranker = reranker if reranker is not None else make_reranker(settings)
        self.served = ServedIndex(settings, lambda: self.embedder.identity)
        # The last whole-note request's note per version: the LLM summary, then the outline, ask.
        self._last_note: tuple[tuple[str, str], tuple] | None = None
        self._notes = NoteLines(settings.corpus_dir, settings.max_file_bytes)

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder | None = None) -> "Retriever":
        return cls(settings, embedder)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.settings)
        return self._embedder

    def _refresh(self) -> LoadedIndex:
        return self.served.refresh()

    def _current_view(self) -> IndexView:
        return self.served.view()

    def status(self) -> IndexStatus:
        return self.served.status()


    def retrieve(self, question: str, history: Sequence[Message] = (), k: int | None = None,
                 scope: Scope | None = None) -> RetrievalResult:
        """The hits for ``question`` (with ``history`` for a follow-up), searched inside
        ``scope`` when one is given; raises ScopeEmpty when the scope holds no note."""
        question = (question or "").strip()
        if not question:
            raise ValueError("the question is empty")
        question = question[: self.settings.max_question_chars]
        k = k or self.settings.top_k
        view = self._current_view()
        index = view.index
        query = self._query(question, history)
        if not index.chunks:
            return RetrievalResult(question, query.search_text, False, [])
        s = self.settings
        n_cand = min(max(s.candidates, k * 3), len(index.chunks))
        allowed = self._allowed(view, scope)
        signals, topic, own_top = self._candidates(query, index, n_cand, view.hubs, allowed)
        fused = fuse(signals, s.fusion, s.rrf_k, n_cand)
        unit = 1.0 / (s.rrf_k + 1) if s.fusion == "rrf" else 1.0  # what a first place is worth
        bonus = query.lean * s.topic_weight * (unit if s.fusion == "rrf" else SCORE_TOPIC_BONUS) if topic else 0.0
        if query.elliptical:
            follow_topic(fused, topic, index.chunks, bonus)
        weigh_marked(fused, view.boilerplate, s.boilerplate_weight)
        weigh_marked(fused, view.code_heavy, 1.0 if asks_code(f"{query.text} {query.context}") else s.code_weight)
        best = sum(sig.weight for sig in signals) * unit + bonus  # first everywhere, on topic: 1.0
        ranked = sorted(fused, key=fused.__getitem__, reverse=True)
        if self._reranker is not None:
            head = ranked[: s.rerank_candidates]
            order = self._reranker.rerank(query.text, [index.chunks[i].embedding_text() for i in head])
            ranked = [head[j] for j in order] + ranked[len(head):]
        selected = select_hits(ranked, view.sections, k, s.dedup_similarity, s.expand_budget_chars)
        # Long later hits are read as the window that matches, so the next ones fit the budget.
        terms = question_terms(query.text, query.context, index.bm25, CONTEXT_KEYWORD_SHARE)
        read = fit_budget(selected, index.chunks, terms, s.context_chars, self._notes.lines)
        hits = [Hit(rank=r + 1, score=min(1.0, fused[idx] / best), chunk=chunk,
                    focus=index.chunks[idx].text if chunk.text != index.chunks[idx].text else "",
                    window=window if window is not chunk else None)
                for r, ((idx, chunk), window) in enumerate(zip(selected, read))]
        relevant = self.is_relevant(question, own_top, index)
        return RetrievalResult(question, query.search_text, relevant, hits, query.question_vector, view.template_lines)

    def _allowed(self, view: IndexView, scope: Scope | None) -> np.ndarray | None:
        """The passages a scope allows (None: all); raises ScopeEmpty when it allows none."""
        return scope_mask(scope, view.sources, view.index.manifest.files) if scope else None

    def find_notes(self, topic: str, limit: int = NOTES_LISTED,
                   scope: Scope | None = None) -> tuple[bool, list[NoteMatch]]:
        """(do the notes cover ``topic``, the notes that talk about it, best first): the
        question's hybrid ranking over ``NOTE_CANDIDATES`` passages, grouped by note
        (rag/search/note_finder.py)."""
        view = self._current_view()
        index = view.index
        query = self._query(topic.strip()[: self.settings.max_question_chars], ())
        if not index.chunks:
            return False, []
        s = self.settings
        n_cand = min(max(s.candidates, NOTE_CANDIDATES), len(index.chunks))
        signals, _, own_top = self._candidates(query, index, n_cand, view.hubs, self._allowed(view, scope))
        fused = fuse(signals, s.fusion, s.rrf_k, n_cand)
        weigh_marked(fused, view.boilerplate, s.boilerplate_weight)
        # A passage names the topic when its keyword terms hold every term of the topic.
        names = naming_passages(fused, index.chunks, index.tokens, set(tokenize(query.text)) - STOPWORDS, query.glosses)
        # Notes that name the topic cover it, whatever the dense similarity says.
        relevant = bool(names) or self.is_relevant(query.text, own_top, index)
        return relevant, rank_notes(fused, index.chunks, names, limit)

    def outline_note(self, request: str) -> tuple[str | None, list[OutlineItem]]:
        """(the note a whole-note question names, its outline): by file name or first heading,
        else the note ranked first for the request's words (rag/search/note_outline.py)."""
        source, chunks, sections, skip = self._note_structure(request)
        return source, outline(source, chunks, sections, skip) if source else []

    def note_sections(self, request: str) -> tuple[str | None, list[NoteSection]]:
        """(the note a whole-note question names, its top-level sections with their passages),
        for a summary written by the LLM (rag/answer/note_summary_llm.py)."""
        source, chunks, sections, skip = self._note_structure(request)
        return source, note_sections(source, chunks, sections, skip) if source else []

    def _note_structure(self, request: str) -> tuple[str | None, list[Chunk], list[tuple[str, int, int]], set[int]]:
        view = self._current_view()
        key = (request, view.index.manifest.version)
        last = self._last_note
        if last is not None and last[0] == key:
            return last[1]
        found = self._find_note_structure(view, request)
        self._last_note = (key, found)
        return found

    def _find_note_structure(self, view: IndexView, request: str):
        chunks = view.index.chunks
        source = note_by_name(request, chunks)
        if source is None and request.strip():
            relevant, matches = self.find_notes(request, limit=1)
            source = matches[0].source if relevant and matches else None
        if source is None:
            return None, [], [], set()
        skip = {int(i) for i in np.flatnonzero(view.boilerplate)}
        doc = self._notes.document(source)  # the note's own structure, read the way the build read it
        # Gone or unreadable since the build: the note as one section.
        sections = top_sections(doc.lines, infer_titles=not doc.marked_headings) if doc is not None else \
            [("", 1, max(c.line_end for c in chunks if c.source == source))]
        return source, chunks, sections, skip

    def unit_similarity(self, result: RetrievalResult) -> Callable[[Sequence[str]], np.ndarray] | None:
        """Cosines of answer units to ``result``'s question, from the unit vectors the index
        build stored (rag/index/unit_vectors.py); a unit the version lacks is embedded now, up to
        ``MAX_EMBEDDED_WHEN_ASKED`` of them (the others count as unrelated)."""
        if result.query_vector is None:
            return None
        units = self._current_view().index.units
        query = result.query_vector

        def similarity(texts: Sequence[str]) -> np.ndarray:
            if units is not None:
                vectors, missing = units.lookup(texts)
            else:
                vectors, missing = np.zeros((len(texts), len(query)), dtype=np.float32), list(range(len(texts)))
            if missing:
                now = missing[:MAX_EMBEDDED_WHEN_ASKED]
                vectors[now] = self.embedder.embed_passages([texts[i] for i in now])
            return vectors @ query

        return similarity

    # --- stages -------------------------------------------------------------------------
    def _query(self, question: str, history: Sequence[Message]) -> Query:
        # A complete question is a new search, whatever was asked before: the earlier turns
        # count only for a question that refers back to them (a pronoun, "那…呢", a few words).
        context = followup_context(question, history) if is_followup(question) else ""
        glosses = english_glosses(question, self.settings.glossary)
        if not context:
            vector = self.embedder.embed_queries([question])[0]
            return Query(question, "", False, 0.0, vector, vector, None, vector, glosses)
        q_vec, c_vec = self.embedder.embed_queries([question, context])
        both = q_vec + c_vec
        blended = both / max(float(np.linalg.norm(both)), 1e-12)
        return Query(question, context, True, ELLIPTICAL_LEAN, blended, q_vec, c_vec, blended, glosses)

    def _candidates(self, query: Query, index: LoadedIndex, n: int, hubs: np.ndarray,
                    allowed: np.ndarray | None = None) -> tuple[list[Signal], list[int], float]:
        """Rankings per signal, the passages the earlier turns were about, and the best
        dense similarity of the question's own words (for the relevance decision). Passage
        vectors rank by similarity less the passage's hub score (rag/index/hubness.py); the
        relevance decision keeps the raw similarity. With ``allowed`` (a scope, rag/reading/scope.py)
        every signal ranks only the allowed passages."""
        s = self.settings

        def dense(ids: np.ndarray, scores: np.ndarray, weight: float) -> Signal:
            return Signal(*dehub(ids, scores, hubs, s.hub_weight), weight)

        def search(store, vectors: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return store.search(queries, n) if allowed is None else search_within(vectors, allowed, queries, n)

        signals: list[Signal] = []
        keyword = index.bm25.scores(tokenize(query.text)) + GLOSS_SHARE * index.bm25.best_of(query.glosses.values())
        if allowed is not None:
            keyword = np.where(allowed, keyword, 0.0)
        topic: list[int] = []
        if query.context_vector is not None:
            scores, ids = search(index.dense, index.vectors,
                                 np.stack([query.vector, query.question_vector, query.context_vector]))
            signals.append(dense(ids[0], scores[0], s.dense_weight * query.lean))
            signals.append(dense(ids[1], scores[1], s.dense_weight * (OWN_QUESTION_WEIGHT - query.lean)))
            c_keyword = index.bm25.scores(tokenize(query.context))
            if allowed is not None:
                c_keyword = np.where(allowed, c_keyword, 0.0)
            keyword = keyword + CONTEXT_KEYWORD_SHARE * query.lean * c_keyword
            topic = [int(i) for i, sc in zip(ids[2][:TOPIC_PASSAGES], scores[2][:TOPIC_PASSAGES])
                     if sc >= scores[2][0] - TOPIC_DENSE_MARGIN]
            topic += [int(i) for i in np.argsort(-c_keyword)[:TOPIC_PASSAGES]
                      if c_keyword[i] >= TOPIC_KEYWORD_SHARE * c_keyword.max() > 0]
            own_top = float(scores[0][0] if query.elliptical else scores[1][0])
        else:
            scores, ids = search(index.dense, index.vectors, query.vector[None, :])
            signals.append(dense(ids[0], scores[0], s.dense_weight))
            own_top = float(scores[0][0])
        title_scores, title_ids = search(index.title_dense, index.title_vectors, query.own_vector[None, :])
        signals.append(Signal(title_ids[0], title_scores[0], s.title_weight))
        kw_ids = np.array([i for i in np.argsort(-keyword)[:n] if keyword[i] > 0], dtype=np.int64)
        signals.append(Signal(kw_ids, keyword[kw_ids], s.keyword_weight))
        if s.unit_weight > 0 and index.units is not None:
            pool = np.unique(np.concatenate([sig.ids[sig.ids >= 0] for sig in signals]))
            best = best_unit_scores(index.units, query.own_vector, index.chunks, pool)
            if allowed is not None:
                best = np.where(allowed, best, NO_UNIT)
            unit_ids = np.array([i for i in np.argsort(-best)[:n] if best[i] > NO_UNIT], dtype=np.int64)
            signals.append(Signal(unit_ids, best[unit_ids], s.unit_weight))
        return signals, topic, own_top

    def is_relevant(self, question: str, top_dense: float, index: LoadedIndex) -> bool:
        """Do the notes cover the question?

        Two votes, calibrated on bench/data/dev.jsonl: the best dense similarity (lower
        for English questions over Chinese notes, so their bar is lower), and, for a
        question that names a technical term in Latin letters (in Chinese text any Latin word; in
        English a name written like one, ``_NAMED``: "HNSW", "ALiBi"), whether the notes mention it
        at all: "投机解码（speculative decoding）" with no "speculative" anywhere in them is not theirs.
        """
        s = self.settings
        english = latin_share(question) > 0.6
        score = top_dense + (s.relevance_english_offset if english else 0.0)
        if score < s.relevance_threshold:
            return False
        if score < s.relevance_sure_threshold:
            terms = _named_terms(question) if english else [m.group(0).lower() for m in _LATIN_TERM.finditer(question)]
            if any(_term_unknown(t, index) for t in terms):
                return False
        return True


_LATIN_TERM = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{2,}")
# A word of an English question written like a name (``written_like_name``: "HNSW", "ALiBi",
# "RMSNorm", "GPT-3"), not a sentence's first word. English questions over Chinese notes pass the
# dense bar whether the notes cover them or not (12 questions on topics absent from both
# corpora: 0.806-0.840; 53 answerable: 0.793-0.886), so a name the notes never mention is the
# vote that tells: it turned away 4 of the 12 (GRPO, ALiBi, YaRN, HNSW) and none of the 53.
_NAMED = re.compile(r"[A-Za-z][A-Za-z0-9\-]{2,}")


def _named_terms(question: str) -> list[str]:
    """The words of an English question written like names, as written (camelCase parts kept)."""
    return [w for w in _NAMED.findall(question) if written_like_name(w)]




def _term_unknown(term: str, index: LoadedIndex) -> bool:
    """Neither the term nor any of its parts (split like the keyword index does) is in the notes."""
    parts = [p for p in tokenize(term) if len(p) >= 3] or [term]
    return all(p not in index.bm25.vocab for p in parts)
