"""Catching a model that has stopped saying anything new, while its answer streams.

Small models on text they cannot handle (SmolLM2-135M on Chinese notes) repeat one
invented sentence until the token limit. ``RepetitionGuard`` sits between the model's
deltas and the screen:

* text is shown as it streams, except while the sentence being written could still be
  one already said (its start matches one): that is held until it ends or differs;
* a sentence already shown is not shown again, so a user never sees a loop;
* it reports the answer as degenerate (``stopped`` is set, with the reason) when one
  sentence has come ``REPEATS_TO_STOP`` times, or when ``NO_PROGRESS_DELTAS`` deltas in a
  row added no text that had not been said before.

Invariant: the concatenation of everything ``feed``/``flush`` returned is the answer as
shown; the guard never rewrites a sentence, it only leaves repeats out.
"""
from __future__ import annotations

import re

__all__ = ["MAX_HELD_CHARS", "MIN_SENTENCE_CHARS", "NO_PROGRESS_DELTAS", "REPEATS_TO_STOP", "RepetitionGuard"]

# The same sentence this many times is a loop, not emphasis (the SmolLM2 answer
# repeated its sentence five times; a sound answer does not say one sentence twice).
REPEATS_TO_STOP = 3
# Deltas (about one token each from a streaming server) in a row that add no run of
# SHINGLE_CHARS characters not seen before. 24 tokens is about one sentence: a sound
# answer says something new far sooner (even a table of repeated "是" cells varies its
# first column), and a short loop ("the the the…") is cut after about 100 characters.
NO_PROGRESS_DELTAS = 24
# Shorter sentences ("优点：", "- ", "[1]") recur in sound answers and are not counted.
MIN_SENTENCE_CHARS = 8
# Text held back while waiting for a sentence end (code, tables): then shown anyway.
MAX_HELD_CHARS = 160
# "Something new" is a run of this many characters (whitespace removed) not seen before.
SHINGLE_CHARS = 8

_SENTENCE_END = re.compile(r"[。！？；!?;]+[”’\"')）]*|\.(?=\s)|\n")
_CITATION = re.compile(r"[\[【]\s*\d{1,3}(?:\s*[,，、]\s*\d{1,3})*\s*[\]】]")
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def _sentence_key(sentence: str) -> str:
    """What makes two sentences "the same": words only, citations and punctuation aside."""
    return _NOT_WORD.sub("", _CITATION.sub("", sentence)).lower()


class RepetitionGuard:
    def __init__(self) -> None:
        self.stopped: str | None = None  # why the answer is degenerate; None while it is sound
        self.kind: str | None = None  # "repeat" | "no_progress", with ``stopped``
        self._sentence = ""  # the sentence being written
        self._live = False  # its start differs from every sentence said so far: shown as it comes
        self._counts: dict[str, int] = {}
        self._seen: set[str] = set()
        self._tail = ""  # the last SHINGLE_CHARS-1 characters seen, to continue shingles across deltas
        self._idle = 0  # deltas since the last new shingle

    def feed(self, delta: str) -> str:
        """Text safe to show now (possibly ""). Once ``stopped`` is set, nothing more is shown."""
        if self.stopped:
            return ""
        self._track_progress(delta)
        out: list[str] = []
        rest = delta
        while rest and not self.stopped:
            # From the last held character: "." ends a sentence only once the space after it came.
            m = _SENTENCE_END.search(self._sentence + rest, max(0, len(self._sentence) - 1))
            if m is None:
                piece, rest = rest, ""
            else:
                piece, rest = rest[: m.end() - len(self._sentence)], rest[m.end() - len(self._sentence):]
            self._sentence += piece
            if self._live:
                out.append(piece)
            elif not self._may_repeat(self._sentence) or len(self._sentence) >= MAX_HELD_CHARS:
                self._live = True  # something new: show it as it streams
                out.append(self._sentence)
            if m is not None:
                out.append(self._end_sentence())
        if self.stopped is None and self._idle >= NO_PROGRESS_DELTAS:
            self.stopped = f"the model added nothing new for {NO_PROGRESS_DELTAS} tokens"
            self.kind = "no_progress"
        return "" if self.stopped else "".join(out)

    def flush(self) -> str:
        """The last, unfinished sentence, unless it repeats one already shown."""
        if self.stopped or not self._sentence:
            return ""
        return self._end_sentence()

    def _may_repeat(self, partial: str) -> bool:
        """Could this unfinished sentence still turn out to be one already said?"""
        key = _sentence_key(partial)
        return any(seen.startswith(key) for seen in self._counts)

    def _end_sentence(self) -> str:
        """Count the finished sentence; return what of it is still to be shown."""
        sentence, live = self._sentence, self._live
        self._sentence, self._live = "", False
        key = _sentence_key(sentence)
        if len(key) < MIN_SENTENCE_CHARS:
            return "" if live else sentence
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if count >= REPEATS_TO_STOP:
            self.stopped = f"the model repeated the same sentence {count} times"
            self.kind = "repeat"
        if live:
            return ""
        return sentence if count == 1 else ""

    def _track_progress(self, delta: str) -> None:
        text = self._tail + re.sub(r"\s+", "", _CITATION.sub("", delta))
        new = False
        for i in range(len(text) - SHINGLE_CHARS + 1):
            shingle = text[i : i + SHINGLE_CHARS]
            if shingle not in self._seen:
                self._seen.add(shingle)
                new = True
        if not self._seen and text:
            new = True  # the very start of an answer is progress
        self._tail = text[-(SHINGLE_CHARS - 1):]
        if new:
            self._idle = 0
        elif delta:
            self._idle += 1
