"""The build lock of an index folder: one build at a time, and a folder that cannot be made or
written said in one line before anything is embedded, not as a traceback after.
"""
from __future__ import annotations

import errno
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from rag.core.errors import IndexLocked, IndexUnavailable


class IndexFolderUnusable(IndexUnavailable):
    """The index folder cannot be created or written (a file stands in its path, it is read-only)."""


def folder_problem(root: Path, exc: OSError) -> IndexFolderUnusable:
    """``exc``, met creating or writing the index folder ``root``, as one line saying what to do."""
    other = "choose another index folder (--index or RAG_INDEX_DIR)"
    blocker = next((p for p in [root, *root.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return IndexFolderUnusable(f"the index folder {root} cannot be created: {blocker} is a file, not a folder; "
                                   f"move that file, or {other}")
    return IndexFolderUnusable(f"cannot write the index folder {root} ({exc.strerror or exc}); make it writable, "
                               f"or {other}")


@contextmanager
def folder_lock(root: Path) -> Iterator[None]:
    """Hold ``root/.lock`` for the block; IndexLocked when another build holds it.

    The index folder is made here: a path it cannot have (a file in the way) or a folder
    that cannot be written, now or during the build, is IndexFolderUnusable, one line."""
    lock = FileLock(str(root / ".lock"))
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
        probe = root / f".probe-{uuid.uuid4().hex[:8]}"  # fail before embedding, not after
        probe.touch()
        probe.unlink()
    except Timeout:
        raise IndexLocked(
            f"another `rag index` is already building {root} (lock file {root / '.lock'}); wait for it to finish"
        ) from None
    except OSError as exc:  # after Timeout, which is an OSError too
        if lock.is_locked:
            lock.release()
        raise folder_problem(root, exc) from None
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS) or not _inside(exc.filename, root):
            raise
        raise folder_problem(root, exc) from None
    finally:
        lock.release()


def _inside(filename, root: Path) -> bool:
    try:
        return filename is not None and Path(os.fsdecode(filename)).resolve().is_relative_to(root.resolve())
    except (OSError, ValueError, TypeError):
        return False
