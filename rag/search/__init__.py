"""Search: a question (with its history and scope) becomes ranked ``Hit``s.

- ``retrieval``: the ``Retriever`` over a loaded index version: signals, fusion, selection,
  the "do the notes cover this?" decision.
- ``ranking``: the ranking stages as pure functions over passage ids.
- ``conversation``: chat turns and whether a question refers back to them.
- ``rerank``: the optional ``Reranker`` seam.
- ``note_finder`` ("which notes mention X") and ``note_outline`` (a whole note's sections).

May import: ``rag.core``, ``rag.reading``, ``rag.index``.
"""
