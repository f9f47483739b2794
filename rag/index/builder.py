"""Build or update the index of a corpus, re-embedding only what changed."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from rag.index.bm25 import BM25Index, tokenize
from rag.reading.chunking import CHUNKER_VERSION, Chunk, chunk_document
from rag.index.embedders.factory import Embedder, embedder_identity, make_embedder
from rag.index.hubness import update_neighbours
from rag.reading.ingest import Document, IngestError, Skipped, discover_notes, file_hash
from rag.reading.loaders import load_document
from rag.reading.sections import boilerplate_mask
from rag.core.settings import Settings
from rag.reading.scope import note_metadata
from rag.index.unit_vectors import UNIT_KEYS, build_unit_vectors
from rag.index.store import IndexStore, new_version_name
from rag.core.errors import IndexLocked
from rag.index.version_files import DENSE, TITLE_DENSE, FileEntry, IndexNotFound, LoadedIndex, Manifest
from rag.index.vectors import build_vector_index

__all__ = ["build_index", "BuildReport", "IndexLocked", "chunker_identity"]

log = logging.getLogger(__name__)

# A note that loses more than this share of its non-blank lines to page-clutter removal
# is named in the build report: either it really is mostly a scraped page, or the
# clutter rules took the user's writing and should be looked at. Measured on the sample
# notes: 0.00, 0.01, 0.08, 0.18 (a CSDN page with its like/tip-jar widget) and 0.31 (a page
# ending in a 60-line related-articles list), so only the last one is named.
CLUTTER_WARN_SHARE = 0.2
# Front matter and tags of a note indexed before tags were recorded are read from its start.
MAX_METADATA_BYTES = 1 << 20

Progress = Callable[[str, int, int], None]
TITLE_BATCH = 256  # titles per embedding call (short texts; one progress step each)


@dataclass
class BuildReport:
    version: str
    files: int
    files_changed: int
    files_removed: int
    chunks: int
    chunks_embedded: int
    full_rebuild: bool
    seconds: float
    skipped: list[Skipped] = field(default_factory=list)
    unchanged: bool = False
    # Things the user should know about notes that were indexed (e.g. much text removed as clutter).
    warnings: list[str] = field(default_factory=list)
    # What was wrong with the index on disk and has been repaired by this run (empty: nothing).
    repaired: list[str] = field(default_factory=list)
    units_embedded: int = 0  # answer units embedded by this run (rag/index/unit_vectors.py)

    def summary(self) -> str:
        repaired = f"repaired the index ({'; '.join(self.repaired)}): " if self.repaired else ""
        if self.unchanged:
            skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
            return f"{repaired}index is up to date: {self.files} files, {self.chunks} chunks{skipped} ({self.version})"
        kind = "full build" if self.full_rebuild else "update"
        return (
            f"{repaired}{kind}: {self.files} files ({self.files_changed} new or changed, {self.files_removed} removed, "
            f"{len(self.skipped)} skipped), {self.chunks} chunks, {self.chunks_embedded} embedded, "
            f"{self.seconds:.1f}s -> {self.version}"
        )


def chunker_identity(settings: Settings) -> str:
    return (
        f"v{CHUNKER_VERSION}:target={settings.chunk_target_chars}:max={settings.chunk_max_chars}"
        f":code={settings.code_max_chars}:min={settings.chunk_min_chars}"
    )


def _same_files(manifest: Manifest, hashes: dict[str, str]) -> bool:
    """True when the corpus is byte-for-byte what the manifest indexed (skipped files included)."""
    known = {s: f.content_hash for s, f in manifest.files.items()}
    known.update(manifest.skipped_hashes)
    return known == hashes


def _warn_boilerplate(chunks: list[Chunk]) -> None:
    """Name the notes that are mostly navigation or repeated template text: retrieval ranks
    those passages low (rag.reading.sections), and the user should know why they rarely show up."""
    mask = boilerplate_mask(chunks)
    per_file: dict[str, list[bool]] = {}
    for chunk, flagged in zip(chunks, mask):
        per_file.setdefault(chunk.source, []).append(bool(flagged))
    for source, flags in per_file.items():
        if sum(flags) * 2 > len(flags):
            log.warning("%s looks like a navigation page or repeated template text (%d of %d passages); "
                        "it is ranked low in answers", source, sum(flags), len(flags))


def _metadata(path: Path, text: str | None = None) -> dict:
    """The tags and date a note gives itself (rag/reading/scope.py), as FileEntry fields."""
    if text is None:
        try:
            text = path.read_bytes()[:MAX_METADATA_BYTES].decode("utf-8", errors="replace")
        except OSError:
            text = ""
    tags, date = note_metadata(text, path)
    return {"tags": list(tags), "date": date}


def no_passage_reason(doc: Document) -> str:
    """Why a note that was read without error gave no passage to index."""
    if doc.text_lines == 0 and doc.clutter_lines:
        return (f"no passage: all {doc.clutter_lines} non-blank lines were taken for page clutter "
                "(like buttons, related-article lists)")
    if doc.text_lines == 0:
        return "no passage: the note has no text (only blank lines)"
    return f"no passage: the chunker found nothing to index in its {doc.text_lines} lines"


def passage_problem(doc: Document, passages: int, max_passages: int) -> str | None:
    """Why a note's passages are not indexed (none, or too many to embed), or None."""
    if not passages:
        return no_passage_reason(doc)
    if passages > max_passages:
        return (f"{passages} passages, over the limit of {max_passages} for one note (embedding them would take "
                "hours); split the note, or raise RAG_MAX_NOTE_PASSAGES and run `rag index --full`")
    return None


