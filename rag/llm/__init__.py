"""LLM backends behind one small interface, and the choice between them.

``select_backend(settings)`` turns ``Settings.llm_backend`` (auto|openai|llamacpp|none)
into a ``BackendChoice``: the model to use (None for retrieval-only) and a sentence
saying why, for the UI's status line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import ChatModel, Health, LLMError, LLMUnavailable, PromptMessage, estimate_tokens, messages_tokens

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "BackendChoice",
    "ChatModel",
    "Health",
    "LLMError",
    "LLMUnavailable",
    "PromptMessage",
    "estimate_tokens",
    "make_llamacpp",
    "make_openai",
    "messages_tokens",
    "select_backend",
]


@dataclass(frozen=True)
class BackendChoice:
    requested: str  # Settings.llm_backend as configured
    backend: str  # "openai" | "llamacpp" | "none"
    model: ChatModel | None
    reason: str  # why this backend: shown in the UI and `rag chat` status


def make_openai(settings: "Settings") -> ChatModel:
    from .openai_backend import OpenAIChatModel

    return OpenAIChatModel(
        settings.llm_base_url,
        settings.llm_model,
        api_key=settings.llm_api_key,
        timeout_s=settings.llm_timeout_s,
        fallback_context_tokens=settings.llm_context_tokens,
    )


def make_llamacpp(settings: "Settings", *, allow_download: bool = True) -> tuple[ChatModel | None, str]:
    from .llamacpp_backend import LlamaCppChatModel, find_gguf

    source, why = find_gguf(settings.gguf_path, allow_download=allow_download)
    if source is None:
        return None, why
    try:
        return LlamaCppChatModel(source, context_tokens=settings.llm_context_tokens), why
    except LLMUnavailable as exc:
        return None, str(exc)


def select_backend(settings: "Settings", *, probe_timeout_s: float = 1.0) -> BackendChoice:
    requested = settings.llm_backend
    if requested == "none":
        return BackendChoice(requested, "none", None, "retrieval-only: chosen in settings (RAG_LLM_BACKEND=none)")
    if requested == "openai":
        model = make_openai(settings)
        health = model.health(timeout_s=probe_timeout_s)
        # Kept even when down: the server may come up later, and each answer falls
        # back to retrieval-only with a notice while it is not.
        why = health.detail if health.ok else f"{health.detail}; answers are retrieval-only until it is up"
        return BackendChoice(requested, "openai", model, why)
    if requested == "llamacpp":
        model, why = make_llamacpp(settings)
        if model is None:
            return BackendChoice(requested, "none", None, f"retrieval-only: {why}")
        return BackendChoice(requested, "llamacpp", model, f"embedded llama.cpp: {why}")
    # auto
    server = make_openai(settings)
    health = server.health(timeout_s=probe_timeout_s)
    if health.ok:
        return BackendChoice(requested, "openai", server, health.detail)
    model, why = make_llamacpp(settings)
    if model is not None:
        return BackendChoice(requested, "llamacpp", model, f"{health.detail}; using embedded llama.cpp: {why}")
    return BackendChoice(requested, "none", None, f"retrieval-only: {health.detail}, and {why}")
