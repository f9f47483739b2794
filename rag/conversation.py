"""Conversation turns, and resolving elliptical follow-ups without an LLM."""
from __future__ import annotations

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
