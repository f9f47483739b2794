"""The one interface every LLM backend implements, and the data that crosses it."""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Iterator, Literal, Protocol, Sequence, runtime_checkable

from rag.core.errors import ServiceError
from rag.core.text import CJK_OR_PUNCT_CHAR


@dataclass(frozen=True)
class PromptMessage:
    """One chat message sent to a model (unlike conversation.Message, it may be a system turn)."""

    role: Literal["system", "user", "assistant"]
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str  # human-readable, shown in the UI's status line


class LLMError(ServiceError, RuntimeError):
    """Generation failed; the message is written for the user (no traceback needed)."""


class LLMUnavailable(LLMError):
    """The model cannot be reached or loaded at all, or stopped answering (timeout)."""


# How often a stream waiting for its next delta looks at the cancel event.
_CANCEL_POLL_S = 0.1


def with_deadlines(deltas: Iterator[str], *, first_token_s: float, total_s: float, what: str,
                   cancel: threading.Event | None = None) -> Iterator[str]:
    """``deltas``, read in a worker thread, ended by LLMUnavailable when the first text takes
    longer than ``first_token_s`` or the whole answer longer than ``total_s`` (both from the call).

    A server sending one token every 30 s never trips a read timeout; these deadlines bound
    what a user waits whatever the server does. ``cancel`` is looked at while waiting, too.
    Invariant: ``deltas`` is closed in its own thread once the reader stops (a deadline, a
    cancel, the reader closing this generator), which for a server closes the response and
    so stops the generation; a read already waiting ends within the backend's read timeout.
    """
    box: queue.Queue = queue.Queue()
    stop = threading.Event()

    def pump() -> None:
        try:
            for delta in deltas:
                if stop.is_set():
                    break
                box.put(("delta", delta))
            box.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, who raises it
            box.put(("error", exc))
        finally:
            deltas.close()

    threading.Thread(target=pump, name="llm-stream", daemon=True).start()
    started, first = time.monotonic(), True
    try:
        while True:
            limit = first_token_s if first else total_s
            left = started + limit - time.monotonic()
            if left <= 0:
                if first:
                    raise LLMUnavailable(f"{what} sent no text within {first_token_s:g}s (RAG_LLM_FIRST_TOKEN_S)")
                raise LLMUnavailable(f"{what} did not finish its answer within {total_s:g}s (RAG_LLM_TOTAL_S)")
            try:
                kind, value = box.get(timeout=min(left, _CANCEL_POLL_S))
            except queue.Empty:
                if cancel is not None and cancel.is_set():
                    return
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            if cancel is not None and cancel.is_set():
                return  # deltas read ahead after a cancel are never shown
            first = False
            yield value
    finally:
        stop.set()


@runtime_checkable
class ChatModel(Protocol):
    name: str  # "openai:Qwen/Qwen3-8B", "llama.cpp:SmolLM2-135M-Instruct.Q4_1.gguf"
    backend: str  # "openai" | "llamacpp"

    @property
    def context_tokens(self) -> int:
        """The model's window: prompt plus generated tokens must fit in it."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model (an upper estimate where the tokenizer is unknown)."""
        ...

    def stream(self, messages: Sequence[PromptMessage], *, max_tokens: int, temperature: float,
               cancel: threading.Event | None = None) -> Iterator[str]:
        """Text deltas. Raises LLMError (LLMUnavailable when unreachable / timed out).

        Setting ``cancel`` ends the iteration at the next delta and stops the
        generation itself (server-side for a server backend), not just the reading.
        """
        ...

    def health(self, timeout_s: float = 2.0) -> Health:
        """Cheap check that the model can answer: never loads weights or generates."""
        ...


def estimate_tokens(text: str) -> int:
    """A deliberately high token estimate for an unknown tokenizer.

    English-centric BPE vocabularies (SmolLM2's) spend about two tokens per Chinese
    character, Qwen's about one; other text runs about 3–4 characters a token.
    Over-estimating only shortens the passages; under-estimating overflows the window.
    """
    cjk = len(CJK_OR_PUNCT_CHAR.findall(text))
    return 2 * cjk + (len(text) - cjk + 2) // 3


def messages_tokens(messages: Sequence[PromptMessage], count_tokens) -> int:
    # Chat templates add a few tokens of role markup around every message.
    return sum(count_tokens(m.content) + 8 for m in messages) + 8
