"""The shared base: what every stage needs and nothing stage-specific.

- ``settings``: the one ``Settings`` object passed in everywhere (``RAG_*``, ``rag.toml``).
- ``errors``: ``RagError``, the one user-facing error type, and its tree.
- ``text``: the text rules (Chinese character ranges, language, sentence ends, citations).
- ``progress``: build progress lines for terminals, logs and the UI.

May import: nothing else in ``rag``.
"""
