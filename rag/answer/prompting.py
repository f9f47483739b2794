"""Grounded prompts, citation checking, and follow-up rewriting.

The model sees numbered passages ``[n] file › heading (lines a–b)``; the user sees
the same numbers next to the sources, so every ``[n]`` left in an answer must be
one of them. ``CitationFilter`` enforces that while the answer streams.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable, Sequence

from rag.search.conversation import Message
from rag.answer.llm.base import PromptMessage, estimate_tokens, messages_tokens
from rag.reading.chunking import Chunk
from rag.search.retrieval import Hit
from rag.core.text import CITATION, HAN_CHAR, Language, detect_language

# Tokens kept free between prompt and answer for the chat template's own markup.
WINDOW_MARGIN = 16


# A passage shorter than this after cutting says too little to be worth a number.
MIN_PASSAGE_CHARS = 120


@dataclass(frozen=True)
class Source:
    """A passage as shown to the user and the model, under its citation number."""

    n: int
    hit: Hit

    @property
    def label(self) -> str:
        return _label(self.hit.chunk)

    @property
    def reading_label(self) -> str:
        """The label of what the answer prompt reads of the hit (its window, when it has one)."""
        return _label(self.hit.reading)

    def to_dict(self) -> dict:
        return {"n": self.n, "label": self.label, **self.hit.to_dict()}


def _label(chunk: Chunk) -> str:
    heading = chunk.heading.replace(" > ", " › ")
    where = f"{chunk.source} › {heading}" if heading else chunk.source
    return f"{where} (lines {chunk.line_start}–{chunk.line_end})"


def number_sources(hits: Iterable[Hit]) -> list[Source]:
    return [Source(i, hit) for i, hit in enumerate(hits, 1)]


# --- the answer prompt -----------------------------------------------------------------
NOT_COVERED: dict[Language, str] = {
    "zh": "你的笔记中没有涉及这个问题。",
    "en": "Your notes don't cover this.",
}

_SYSTEM: dict[Language, str] = {
    "zh": (
        "你是一个根据用户自己的笔记回答问题的助手。只能使用下面编号的笔记段落作答，不要使用段落以外的知识。\n"
        "规则：\n"
        "1. 用中文回答。\n"
        "2. 每一个论断后面都要用方括号标出依据的段落编号，例如 [1] 或 [2][3]；只能引用下面列出的编号。\n"
        f"3. 如果这些段落不包含答案，就只回答“{NOT_COVERED['zh']}”，不要编造。\n"
        "4. 回答简洁、有条理。"
    ),
    "en": (
        "You answer questions using only the user's own notes, given below as numbered passages. "
        "Do not use knowledge from outside the passages.\n"
        "Rules:\n"
        "1. Answer in the same language as the question.\n"
        "2. After every claim, cite the passage it comes from by its number in square brackets, "
        "like [1] or [2][3]; cite only the numbers listed below.\n"
        f"3. If the passages do not contain the answer, reply only \"{NOT_COVERED['en']}\" and make nothing up.\n"
        "4. Be concise and well organised."
    ),
}

_PASSAGES_HEADER: dict[Language, str] = {"zh": "笔记段落：", "en": "Passages from the notes:"}
_QUESTION_HEADER: dict[Language, str] = {"zh": "问题：", "en": "Question:"}


@dataclass(frozen=True)
class Prompt:
    messages: list[PromptMessage]
    sources: list[Source]  # the passages the model sees: exactly the ones to show the user
    language: Language
    passage_chars: int  # passage text included, after cutting
    truncated: bool  # a passage was cut or left out to fit the budgets
    tokens: int  # prompt size as the model counts it (estimated where the tokenizer is unknown)


def _cut(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` characters, at a line or sentence end when one is near."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    for sep in ("\n", "。", "！", "？", ". ", "；", "; "):
        at = head.rfind(sep)
        if at >= limit * 0.7:
            return head[: at + len(sep)].rstrip() + " …"
    return head.rstrip() + " …"


def _passages_block(sources: Sequence[Source], char_budget: int) -> tuple[list[Source], list[str], int, bool]:
    shown: list[Source] = []
    blocks: list[str] = []
    used = 0
    truncated = False
    for source in sources:
        remaining = char_budget - used
        if shown and remaining < MIN_PASSAGE_CHARS:
            truncated = True
            break
        text = source.hit.reading.text.strip()  # a long hit past the budget: its window
        if len(text) > remaining:
            text = _cut(text, max(remaining, MIN_PASSAGE_CHARS))
            truncated = True
        # Renumbered densely so that a passage left out never leaves a gap in the citations.
        numbered = Source(len(shown) + 1, source.hit)
        shown.append(numbered)
        blocks.append(f"[{numbered.n}] {numbered.reading_label}\n{text}")
        used += len(text)
    return shown, blocks, used, truncated


def build_answer_prompt(
    question: str,
    sources: Sequence[Source],
    history: Sequence[Message] = (),
    *,
    context_chars: int = 3000,
    max_prompt_tokens: int | None = None,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> Prompt:
    """Messages for a grounded answer: instructions, earlier turns, then passages and question.

    Passage text fits ``context_chars`` (the last passage cut at the budget); when the
    whole prompt would still exceed ``max_prompt_tokens`` (the model's window less the
    answer's tokens) the passages shrink, then the oldest turns go.
    """
    language = detect_language(question)
    history = list(history)
    budget = context_chars
    # Each round either fits, shrinks the passages to the measured excess, or drops a turn.
    for _ in range(4 + len(history)):
        shown, blocks, used, truncated = _passages_block(sources, budget)
        passages = "\n\n".join(blocks)
        body = f"{_PASSAGES_HEADER[language]}\n\n{passages}\n\n{_QUESTION_HEADER[language]}{question}"
        messages = [PromptMessage("system", _SYSTEM[language])]
        messages += [PromptMessage(m.role, m.content) for m in history]
        messages.append(PromptMessage("user", body))
        tokens = messages_tokens(messages, count_tokens)
        if max_prompt_tokens is None or tokens <= max_prompt_tokens:
            break
        if budget > MIN_PASSAGE_CHARS:
            passage_tokens = max(1, count_tokens(passages))
            keep = (passage_tokens - (tokens - max_prompt_tokens)) / passage_tokens
            # Tokens are not proportional to characters: aim a little under and re-count.
            budget = max(MIN_PASSAGE_CHARS, int(min(budget, used) * keep * 0.9))
        elif history:
            history = history[2:]
        else:
            break  # nothing left to shrink; the backend will report the overflow
    return Prompt(messages, shown, language, used, truncated or len(shown) < len(sources), tokens)


# --- citations ---------------------------------------------------------------------------
_NUMS = r"\d{1,3}(?:\s*[,，、]\s*\d{1,3})*"
_GROUP = rf"[\[【]\s*{_NUMS}\s*[\]】]"
# A run of groups ("[1][2]", "[1, 3]", "【2】"), not preceded by an identifier or a closing
# bracket so that code such as ``x[0]`` or ``a[i][1]`` is left alone.
_CITATION_RUN = re.compile(rf"(?P<ws>[ \t]*)(?<![A-Za-z0-9_\])])(?P<run>(?:{_GROUP})+)")
# What may still grow into a citation run: held back while streaming.
_OPEN_TAIL = re.compile(
    rf"[ \t]*(?:{_GROUP})*(?:[\[【]\s*(?:\d{{1,3}}(?:\s*[,，、]\s*\d{{0,3}})*)?\s*)?$"
)
_NUMBER = re.compile(r"\d+")


@dataclass
class CitationCheck:
    text: str  # the answer with invented citations removed
    cited: list[int] = field(default_factory=list)  # valid numbers, in order of first use
    invalid: list[int] = field(default_factory=list)  # numbers that point at no shown passage


class CitationFilter:
    """Removes citations of passages that were not shown, as the answer streams.

    ``feed`` returns the text that is safe to show now; a possible citation at the end
    of the stream (``" [1"``) is held back until it closes or turns out not to be one.
    """

    def __init__(self, valid: Collection[int]) -> None:
        self.valid = set(valid)
        self.cited: list[int] = []
        self.invalid: list[int] = []
        self._pending = ""
        self._prev = "\n"  # the last character already emitted: context for the look-behind
        self._out: list[str] = []

    def feed(self, delta: str) -> str:
        self._pending += delta
        hold_at = _OPEN_TAIL.search(self._pending).start()
        ready, self._pending = self._pending[:hold_at], self._pending[hold_at:]
        return self._emit(ready)

    def flush(self) -> str:
        ready, self._pending = self._pending, ""
        return self._emit(ready)

    @property
    def text(self) -> str:
        """Everything emitted so far."""
        return "".join(self._out)

    def _emit(self, raw: str) -> str:
        if not raw:
            return ""
        context = self._prev + raw
        pieces: list[str] = []
        last = 1
        for m in _CITATION_RUN.finditer(context, 1):
            pieces.append(context[last : m.start()])
            pieces.append(self._replace(m))
            last = m.end()
        pieces.append(context[last:])
        self._prev = raw[-1]
        out = "".join(pieces)
        self._out.append(out)
        return out

    def _replace(self, m: re.Match) -> str:
        kept: list[int] = []
        for number in map(int, _NUMBER.findall(m.group("run"))):
            if number in self.valid:
                if number not in kept:
                    kept.append(number)
                if number not in self.cited:
                    self.cited.append(number)
            elif number not in self.invalid:
                self.invalid.append(number)
        if not kept:
            return ""  # the space before it goes too: "claim [7]." -> "claim."
        return m.group("ws") + "".join(f"[{n}]" for n in kept)


def validate_citations(text: str, valid: Collection[int]) -> CitationCheck:
    """``text`` with every ``[n]`` that is not in ``valid`` removed, plus what was cited."""
    f = CitationFilter(valid)
    f.feed(text)
    f.flush()
    return CitationCheck(f.text, f.cited, f.invalid)


# --- answers without a model ---------------------------------------------------------------
_RETRIEVAL_ONLY_HEAD: dict[Language, str] = {
    "zh": "【仅检索 · retrieval-only】未使用语言模型，以下是笔记中与问题最相关的段落原文：",
    "en": "[Retrieval-only answer] No language model was used; these are the passages of your notes that best match the question:",
}
_CLOSEST_HEAD: dict[Language, str] = {
    "zh": "最接近的段落（可能并不相关）：",
    "en": "Closest passages (probably not relevant):",
}


def _quote(text: str, limit: int) -> str:
    return "\n".join("> " + line for line in _cut(text.strip(), limit).splitlines() if line.strip())


def retrieval_only_text(sources: Sequence[Source], language: Language, *, passages: int = 3,
                        excerpt_chars: int = 400) -> str:
    """The best passages, quoted and cited, clearly labelled as not written by a model."""
    parts = [_RETRIEVAL_ONLY_HEAD[language]]
    for source in sources[:passages]:
        parts.append(f"[{source.n}] {source.label}\n{_quote(source.hit.text, excerpt_chars)}")
    return "\n\n".join(parts)


def not_in_notes_text(sources: Sequence[Source], language: Language, *, closest: int = 3) -> str:
    text = NOT_COVERED[language]
    if sources:
        listed = "\n".join(f"[{s.n}] {s.label}" for s in sources[:closest])
        text += f"\n\n{_CLOSEST_HEAD[language]}\n{listed}"
    return text


# --- follow-up rewriting -------------------------------------------------------------------
_REWRITE_SYSTEM: dict[Language, str] = {
    "zh": (
        "把用户最后的追问改写成一个不看对话也能理解的完整问题：补全“它”“这个”“那个”等指代的具体对象，"
        "保留原问题的语言和关键词。只输出改写后的问题，不要回答它。\n"
        "例：对话里用户问“Transformer 用哪种归一化？”，追问“为什么不用 BatchNorm？”，"
        "应输出：Transformer 为什么不用 BatchNorm？"
    ),
    "en": (
        "Rewrite the user's last follow-up as a standalone question that can be understood without the "
        "conversation: replace words like 'it', 'this' or 'that' with what they refer to, and keep the "
        "question's language and key terms. Output only the rewritten question; do not answer it.\n"
        "Example: after 'Which normalisation does the Transformer use?', the follow-up 'Why not BatchNorm?' "
        "becomes: Why does the Transformer not use BatchNorm?"
    ),
}
_REWRITE_LABELS: dict[Language, tuple[str, str, str, str]] = {
    "zh": ("对话：", "用户", "助手", "追问："),
    "en": ("Conversation:", "User", "Assistant", "Follow-up:"),
}
_REWRITE_PREFIX = re.compile(
    r"^\s*(?:改写后的问题|改写后|完整问题|问题|追问|用户|助手|standalone question|rewritten question|question|"
    r"follow-up|user|assistant)\s*[:：]\s*",
    re.IGNORECASE,
)


def build_rewrite_prompt(question: str, history: Sequence[Message], *, turn_chars: int = 300) -> list[PromptMessage]:
    """A short prompt that turns an elliptical follow-up into a standalone question."""
    language = detect_language(question)
    title, user, assistant, follow = _REWRITE_LABELS[language]
    lines = [title]
    for msg in history[-4:]:
        who = user if msg.role == "user" else assistant
        content = msg.content.strip().replace("\n", " ")
        lines.append(f"{who}: {content[:turn_chars]}")
    lines.append("")
    lines.append(f"{follow}{question}")
    return [PromptMessage("system", _REWRITE_SYSTEM[language]), PromptMessage("user", "\n".join(lines))]


_UNIT = re.compile(r"[\u3400-\u9fff]{2,}|[A-Za-z0-9][A-Za-z0-9+#.\-]*")


def _units(text: str) -> set[str]:
    """Latin words and Chinese character pairs: what a faithful rewrite is made of."""
    units: set[str] = set()
    for token in _UNIT.findall(text.lower()):
        if HAN_CHAR.match(token):
            units.update(token[i : i + 2] for i in range(len(token) - 1))
        else:
            units.add(token)
    return units


def parse_rewrite(output: str, question: str, history: Sequence[Message] = ()) -> str | None:
    """The rewritten question, or None when the model's output cannot be one.

    Small models often answer instead of rewriting, drift into made-up words, or switch
    to English; a bad rewrite would steer retrieval away, so it must be the question's
    language and be built mostly from words of the question and the conversation.
    """
    line = next((ln for ln in output.strip().splitlines() if ln.strip()), "")
    line = _REWRITE_PREFIX.sub("", line).strip().strip("\"'“”「」`").strip()
    # A rewrite adds the referent, so it is not much shorter than the follow-up; and a
    # question stays a question (SmolLM2 often answers, or trails off into a statement).
    if not line or len(line) > max(3 * len(question), len(question) + 150) or len(line) < 0.6 * len(question):
        return None
    if question.rstrip().endswith(("?", "？")) and not line.endswith(("?", "？")):
        return None
    if detect_language(line) != detect_language(question):
        return None
    squashed = re.sub(r"\s+", "", line)
    if squashed == re.sub(r"\s+", "", question):
        return None  # nothing to resolve
    if any(squashed in re.sub(r"\s+", "", m.content) for m in history):
        return None  # an earlier turn copied back, not this question rewritten
    units = _units(line)
    if units:
        known = _units(question + "\n" + "\n".join(m.content for m in history))
        if len(units & known) / len(units) < 0.5:
            return None
    return line


def cited_numbers(text: str) -> list[int]:
    """The citation numbers ``text`` uses, in the order first cited, each once."""
    return list(dict.fromkeys(int(n) for n in CITATION.findall(text)))
