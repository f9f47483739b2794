"""Embeddings from an OpenAI-compatible ``/v1/embeddings`` server (vLLM, or any server that
speaks the same API), for corpora too large to embed on the app's CPU.

Selected by ``RAG_EMBEDDING_BACKEND=openai`` with ``RAG_EMBEDDING_BASE_URL`` and
``RAG_EMBEDDING_MODEL`` (the *served* model name). See docs/deploy.md.

Invariants:
- One call returns one L2-normalised float32 row per input text, in input order, or raises
  ``RagError``; never a partial or misaligned result.
- Every row has the same size, ``dim``: the configured ``embedding_dim``, or else the size of
  the server's first answer. A server that later answers with another size (a different
  model behind the same name) is an error, not a silent index corruption.
- The model's query/passage conventions (e5's ``query: ``/``passage: ``) are applied here,
  on the client, exactly as the sentence-transformers backend applies them: the server only
  ever sees finished strings.
- ``identity`` names the backend and the served model, not the URL: the same model served
  from another host gives the same vectors.
"""
from __future__ import annotations

import base64
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import httpx
import numpy as np

from rag.index.embedders.prompts import Prompts, known_prompts, normalise
from rag.core.errors import EXIT_SERVICE, EXIT_USAGE, RagError
from rag.core.settings import Settings

log = logging.getLogger(__name__)

IDENTITY_PREFIX = "openai"
# Texts per request: a call is cut into about max_in_flight requests so they run side by side,
# each between these bounds. vLLM batches concurrent requests itself (continuous batching), so
# several mid-sized requests keep a GPU as busy as one huge one, and a failure retries less.
MIN_TEXTS_PER_REQUEST = 8
MAX_TEXTS_PER_REQUEST = 64
# Retries: 429 and 5xx answers, and connection failures (a server restarting), never a
# request that timed out (the server may still be computing it). Back-off
# doubles from BACKOFF_FIRST_S up to BACKOFF_MAX_S; a 429's Retry-After is honoured up to
# the same cap. Four attempts wait at most 0.5 + 1 + 2 = 3.5 s before giving up.
MAX_ATTEMPTS = 4
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
PROBE_TEXT = "dimension probe"
# vLLM extension: truncate over-long inputs to the model's window instead of answering 400,
# which is what sentence-transformers does on the CPU. Other servers ignore unknown fields
# or can be told not to receive it (RAG_EMBEDDING_TRUNCATE=false).
TRUNCATE_FIELD = "truncate_prompt_tokens"


def server_identity(model: str) -> str:
    return f"{IDENTITY_PREFIX}:{model}"


