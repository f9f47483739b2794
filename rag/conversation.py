"""Conversation turns, and resolving elliptical follow-ups without an LLM."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str

    @classmethod
    def from_dict(cls, d: dict) -> "Message":
        role = d.get("role")
        if role not in ("user", "assistant"):
            raise ValueError(f"history role must be 'user' or 'assistant', got {role!r}")
        return cls(role, str(d.get("content", "")))


# Words that point back at something said earlier, and openers that continue a thread.
_ANAPHORA = re.compile(
    r"它|其|这个|那个|这种|那种|这些|那些|该方法|该模型|此|上述|前者|后者|两者|这部分|这段|里面|"
    r"\b(it|its|they|them|their|this|that|these|those|the former|the latter)\b",
    re.IGNORECASE,
)
_CONTINUATION = re.compile(r"^\s*(那|那么|还有|另外|以及|而|和|除了|其中|and\b|but\b|what about|how about|also\b)",
                           re.IGNORECASE)


def is_followup(question: str) -> bool:
    """Does the question lean on earlier turns (a pronoun, "那…呢", a bare few words)?"""
    text = question.strip()
    return bool(_ANAPHORA.search(text) or _CONTINUATION.match(text) or len(text) <= 8)


def followup_context(question: str, history: Sequence[Message], max_chars: int = 300) -> str:
    """The earlier turns a question may refer to, as text to search with; "" without history.

    Whether to lean on it, and how hard, is the retriever's call (see `is_followup`).

    The last user turn names the subject; the last answer often names it more precisely
    (“那是 Sentence-BERT…”), so both are used.
    """
    if not history:
        return ""
    last_user = next((m.content for m in reversed(history) if m.role == "user"), "")
    last_answer = next((m.content for m in reversed(history) if m.role == "assistant"), "")
    return f"{last_user}\n{last_answer[:max_chars]}".strip()


def trim_history(history: Sequence[Message], max_turns: int, max_chars: int) -> list[Message]:
    """The most recent turns that fit both budgets, oldest first."""
    kept: list[Message] = []
    used = 0
    for msg in reversed(history[-max_turns:] if max_turns > 0 else []):
        if used + len(msg.content) > max_chars and kept:
            break
        kept.append(Message(msg.role, msg.content[: max_chars]))
        used += len(msg.content)
    return list(reversed(kept))
