"""The state of every note: what the serving index holds of it, and why a note is missing.

``file_states`` compares the notes on disk with the manifest of the version that serves
(the current one, or the newest intact one when it is damaged), by content hash, so it
needs no model and reads no vectors:

* ``indexed``: the note's bytes are what the index holds (with its passages and when it was indexed);
* ``pending``: new, changed or deleted since that version was built; the next build takes it;
* ``skipped``: the build passed over it on purpose (empty, no passage in it, a link out of the folder);
* ``failed``: the build could not read it (the error says why: encoding, permissions, a PDF
  without text, a name that is not UTF-8).

``rag status --files [--json]`` prints them; ``rag status`` the summary.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from rag.reading.ingest import discover_notes, file_hash
from rag.core.settings import Settings
from rag.index.store import IndexStore
from rag.index.version_files import Manifest

__all__ = ["FileState", "IndexSummary", "file_states", "index_summary"]

State = Literal["indexed", "pending", "skipped", "failed"]
# Reasons of notes passed over on purpose; any other reason is a note that failed to read.
_PASSED_OVER = ("no passage", "empty", "link to ", "broken link")


@dataclass(frozen=True)
class FileState:
    source: str  # the note's path inside the notes folder
    state: State
    passages: int = 0
    indexed_at: float | None = None  # seconds since the epoch; None when not indexed
    reason: str = ""  # why pending, skipped or failed
    tags: tuple[str, ...] = ()  # what the note says about itself (rag/reading/scope.py), when indexed
    date: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IndexSummary:
    version: str | None
    built_at: float | None
    notes: int
    passages: int
    counts: dict[str, int]  # notes per state
    warning: str | None  # the current version is damaged and an older one serves

    def to_dict(self) -> dict:
        return asdict(self)


def _serving(settings: Settings) -> tuple[Manifest | None, str | None]:
    store = IndexStore(settings.index_dir, settings)
    version, manifest, problems, _ = store.newest_intact()
    warning = f"{'; '.join(problems)} ({version} serves)" if problems and version else None
    return manifest, warning


def _skip_state(reason: str) -> State:
    return "skipped" if reason.startswith(_PASSED_OVER) else "failed"


def file_states(settings: Settings) -> list[FileState]:
    """Every note on disk, and every note the index holds that is gone, in path order."""
    manifest, _ = _serving(settings)
    files = manifest.files if manifest else {}
    skipped = manifest.skipped if manifest else {}
    skipped_hashes = manifest.skipped_hashes if manifest else {}
    built_at = manifest.built_at if manifest else None
    found = discover_notes(Path(settings.corpus_dir), settings.extensions)
    states: dict[str, FileState] = {}
    for path in found.paths:
        source = path.relative_to(settings.corpus_dir).as_posix()
        try:
            digest = file_hash(path.read_bytes())
        except OSError as exc:
            states[source] = FileState(source, "failed", reason=f"cannot read: {exc.strerror or exc}")
            continue
        entry = files.get(source)
        if entry is not None and entry.content_hash == digest:
            states[source] = FileState(source, "indexed", entry.chunks, entry.indexed_at or built_at,
                                       tags=tuple(entry.tags), date=entry.date)
        elif source in skipped and skipped_hashes.get(source) == digest:
            states[source] = FileState(source, _skip_state(skipped[source]), reason=skipped[source])
        else:
            why = "changed since the index was built" if entry is not None or source in skipped else "new"
            states[source] = FileState(source, "pending", reason=f"{why}: the next index build takes it")
    for item in found.skipped:
        states[item.source] = FileState(item.source, _skip_state(item.reason), reason=item.reason)
    for source, entry in files.items():
        if source not in states:
            states[source] = FileState(source, "pending", entry.chunks, entry.indexed_at or built_at,
                                       "deleted: the next index build drops its passages")
    return [states[s] for s in sorted(states)]


def index_summary(settings: Settings, states: list[FileState] | None = None) -> IndexSummary:
    manifest, warning = _serving(settings)
    states = file_states(settings) if states is None else states
    counts: dict[str, int] = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    return IndexSummary(manifest.version if manifest else None, manifest.built_at if manifest else None,
                        len(manifest.files) if manifest else 0, manifest.chunk_count if manifest else 0,
                        counts, warning)
