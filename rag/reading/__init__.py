"""Reading notes: files become ``Document``s, documents become passages (``Chunk``s).

- ``ingest``: finding notes, decoding, cleaning scraped clutter; ``Document`` and ``IngestError``.
- ``loaders/``: one ``Loader`` per format (text/Markdown, PDF, HTML), a registry by suffix.
- ``chunking``: sections from headings and numbered questions, passages packed within them.
- ``sections``: "match small, read big" maps and boilerplate found by its shape.
- ``units``: answer units (sentences, list items, table rows) of a passage.
- ``scope``: tags and dates of a note, and the ``Scope`` a question may be limited to.

May import: ``rag.core``.
"""
