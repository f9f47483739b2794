"""Managing the notes folder from an app: list, add (upload), delete, show a passage in its
note, and re-index in the background.

Everything here works on real files under ``settings.corpus_dir`` and never lets a name
from outside (an upload's file name, a note path sent by a browser) reach a path outside
that folder.

- ``folder``: note names and paths (the two gates), listing, deleting; ``NoteError``.
- ``uploads``: adding notes, all-or-nothing (a failed upload leaves the corpus as it was).
- ``viewer``: a passage shown in its note, the question's words highlighted.
- ``reindex``: the background ``Reindexer`` (one build at a time, progress, cancel).

May import: every stage of ``rag`` (it sits on top, beside the CLI); never ``ui``.
"""
from rag.notes.folder import (NoteError, NoteInfo, UploadError, check_note_name, delete_note, human_size, list_notes,
                              note_path, refused_uploads)
from rag.notes.uploads import AddReport, Upload, add_notes, read_upload
from rag.notes.viewer import PassageView, highlight_terms, passage_view, read_note_lines, term_pattern
from rag.notes.reindex import BuildCancelled, ReindexStatus, Reindexer

__all__ = ["AddReport", "BuildCancelled", "NoteError", "NoteInfo", "PassageView", "ReindexStatus", "Reindexer", "Upload", "UploadError", "add_notes", "check_note_name", "delete_note", "highlight_terms", "human_size", "list_notes", "note_path", "passage_view", "read_note_lines", "read_upload", "refused_uploads", "term_pattern"]
