"""Adding notes (uploads), all-or-nothing: every file of a batch is validated before any is
written, each is written to a hidden temporary file and renamed into place, so a failed upload
leaves the corpus, and therefore the index, exactly as it was.
"""
from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from rag.reading.ingest import IngestError, discover, file_hash
from rag.reading.loaders import loader_for
from rag.core.settings import Settings
from rag.notes.folder import TEMP_PREFIX, UploadError, check_note_name, corpus_root, inside_folder, refused_uploads, too_big

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    name: str  # the file name the user gave (may be hostile)
    data: bytes


def read_upload(path: str | Path, name: str | None, max_bytes: int) -> Upload:
    """An uploaded temp file as an Upload, refusing a too-large one before reading it all."""
    path = Path(path)
    name = name if name is not None else path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UploadError(f"“{name}”: the upload could not be read ({exc.strerror or exc}).") from None
    if size > max_bytes:
        raise too_big(name, size, max_bytes)
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    return Upload(name, data)


@dataclass(frozen=True)
class AddedNote:
    source: str
    size: int
    replaced: bool = False


@dataclass
class AddReport:
    added: list[AddedNote] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (uploaded name, note it duplicates)

    def summary(self) -> str:
        parts = []
        if self.added:
            names = ", ".join(a.source for a in self.added)
            replaced = sum(a.replaced for a in self.added)
            parts.append(f"Added {len(self.added)} note{'s' if len(self.added) != 1 else ''}: {names}"
                         + (f" ({replaced} replaced)" if replaced else "") + ".")
        for name, existing in self.duplicates:
            same = " (the same file)" if name == existing else ""
            parts.append(f"“{name}” is already in your notes as “{existing}”{same}; skipped.")
        return " ".join(parts) or "Nothing to add."


# What a refused file is called, per loader (rag/reading/loaders): "“x.pdf” is not a readable PDF (...)".
_FORMAT_NOUN = {"text": "a text note", "pdf": "a readable PDF", "html": "a readable HTML page"}


def _validate_content(name: str, data: bytes, max_bytes: int) -> None:
    """Size, then type by content: the loader of the name's suffix must read the bytes.

    A PDF must start with %PDF and have a text layer; HTML and text must decode as text.
    """
    if len(data) > max_bytes:
        raise too_big(name, len(data), max_bytes)
    if not data.strip():
        raise UploadError(f"“{name}” is empty.", key="up_empty", name=name)
    try:
        loader = loader_for(name)
    except IngestError as exc:
        raise UploadError(f"“{name}”: {exc}.") from None
    try:
        loader.check(data)
    except IngestError as exc:
        raise UploadError(f"“{name}” is not {_FORMAT_NOUN.get(loader.name, 'a note')} ({exc}).") from None


def _existing_hashes(root: Path, settings: Settings, sizes: set[int]) -> dict[str, str]:
    """content hash -> source, for existing notes whose size matches an upload (cheap prefilter)."""
    found: dict[str, str] = {}
    for path in discover(root, settings.extensions):
        try:
            if path.stat().st_size not in sizes:
                continue
            found.setdefault(file_hash(path.read_bytes()), path.relative_to(root).as_posix())
        except OSError:
            continue
    return found


def _write_temp(folder: Path, data: bytes) -> Path:
    tmp = folder / f"{TEMP_PREFIX}{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def add_notes(settings: Settings, uploads: Iterable[Upload], *, replace: bool = False) -> AddReport:
    """Add uploaded files to the corpus folder, all or nothing; raises UploadError.

    Every file is checked first (safe name, type, size limit, decodes as text, no clash
    with another file of the batch or, unless ``replace``, with an existing note of the
    same name). A file whose exact content is already a note is reported as a duplicate
    and skipped, not an error. Then each is written to a hidden temp file and renamed
    into place.
    """
    uploads = list(uploads)
    if not uploads:
        raise UploadError("No files were given.")
    root = corpus_root(settings)
    max_bytes = settings.max_upload_bytes
    errors: list[UploadError] = []
    checked: list[tuple[str, bytes, str]] = []  # (name, data, hash)
    for up in uploads:
        try:
            name = check_note_name(up.name, settings.extensions)
            _validate_content(name, up.data, max_bytes)
            checked.append((name, up.data, file_hash(up.data)))
        except UploadError as exc:
            errors.append(exc)
    if errors:
        raise refused_uploads(errors, nothing_added=len(uploads) > 1)

    existing = _existing_hashes(root, settings, {len(d) for _, d, _ in checked})
    report = AddReport()
    planned: list[tuple[str, bytes, Path, bool]] = []
    seen_names: set[str] = set()
    seen_hashes: dict[str, str] = {}
    for name, data, digest in checked:
        if digest in existing:
            report.duplicates.append((name, existing[digest]))
            continue
        if digest in seen_hashes:
            report.duplicates.append((name, seen_hashes[digest]))
            continue
        key = name.casefold()
        if key in seen_names:
            errors.append(UploadError(f"Two files are named “{name}”."))
            continue
        seen_names.add(key)
        target = root / name
        if not inside_folder(root, target):
            errors.append(UploadError(f"“{name}” would be written outside the notes folder."))
            continue
        exists = target.exists() or target.is_symlink()
        if exists and (target.is_dir() or target.is_symlink()):
            errors.append(UploadError(f"“{name}” clashes with a folder or link in the notes folder."))
            continue
        if exists and not replace:
            errors.append(UploadError(f"A different note named “{name}” already exists; delete it first or choose "
                                      "to replace it.", key="up_exists", name=name))
            continue
        seen_hashes[digest] = name
        planned.append((name, data, target, exists))
    if errors:
        raise refused_uploads(errors, nothing_added=True)

    temps: list[Path] = []
    try:
        for _, data, target, _ in planned:
            temps.append(_write_temp(target.parent, data))
    except OSError as exc:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise UploadError(f"The notes could not be written ({exc.strerror or exc}). Nothing was added.") from None

    done: list[Path] = []
    try:
        for tmp, (name, data, target, exists) in zip(temps, planned):
            os.replace(tmp, target)
            done.append(target)
            report.added.append(AddedNote(name, len(data), exists))
    except OSError as exc:
        # Undo the new files (a replaced note cannot be restored, but replacing is opt-in).
        for target, (_, _, _, exists) in zip(done, planned):
            if not exists:
                target.unlink(missing_ok=True)
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise UploadError(f"The notes could not be saved ({exc.strerror or exc}). Nothing was added.") from None
    log.info("added notes: %s", [a.source for a in report.added])
    return report
