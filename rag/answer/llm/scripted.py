"""The test double of a ``ChatModel`` (like simonw/llm's MockModel): it streams exactly what it is
told. For the faults a real model cannot be made to show on demand (a loop, an answer that cites
nothing, a slow writer); every other test uses a real backend. It is named as a fake wherever
it is used.
"""
from __future__ import annotations

import threading
import time


class ScriptedChatModel:
    """A fake ChatModel (like simonw/llm's MockModel) that streams exactly the deltas it is
    given, for faults a real model cannot be made to show on demand: a model looping on one
    sentence, one that cites nothing, a slow writer. ``calls`` records every request;
    ``closed`` whether the reader stopped the stream before its end; ``peak`` the most
    answers it was writing at the same time. ``delay_s`` is slept before each delta."""

    backend = "openai"  # behaves as a served model: no rewrite quirks of the embedded one

    def __init__(self, deltas, name: str = "fake:scripted", context_tokens: int = 4096,
                 delay_s: float = 0.0) -> None:
        self.deltas = list(deltas)
        self.name = name
        self._context_tokens = context_tokens
        self.delay_s = delay_s
        self.calls: list[dict] = []
        self.yielded = 0
        self.closed = False
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    @property
    def context_tokens(self) -> int:
        return self._context_tokens

    def count_tokens(self, text: str) -> int:
        from rag.answer.llm import estimate_tokens

        return estimate_tokens(text)

    def stream(self, messages, *, max_tokens: int, temperature: float, cancel=None):
        with self._lock:
            self.calls.append({"messages": list(messages), "max_tokens": max_tokens})
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            for delta in self.deltas[:max_tokens]:
                if self.delay_s:
                    time.sleep(self.delay_s)
                if cancel is not None and cancel.is_set():
                    return
                self.yielded += 1
                yield delta
        except GeneratorExit:
            self.closed = True
            raise
        finally:
            with self._lock:
                self.running -= 1

    def health(self, timeout_s: float = 2.0):
        from rag.answer.llm import Health

        return Health(True, f"{self.name}, scripted")