class ServerEmbedder:
    """``Embedder`` over HTTP: batched, ``max_in_flight`` requests at a time, retried."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "EMPTY",
        prompts: Prompts | None = None,
        dim: int | None = None,
        max_in_flight: int = 4,
        timeout_s: float = 60.0,
        truncate: bool = True,
        identity: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.prompts = prompts or known_prompts(model)
        if self.prompts.query_prompt_name and not self.prompts.query_prefix:
            log.warning("%s names a stored query prompt, which a server cannot apply: set "
                        "RAG_QUERY_PREFIX to the model's query instruction", model)
        self.identity = identity or server_identity(model)
        self.max_in_flight = max(1, max_in_flight)
        self.truncate = truncate
        self._dim = dim
        self._dim_lock = threading.Lock()
        self._client = httpx.Client(
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {api_key}"},
            limits=httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight),
        )
        self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="embed-request")

    # --- the Embedder interface ------------------------------------------------------------
    @property
    def dim(self) -> int:
        """The vector size; asks the server once when it was not configured."""
        if self._dim is None:
            with self._dim_lock:
                if self._dim is None:
                    self._dim = self._request([PROBE_TEXT]).shape[1]
        return self._dim

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.prompts.passage_prefix + t for t in texts])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.prompts.query_prefix + t for t in texts])

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    # --- internals -------------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        size = min(MAX_TEXTS_PER_REQUEST, max(MIN_TEXTS_PER_REQUEST, math.ceil(len(texts) / self.max_in_flight)))
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        if len(batches) == 1:
            parts = [self._request(batches[0])]
        else:
            parts = list(self._pool.map(self._request, batches))  # map keeps input order
        sizes = sorted({part.shape[1] for part in parts})
        if len(sizes) > 1:
            raise RagError(f"the embedding server at {self.base_url} returned vectors of mixed sizes {sizes}",
                           exit_code=EXIT_SERVICE)
        vectors = np.concatenate(parts)
        with self._dim_lock:
            if self._dim is None:
                self._dim = vectors.shape[1]
        if vectors.shape[1] != self._dim:
            raise self._wrong_size(vectors.shape[1])
        return normalise(vectors)

    def _wrong_size(self, got: int) -> RagError:
        return RagError(
            f"the embedding server at {self.base_url} returned vectors of size {got} for model "
            f"{self.model!r}, expected {self._dim}: it serves a different model than the one this "
            f"index and RAG_EMBEDDING_DIM were set up for", exit_code=EXIT_SERVICE)

    def _payload(self, texts: list[str]) -> dict:
        payload: dict = {"model": self.model, "input": texts, "encoding_format": "base64"}
        if self.truncate:
            payload[TRUNCATE_FIELD] = -1  # -1: the model's own maximum length
        return payload

    def _request(self, texts: list[str]) -> np.ndarray:
        """POST one batch; returns the raw (n, d) rows in input order. Retries transient faults."""
        url = f"{self.base_url}/embeddings"
        delay = BACKOFF_FIRST_S
        last = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self._client.post(url, json=self._payload(texts))
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = f"cannot connect ({type(exc).__name__}: {exc})"
                wait = delay
            except httpx.TimeoutException as exc:
                # Not retried: the server is still working on the request, and sending it again
                # doubles its load (measured: on a CPU vLLM, retried timeouts only piled up).
                raise RagError(
                    f"the embedding server at {self.base_url} did not answer a request of {len(texts)} texts "
                    f"within {self._client.timeout.read:.0f} s: it is overloaded or too slow; raise "
                    f"RAG_EMBEDDING_TIMEOUT_S or lower RAG_EMBEDDING_MAX_IN_FLIGHT", exit_code=EXIT_SERVICE) from exc
            except httpx.HTTPError as exc:  # reset connections, protocol errors
                last = f"{type(exc).__name__}: {exc}"
                wait = delay
            else:
                if response.status_code == 200:
                    return self._decode(response, len(texts))
                if response.status_code not in RETRY_STATUSES:
                    raise self._refused(response)
                last = f"HTTP {response.status_code}: {_server_message(response)}"
                wait = _retry_after(response) or delay
            if attempt < MAX_ATTEMPTS:
                log.warning("embedding request failed (%s); retry %d/%d in %.1f s",
                            last, attempt, MAX_ATTEMPTS - 1, wait)
                time.sleep(min(wait, BACKOFF_MAX_S))
                delay = min(delay * 2, BACKOFF_MAX_S)
        raise RagError(
            f"the embedding server at {self.base_url} is not answering ({last}, {MAX_ATTEMPTS} attempts): "
            f"start it, or point RAG_EMBEDDING_BASE_URL at a running one", exit_code=EXIT_SERVICE)

    def _refused(self, response: httpx.Response) -> RagError:
        message = _server_message(response)
        if response.status_code == 404 or "does not exist" in message or "not found" in message.lower():
            return RagError(
                f"the embedding server at {self.base_url} does not serve model {self.model!r} "
                f"(HTTP {response.status_code}: {message}); set RAG_EMBEDDING_MODEL to the served model name",
                exit_code=EXIT_USAGE)
        if response.status_code in (401, 403):
            return RagError(f"the embedding server at {self.base_url} refused the key "
                            f"(HTTP {response.status_code}); set RAG_EMBEDDING_API_KEY", exit_code=EXIT_USAGE)
        return RagError(f"the embedding server at {self.base_url} rejected the request "
                        f"(HTTP {response.status_code}: {message})", exit_code=EXIT_SERVICE)

    def _decode(self, response: httpx.Response, n: int) -> np.ndarray:
        try:
            items = sorted(response.json()["data"], key=lambda item: item["index"])
            rows = [_vector(item["embedding"]) for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise RagError(f"the embedding server at {self.base_url} answered with something that is "
                           f"not an embeddings response ({type(exc).__name__}: {exc})", exit_code=EXIT_SERVICE) from exc
        if len(rows) != n:
            raise RagError(f"the embedding server at {self.base_url} returned {len(rows)} vectors "
                           f"for {n} texts", exit_code=EXIT_SERVICE)
        sizes = {row.shape[0] for row in rows}
        if len(sizes) != 1:
            raise RagError(f"the embedding server at {self.base_url} returned vectors of mixed sizes "
                           f"{sorted(sizes)}", exit_code=EXIT_SERVICE)
        if self._dim is not None and rows[0].shape[0] != self._dim:
            raise self._wrong_size(rows[0].shape[0])
        return np.stack(rows)


def _vector(embedding) -> np.ndarray:
    """One embedding as float32: base64 of little-endian float32 (what we ask for), or a JSON
    list from servers that ignore ``encoding_format``."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32)
    return np.asarray(embedding, dtype=np.float32)


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message", error) if isinstance(error, dict) else error
        return str(message)[:300]
    except ValueError:
        return response.text[:300] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def make_server_embedder(settings: Settings, prompts: Prompts) -> ServerEmbedder:
    return ServerEmbedder(
        settings.embedding_base_url,
        settings.embedding_model,
        api_key=settings.embedding_api_key,
        prompts=prompts,
        dim=settings.embedding_dim,
        max_in_flight=settings.embedding_max_in_flight,
        timeout_s=settings.embedding_timeout_s,
        truncate=settings.embedding_truncate,
        identity=settings.embedding_identity or None,
    )