def clutter_warning(doc: Document) -> str | None:
    """A line for the build report when cleaning took more than CLUTTER_WARN_SHARE of a note."""
    if doc.clutter_lines and doc.clutter_share > CLUTTER_WARN_SHARE:
        total = doc.text_lines + doc.clutter_lines
        return (f"{doc.source}: {doc.clutter_lines} of {total} non-blank lines ({doc.clutter_share:.0%}) were "
                "removed as page clutter (like buttons, related-article lists); check the note if that is wrong")
    return None


def build_index(settings: Settings, embedder: Embedder | None = None, progress: Progress | None = None,
                full: bool = False) -> BuildReport:
    """Index ``settings.corpus_dir`` into ``settings.index_dir``; raises IndexLocked if a build runs.

    A damaged current version (or a lost CURRENT pointer) is repaired: the build starts
    from the newest intact version, reusing its vectors, and the damaged one is deleted.
    With ``full`` nothing on disk is read, so it works whatever state the index is in.
    """
    store = IndexStore(settings.index_dir, settings)
    with store.lock():
        return _build_locked(settings, store, embedder, progress or (lambda *a: None), full)


def _build_locked(settings: Settings, store: IndexStore, embedder: Embedder | None, progress: Progress,
                  full: bool) -> BuildReport:
    started = time.perf_counter()
    store.prune(settings.keep_old_versions)
    found = discover_notes(settings.corpus_dir, settings.extensions)
    paths = found.paths
    # The version to build on: the current one if intact, else the newest intact older one.
    base, old_manifest, problems, damaged = (None, None, [], set()) if full else store.newest_intact()
    chunker = chunker_identity(settings)

    # Hash every file first: an unchanged corpus needs no model at all.
    raw_hashes: dict[str, tuple] = {}
    skipped: list[Skipped] = []
    for path in paths:
        source = path.relative_to(settings.corpus_dir).as_posix()
        try:
            raw_hashes[source] = (path, file_hash(path.read_bytes()))
        except OSError as exc:  # deleted or unreadable between listing and reading
            skipped.append(Skipped(source, f"cannot read: {exc.strerror or exc}"))

    # The identity is known without loading the model, so an unchanged corpus costs only hashing.
    identity = embedder.identity if embedder is not None else embedder_identity(settings)
    compatible = (
        not full
        and old_manifest is not None
        and old_manifest.embedder == identity
        and old_manifest.chunker == chunker
    )
    # A version built before unit vectors gains them on the next build, passages reused.
    complete = old_manifest is not None and (not settings.unit_vectors or UNIT_KEYS in old_manifest.checksums)
    # ...and notes indexed before tags and dates were recorded gain them (no passage re-embedded).
    complete = complete and all(entry.date for entry in old_manifest.files.values())
    if compatible and complete and not skipped and _same_files(old_manifest,
                                                                {s: h for s, (_, h) in raw_hashes.items()}):
        if problems:  # the intact version indexes exactly these notes: point CURRENT back at it
            log.warning("repairing the index: %s; %s serves again", "; ".join(problems), base)
            store.point_at(base)
            store.prune(settings.keep_old_versions, damaged=damaged - {base})
        # Links left out by discovery carry no hash: a new one does not force a rebuild, but is reported.
        known = {**old_manifest.skipped, **{s.source: s.reason for s in found.skipped}}
        return BuildReport(old_manifest.version, len(old_manifest.files), 0, 0, old_manifest.chunk_count, 0,
                           False, time.perf_counter() - started,
                           skipped=[Skipped(s, r) for s, r in sorted(known.items())], unchanged=True,
                           repaired=problems)
    if embedder is None:
        embedder = make_embedder(settings)
    old: LoadedIndex | None = None
    if compatible:
        try:
            old = store.load(base)
        except IndexNotFound as exc:  # verified, yet unparsable (a format-1 version): embed everything
            log.warning("%s; re-embedding every passage", exc)
            problems.append(str(exc))
            damaged.add(base)
    old_files = old.manifest.files if old else {}

    old_by_source: dict[str, list[int]] = {}
    old_by_hash: dict[str, int] = {}
    if old:
        for i, chunk in enumerate(old.chunks):
            old_by_source.setdefault(chunk.source, []).append(i)
            old_by_hash.setdefault(chunk.content_hash, i)

    chunks: list[Chunk] = []
    tokens: list[list[str]] = []
    vector_rows: list[tuple[np.ndarray, np.ndarray] | None] = []  # (passage, title) vectors
    source_pos: list[int] = []  # the old version's position of a reused vector row, or -1
    files: dict[str, FileEntry] = {}
    skipped_hashes: dict[str, str] = {}
    warnings: list[str] = []
    changed = 0
    for done, (source, (path, digest)) in enumerate(raw_hashes.items()):
        progress("reading notes", done, len(raw_hashes))
        previous = old_files.get(source)
        if old and previous and previous.content_hash == digest:
            for i in old_by_source.get(source, []):
                chunks.append(old.chunks[i])
                tokens.append(old.tokens[i])
                vector_rows.append((old.vectors[i], old.title_vectors[i]))
                source_pos.append(i)
            files[source] = previous if previous.date else replace(previous, **_metadata(path))
            continue
        try:
            doc = load_document(path, source, settings.max_file_bytes)
        except (IngestError, OSError) as exc:
            reason = str(exc) if isinstance(exc, IngestError) else f"cannot read: {exc.strerror or exc}"
            log.warning("skipping %s: %s", source, reason)
            skipped.append(Skipped(source, reason))
            skipped_hashes[source] = digest
            continue
        doc_chunks = chunk_document(doc, settings.chunk_target_chars, settings.chunk_max_chars,
                                    settings.code_max_chars, settings.chunk_min_chars)
        for warning in [clutter_warning(doc), *(f"{source}: {w}" for w in doc.warnings)]:
            if warning:
                log.info("%s", warning)
                warnings.append(warning)
        reason = passage_problem(doc, len(doc_chunks), settings.max_note_passages)
        if reason:
            # Listed, not "indexed": the Notes tab and `rag index` say why it cannot be found.
            log.info("skipping %s: %s", source, reason)
            skipped.append(Skipped(source, reason))
            skipped_hashes[source] = digest
            continue
        changed += 1
        for chunk in doc_chunks:
            j = old_by_hash.get(chunk.content_hash)
            chunks.append(chunk)
            # An unchanged passage keeps its vector even when the file around it changed or moved.
            if old is not None and j is not None:
                tokens.append(old.tokens[j])
                vector_rows.append((old.vectors[j], old.title_vectors[j]))
                source_pos.append(j)
            else:
                tokens.append(tokenize(chunk.embedding_text()))
                vector_rows.append(None)
                source_pos.append(-1)
        files[source] = FileEntry(digest, len(doc_chunks), doc.encoding, indexed_at=time.time(),
                                  **_metadata(path, doc.text))
    progress("reading notes", len(raw_hashes), len(raw_hashes))

    missing = [i for i, v in enumerate(vector_rows) if v is None]
    vectors = np.zeros((len(chunks), embedder.dim), dtype=np.float32)
    title_vectors = np.zeros((len(chunks), embedder.dim), dtype=np.float32)
    for i, v in enumerate(vector_rows):
        if v is not None:
            vectors[i], title_vectors[i] = v
    # Titles first, each once (short texts, one call); then the passages longest first, so
    # each batch holds passages of about one length (little padding embedded) and the time
    # left, estimated from the passages done, errs long rather than short.
    titles = sorted({chunks[i].title() for i in missing})
    title_rows: dict[str, np.ndarray] = {}
    for start in range(0, len(titles), TITLE_BATCH):
        progress("embedding titles", start, len(titles))
        part = titles[start : start + TITLE_BATCH]
        title_rows.update(zip(part, embedder.embed_queries(part)))
    for i in missing:
        title_vectors[i] = title_rows[chunks[i].title()]
    texts = {i: chunks[i].embedding_text() for i in missing}
    order = sorted(missing, key=lambda i: -len(texts[i]))
    batch = max(1, settings.embedding_batch_size)
    for start in range(0, len(order), batch):
        progress("embedding passages", start, len(order))
        ids = order[start : start + batch]
        vectors[ids] = embedder.embed_passages([texts[i] for i in ids])
    progress("embedding passages", len(missing), len(missing))
    units, units_embedded = None, 0
    if settings.unit_vectors:
        units, units_embedded = build_unit_vectors(chunks, embedder, old.units if old else None, batch, progress)

    # Hub scores (rag/index/hubness.py), stored with the version: only new passages are compared
    # with all; kept ones reuse their neighbours from the old version.
    hub_sims, hub_ids, computed = update_neighbours(
        vectors, np.array(source_pos, dtype=np.int64), old.hub_sims if old else None, old.hub_ids if old else None,
        progress=lambda done, total: progress("hub scores", done, total))
    log.info("hub neighbours: %d of %d passages computed against all", computed, len(chunks))

    _warn_boilerplate(chunks)
    progress("writing index", 0, 1)
    version_name = new_version_name()
    dense = build_vector_index(vectors, settings, version=version_name, name=DENSE)
    title_dense = build_vector_index(title_vectors, settings, version=version_name, name=TITLE_DENSE)
    bm25 = BM25Index.build(tokens)
    manifest = Manifest(
        version=version_name,
        built_at=time.time(),
        embedder=embedder.identity,
        dim=embedder.dim,
        chunker=chunker,
        dense_kind=dense.kind,
        files=files,
        skipped={s.source: s.reason for s in skipped + found.skipped},
        skipped_hashes=skipped_hashes,
    )
    version = store.write(manifest, chunks, tokens, vectors, dense, bm25, title_vectors, title_dense,
                          units=units, hubs=(hub_sims, hub_ids))
    store.prune(settings.keep_old_versions, damaged=damaged)
    progress("writing index", 1, 1)
    removed = len(set(old_files) - set(files)) if old else 0
    if problems:
        log.warning("repaired the index: %s", "; ".join(problems))
    return BuildReport(version, len(files), changed, removed, len(chunks), len(missing), old is None,
                       time.perf_counter() - started, skipped + found.skipped, warnings=warnings,
                       repaired=problems, units_embedded=units_embedded)

