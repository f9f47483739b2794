"""ChatEngine end to end on a real index of a few small notes: events, citations,
extractive answers and fallbacks, follow-ups, bad input, and the `rag ask` / `rag chat` commands.

Backends are real: extractive (no LLM), the embedded llama.cpp SmolLM2, and the OpenAI
client against a closed loopback port. Stand-ins reproduce faults that cannot be caused
on demand (a server that never answers, one that stalls mid-answer, a model that loops
on one sentence); each is named as such.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.answer.chat import Answer, ChatEngine, DoneEvent, QuestionError, SourcesEvent, TokenEvent
from rag.search.conversation import Message
from rag.core.settings import Settings
from rag.answer.llm.fake_servers import SilentServer
from rag.answer.llm.scripted import ScriptedChatModel

REPO_ROOT = Path(__file__).resolve().parent.parent

NOTES = {
    "training/mixed-precision.md": """# Mixed precision training

Mixed precision training keeps activations and gradients in fp16 while a master copy of the weights stays in fp32.
It roughly halves activation memory and speeds up matrix multiplications on tensor cores.

## Drawbacks

fp16 has a narrow dynamic range: very small gradients underflow to zero and large values overflow to infinity.
Training can diverge unless the loss is scaled, and some operations such as softmax and layer norm must stay in fp32.

## Loss scaling

Loss scaling multiplies the loss by a large factor before the backward pass so that small gradients survive in fp16.
The gradients are divided by the same factor before the optimizer step; dynamic loss scaling lowers the factor
whenever an overflow is detected.
""",
    "training/bm25.md": """# BM25 keyword ranking

BM25 scores a passage by how often the query terms occur in it (term frequency), damped by the parameter k1,
and by how rare each term is across the collection (inverse document frequency).

## Length normalisation

The parameter b controls how strongly long passages are penalised; b = 0.75 is the usual default.
""",
    "zh/混合精度.md": """# 混合精度训练

混合精度训练用半精度（FP16）存储激活和梯度，用单精度（FP32）保存一份主权重。

## 缺点

FP16 的数值范围很小，很小的梯度会下溢成零，很大的数值会上溢成无穷大。
如果不做损失缩放，训练可能发散；softmax、层归一化等操作仍需要用 FP32 计算。

## 损失缩放

在反向传播之前把损失乘以一个很大的系数，让小梯度在 FP16 中不被下溢；优化器更新前再把梯度除以同一个系数。
""",
}


# These notes are a few lines a section, and the assertions name sections ("Drawbacks"): each
# section is its own passage and is read alone (merging and whole-section reading are
# tested in test_chunking.py and test_retrieval_shape.py).
SECTION_PER_PASSAGE = {"chunk_min_chars": 0, "expand_max_chars": 0}


def build_notes_index(root: Path, **overrides) -> Settings:
    """Write NOTES under root/corpus and index them into root/index; the Settings to use them."""
    from rag.index.builder import build_index

    corpus = root / "corpus"
    for rel, text in NOTES.items():
        path = corpus / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=root / "index", **{**SECTION_PER_PASSAGE, **overrides})
    build_index(settings)
    return settings


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_events(engine: ChatEngine, question: str, history=(), cancel=None) -> tuple[list, Answer]:
    events = list(engine.stream(question, list(history), cancel))
    assert isinstance(events[0], SourcesEvent)
    assert isinstance(events[-1], DoneEvent)
    assert all(isinstance(e, TokenEvent) for e in events[1:-1])
    answer = events[-1].answer
    # What was streamed is exactly the final answer (from the last replacing event on): a UI may show either.
    shown = ""
    for e in events[1:-1]:
        shown = e.text if e.replace else shown + e.text
    assert shown == answer.text
    return events, answer


def assert_citations_valid(answer: Answer) -> None:
    shown = {s.n for s in answer.sources}
    in_text = {int(n) for n in re.findall(r"\[(\d{1,3})\]", answer.text)}
    assert in_text <= shown, (in_text, shown, answer.text)
    assert set(answer.cited) <= shown
    assert set(answer.cited) == in_text
    for n in answer.invalid_citations:
        assert n not in shown and f"[{n}]" not in answer.text


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> Settings:
    return build_notes_index(tmp_path_factory.mktemp("notes"), llm_backend="none")


@pytest.fixture(scope="module")
def retriever(notes):
    from rag.search.retrieval import Retriever

    return Retriever.from_settings(notes)


@pytest.fixture(scope="module")
def llama_engine(notes, retriever) -> ChatEngine:
    from rag.answer.llm import make_llamacpp

    # A small context keeps the prompt short: prefill runs at ~50-100 tokens/s on a 2-core CI machine.
    settings = notes.model_copy(update={"llm_backend": "llamacpp", "llm_max_tokens": 48, "context_chars": 800,
                                        "rewrite_followups": "always"})
    llm, why = make_llamacpp(settings, allow_download=False)
    assert llm is not None, why
    return ChatEngine(settings, retriever, llm, backend_reason=why)


# --- extractive (no LLM) ----------------------------------------------------------------
def test_without_an_llm_the_answer_streams_sources_then_cited_sentences_of_the_notes(notes, retriever):
    engine = ChatEngine(notes, retriever, None)
    events, answer = run_events(engine, "What are the drawbacks of mixed precision training?")
    sources = events[0]
    assert sources.relevant
    assert [s.n for s in sources.sources] == list(range(1, len(sources.sources) + 1))
    best = sources.sources[0]
    assert best.hit.source == "training/mixed-precision.md" and best.hit.heading.endswith("Drawbacks")
    assert best.label == "training/mixed-precision.md › Mixed precision training › Drawbacks (lines 6–9)"
    assert answer.mode == "extractive" and answer.backend == "none"
    assert "underflow to zero" in answer.text and "[1]" in answer.text
    assert "Drawbacks" not in answer.text and "lines" not in answer.text  # the answer, not the passages
    assert answer.cited and answer.cited[0] == 1
    assert answer.notice is None  # no LLM was chosen, nothing went wrong
    assert answer.relevant
    assert_citations_valid(answer)


def test_chinese_question_gets_a_chinese_extractive_answer(notes, retriever):
    answer = ChatEngine(notes, retriever, None).ask("混合精度训练有什么缺点？")
    assert answer.sources[0].hit.source == "zh/混合精度.md"
    assert answer.mode == "extractive"
    assert "下溢成零" in answer.text and "[1]" in answer.text


def test_a_follow_up_naming_a_place_in_an_earlier_list_is_answered_about_the_thing_there(notes, retriever):
    history = [Message("user", "Which training topics do the notes cover?"),
               Message("assistant", "Three: mixed precision training, BM25 keyword ranking and loss scaling.")]
    answer = ChatEngine(notes, retriever, None).ask("What about the second one?", history)
    assert answer.standalone_question == "What about BM25 keyword ranking?"
    assert answer.sources[0].hit.source == "training/bm25.md"
    assert "inverse document frequency" in answer.text


@pytest.mark.parametrize(
    "question, start",
    [("How do I bake sourdough bread?", "Your notes don't cover this."), ("怎么做酸面包？", "你的笔记中没有涉及这个问题。")],
)
def test_question_outside_the_notes_is_answered_without_the_llm(notes, retriever, question, start):
    from rag.answer.llm.openai_backend import OpenAIChatModel

    server = SilentServer()
    try:
        # Calling this LLM would hang for 30 s and end in a fallback notice.
        llm = OpenAIChatModel(f"http://127.0.0.1:{server.port}/v1", "m", timeout_s=30)
        engine = ChatEngine(notes.model_copy(update={"llm_backend": "openai"}), retriever, llm)
        t0 = time.monotonic()
        events, answer = run_events(engine, question)
        assert time.monotonic() - t0 < 20  # calling the LLM would take 30 s
        assert server.conns == []
    finally:
        server.close()
    assert events[0].relevant is False
    assert answer.mode == "not-in-notes" and answer.notice is None and answer.backend == "none"
    assert answer.text.startswith(start)
    assert_citations_valid(answer)  # the closest passages are listed under their numbers


# --- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("question", ["", "   \n", "x" * 2001])
def test_bad_questions_raise_a_clear_error_before_anything_runs(notes, retriever, question):
    engine = ChatEngine(notes, retriever, None)
    with pytest.raises(QuestionError) as err:
        engine.stream(question, [])  # raised by the call itself, not on first iteration
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    assert message.endswith(".") and ("type a question" in message or "2000" in message)
    with pytest.raises(QuestionError):
        engine.ask(question)


# --- LLM faults: always an answer, never an exception -----------------------------------------
def test_unreachable_server_gives_notice_and_extractive_answer(notes, retriever):
    from rag.answer.llm import make_openai

    url = f"http://127.0.0.1:{closed_port()}/v1"
    settings = notes.model_copy(update={"llm_backend": "openai", "llm_base_url": url})
    engine = ChatEngine(settings, retriever, make_openai(settings))
    events, answer = run_events(engine, "What does the parameter b do in BM25?")
    assert answer.mode == "extractive" and answer.backend == "none"
    assert url in answer.notice and "unreachable" in answer.notice and "quoted from your notes" in answer.notice
    assert answer.text.startswith(answer.notice)
    assert "b = 0.75" in answer.answer_text and not answer.answer_text.startswith(answer.notice)
    assert_citations_valid(answer)


def test_follow_up_with_unreachable_server_does_not_wait_twice(notes, retriever):
    from rag.answer.llm.openai_backend import OpenAIChatModel

    server = SilentServer()
    try:
        llm = OpenAIChatModel(f"http://127.0.0.1:{server.port}/v1", "m", timeout_s=1.0)
        engine = ChatEngine(notes.model_copy(update={"llm_backend": "openai"}), retriever, llm)
        history = [Message("user", "What is mixed precision training?"), Message("assistant", "fp16 plus fp32.")]
        t0 = time.monotonic()
        _, answer = run_events(engine, "What are its drawbacks?", history)
        elapsed = time.monotonic() - t0
    finally:
        server.close()
    # The rewrite timed out once; the answer did not try the dead server again.
    assert len(server.conns) == 1 and elapsed < 6
    assert answer.mode == "extractive" and "did not answer within 1s" in answer.notice
    assert answer.sources[0].hit.heading.endswith("Drawbacks")


def test_hung_server_costs_bounded_time_and_gives_extractive_answer(notes, retriever):
    from rag.answer.llm.openai_backend import OpenAIChatModel

    server = SilentServer()
    try:
        llm = OpenAIChatModel(f"http://127.0.0.1:{server.port}/v1", "m", timeout_s=1.0)
        engine = ChatEngine(notes.model_copy(update={"llm_backend": "openai"}), retriever, llm)
        t0 = time.monotonic()
        _, answer = run_events(engine, "What does the parameter b do in BM25?")
        elapsed = time.monotonic() - t0
    finally:
        server.close()
    # Window probe (1 s), one tokenizer probe (2 s) and the request (1 s): not one wait per passage.
    assert elapsed < 8
    assert answer.mode == "extractive" and "did not answer within 1s" in answer.notice


class StallingServer:
    """Stand-in for an LLM server that stops mid-answer (a fault that cannot be caused on
    demand here): streams ``deltas`` for a chat completion, then goes silent. Other paths
    (the window and tokenizer probes) get 404, as from a server without those endpoints."""

    def __init__(self, deltas: list[str]) -> None:
        self.deltas = deltas
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.requests: list[dict] = []
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn = self.sock.accept()[0]
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:  # keep-alive: several requests may share a connection
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, body = data.split(b"\r\n\r\n", 1)
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                while length and len(body) < int(length.group(1)):
                    body += conn.recv(65536)
                if not head.split(b" ")[1].endswith(b"/chat/completions"):
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                self.requests.append(json.loads(body))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                for text in self.deltas:
                    event = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
                    payload = f"data: {json.dumps(event)}\n\n".encode()
                    conn.sendall(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                return  # and say nothing more: the stall
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_server_stalling_mid_answer_keeps_the_partial_text_and_falls_back(notes, retriever):
    from rag.answer.llm.openai_backend import OpenAIChatModel

    server = StallingServer(["Small gradients ", "underflow to zero [1]", "[9]. Loss scaling"])
    try:
        llm = OpenAIChatModel(f"http://127.0.0.1:{server.port}/v1", "m", timeout_s=1.5)
        engine = ChatEngine(notes.model_copy(update={"llm_backend": "openai"}), retriever, llm)
        events, answer = run_events(engine, "What are the drawbacks of mixed precision training?")
    finally:
        server.close()
    streamed = "".join(e.text for e in events[1:-1])
    assert streamed.startswith("Small gradients underflow to zero [1]. Loss scaling")
    # The invented [9] (5 passages shown) never reached the screen.
    assert answer.invalid_citations == [9] and "[9]" not in streamed
    assert answer.mode == "extractive" and "stopped answering" in answer.notice
    assert answer.notice in answer.text and answer.text.index(answer.notice) > 0  # the partial answer stays
    assert_citations_valid(answer)
    # What the app asked for: both token limits, and Qwen3 thinking off.
    request = server.requests[0]
    assert request["max_tokens"] == request["max_completion_tokens"] <= notes.llm_max_tokens
    assert request["chat_template_kwargs"] == {"enable_thinking": False}
    assert request["stream"] is True
    assert "[1] training/mixed-precision.md › Mixed precision training › Drawbacks" in request["messages"][-1]["content"]


# --- the embedded model --------------------------------------------------------------------------
def test_llamacpp_answer_streams_tokens_with_valid_citations(llama_engine):
    events, answer = run_events(llama_engine, "What are the drawbacks of mixed precision training?")
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert len(tokens) >= 5  # streamed, not delivered at once
    assert answer.text.strip()
    assert_citations_valid(answer)
    if answer.mode == "extractive":  # SmolLM2 cited nothing or looped: replaced, and said so
        assert answer.notice and "quoted from your notes" in answer.notice and events[-2].replace
    else:
        assert answer.backend.startswith("llama.cpp:SmolLM2")
        assert answer.mode in ("llm", "not-in-notes") and answer.notice is None


def test_llamacpp_answer_can_be_cancelled(llama_engine):
    cancel = threading.Event()
    events = []
    for event in llama_engine.stream("Explain loss scaling in detail.", [], cancel):
        events.append(event)
        if isinstance(event, TokenEvent):
            cancel.set()
    answer = events[-1].answer
    assert answer.cancelled and answer.mode == "llm"
    assert sum(isinstance(e, TokenEvent) for e in events) <= 3


def test_follow_up_is_resolved_with_history(llama_engine):
    history = [
        Message("user", "What is mixed precision training?"),
        Message("assistant", "It keeps activations in fp16 and a master copy of the weights in fp32 [1]."),
    ]
    prep = llama_engine.prepare("What are its drawbacks?", history)
    # Whatever SmolLM2 made of the rewrite, retrieval had the conversation to go on.
    assert prep.sources[0].hit.source == "training/mixed-precision.md"
    assert any(s.hit.heading.endswith("Drawbacks") for s in prep.sources[:2])
    assert "mixed precision" in prep.retrieval.search_query.lower()
    if prep.standalone_question is not None:
        assert prep.standalone_question != "What are its drawbacks?"
    # The old answer's "[1]" pointed at other passages: it is not shown to the model again.
    assert prep.prompt.messages[2].content.endswith("fp32.")
    assert prep.prompt.messages[1].content == "What is mixed precision training?"


def test_embedded_model_does_not_rewrite_follow_ups_by_default(llama_engine):
    engine = ChatEngine(llama_engine.settings.model_copy(update={"rewrite_followups": "auto"}),
                        llama_engine.retriever, llama_engine.llm)
    history = [Message("user", "What is mixed precision training?"), Message("assistant", "fp16 and fp32.")]
    prep = engine.prepare("What are its drawbacks?", history)
    assert prep.standalone_question is None
    assert "mixed precision" in prep.retrieval.search_query.lower()  # the LLM-free resolution still ran


def test_long_history_is_trimmed_to_the_budget(notes, retriever):
    engine = ChatEngine(notes, retriever, None)
    history = [Message("user" if i % 2 == 0 else "assistant", f"turn {i} " + "words " * 100) for i in range(20)]
    prep = engine.prepare("What does the parameter b do in BM25?", history)
    assert 0 < len(prep.history) <= notes.history_turns
    assert sum(len(m.content) for m in prep.history) <= notes.history_chars
    assert prep.history[-1] == history[-1]  # the most recent turns are the ones kept


# --- status and construction -----------------------------------------------------------------------
def test_status_reports_backend_reason_and_index(notes, retriever, llama_engine):
    status = ChatEngine(notes, retriever, None, backend_reason="extractive: chosen in settings").status()
    assert (status.backend, status.model, status.llm_ok, status.mode) == ("none", None, False, "extractive")
    assert status.reason == "extractive: chosen in settings"
    assert status.index.files == 3 and status.index.chunks >= 6 and status.index_error is None
    status = llama_engine.status()
    assert status.backend == "llamacpp" and status.llm_ok and status.model.startswith("llama.cpp:")


def test_auto_without_a_server_or_a_configured_gguf_answers_extractively_and_says_so(notes):
    settings = notes.model_copy(update={"llm_backend": "auto", "llm_base_url": f"http://127.0.0.1:{closed_port()}/v1",
                                        "gguf_path": None})
    engine = ChatEngine.from_settings(settings)
    status = engine.status()
    assert status.backend == "none" and status.mode == "extractive" and "unreachable" in status.reason
    # One short line: which mode answers, and how to get generated answers.
    assert "\n" not in status.line and len(status.line) < 200
    assert "extractive" in status.line and "RAG_LLM_BASE_URL" in status.line and "RAG_GGUF_PATH" in status.line
    _, answer = run_events(engine, "What are the drawbacks of mixed precision training?")
    assert answer.mode == "extractive" and answer.notice is None  # the designed default: no notice each time
    assert "underflow" in answer.text and "[1]" in answer.text


def test_auto_with_a_configured_gguf_uses_it_when_no_server_answers(notes):
    from rag.answer.llm.llamacpp_backend import packaged_gguf

    settings = notes.model_copy(update={"llm_backend": "auto", "llm_base_url": f"http://127.0.0.1:{closed_port()}/v1",
                                        "gguf_path": packaged_gguf()})
    status = ChatEngine.from_settings(settings).status()
    assert status.backend == "llamacpp" and status.mode == "llm" and "unreachable" in status.reason


# --- a generated answer that fails is replaced ----------------------------------------------------
LOOP = "在混合精度训练中，可以用于替换时使用不同精度的浮点数(如FP32)来减少每一个关键步骤。"


def test_a_looping_model_is_cut_and_replaced_by_the_extractive_answer_with_a_notice(notes, retriever):
    # A named fake: a real model that loops cannot be had on demand. It loops on one sentence,
    # token by token, as SmolLM2 did on this very question.
    pieces = [LOOP[i : i + 3] for i in range(0, len(LOOP), 3)]
    model = ScriptedChatModel(pieces * 20, name="fake:looping")
    engine = ChatEngine(notes.model_copy(update={"llm_backend": "openai"}), retriever, model)
    events, answer = run_events(engine, "混合精度训练有哪些优缺点？")
    streamed = "".join(e.text for e in events[1:-1] if not e.replace)
    assert streamed.count(LOOP) <= 1  # the user never saw the loop
    assert model.closed and model.yielded < len(pieces) * 4  # the stream was stopped, not read to its end
    replaced = [e for e in events if getattr(e, "replace", False)]
    assert len(replaced) == 1 and replaced[0].text == answer.text
    assert answer.mode == "extractive" and answer.backend == "none"
    assert answer.notice and "\n" not in answer.notice and "重复" not in answer.text.replace(answer.notice, "")
    assert answer.text.startswith(answer.notice) and LOOP not in answer.text
    assert "下溢成零" in answer.answer_text and "[1]" in answer.answer_text
    assert_citations_valid(answer)


def test_a_generated_answer_that_cites_nothing_is_replaced_by_the_extractive_answer(notes, retriever):
    model = ScriptedChatModel(["Mixed precision ", "is great ", "and has ", "no downsides."], name="fake:uncited")
    engine = ChatEngine(notes.model_copy(update={"llm_backend": "openai"}), retriever, model)
    events, answer = run_events(engine, "What are the drawbacks of mixed precision training?")
    assert answer.mode == "extractive" and "cited none of your notes" in answer.notice
    assert "no downsides" not in answer.text and "underflow to zero" in answer.text
    assert events[-2].replace


def test_a_sound_generated_answer_streams_unchanged(notes, retriever):
    model = ScriptedChatModel(["Small gradients ", "underflow to zero [1]. ", "Loss scaling ", "helps [1]."],
                              name="fake:sound")
    engine = ChatEngine(notes.model_copy(update={"llm_backend": "openai"}), retriever, model)
    events, answer = run_events(engine, "What are the drawbacks of mixed precision training?")
    assert answer.mode == "llm" and answer.backend == "fake:sound" and answer.notice is None
    assert answer.text == "Small gradients underflow to zero [1]. Loss scaling helps [1]."
    assert not any(getattr(e, "replace", False) for e in events)


# --- the commands ------------------------------------------------------------------------------------
def rag_cli(notes: Settings, *args: str, **kwargs) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rag.cli", args[0], "--corpus", str(notes.corpus_dir), "--index",
           str(notes.index_dir), *args[1:]]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **{f"RAG_{k.upper()}": str(v) for k, v in SECTION_PER_PASSAGE.items()}}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300, **kwargs)


CONTRACT_KEYS = {"id", "mode", "answer", "citations", "relevant"}


def test_ask_json_prints_the_answer_contract(notes):
    done = rag_cli(notes, "ask", "混合精度训练有什么缺点？", "--backend", "none", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert set(answer) == CONTRACT_KEYS
    assert answer["id"] is None and answer["mode"] == "extractive" and answer["relevant"] is True
    assert "下溢成零" in answer["answer"]
    first = answer["citations"][0]
    assert set(first) == {"n", "source", "heading", "line_start", "line_end"}
    assert first["n"] == 1 and first["source"] == "zh/混合精度.md" and first["heading"].endswith("缺点")
    assert 1 <= first["line_start"] <= first["line_end"]
    assert {f"[{c['n']}]" for c in answer["citations"]} == set(re.findall(r"\[\d+\]", answer["answer"]))


def test_ask_batch_answers_every_good_line_and_reports_each_bad_one(notes, tmp_path):
    lines = [
        json.dumps({"id": "q1", "question": "What does the parameter b do in BM25?"}),
        "{not json",
        json.dumps({"id": "q3", "question": "那它的缺点呢？",
                    "history": [{"role": "user", "content": "混合精度训练是什么？"},
                                {"role": "assistant", "content": "用 FP16 存储激活和梯度。"}]}),
        json.dumps({"id": "q4", "history": []}),
        json.dumps({"id": "q5", "question": "x", "history": "not a list"}),
        json.dumps({"id": "q6", "question": "How do I bake sourdough bread?"}),
    ]
    batch = tmp_path / "questions.jsonl"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = rag_cli(notes, "ask", "--batch", str(batch), "--json", "--backend", "none")
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["id"] for o in out] == ["q1", 2, "q3", "q4", "q5", "q6"]
    good = {o["id"]: o for o in out if "error" not in o}
    assert set(good) == {"q1", "q3", "q6"}
    assert all(set(o) == CONTRACT_KEYS for o in good.values())
    assert good["q1"]["mode"] == "extractive" and "b = 0.75" in good["q1"]["answer"]
    assert good["q3"]["mode"] == "extractive" and "下溢" in good["q3"]["answer"]  # history was used
    assert good["q6"]["mode"] == "not_covered" and good["q6"]["relevant"] is False
    errors = {o["id"]: o for o in out if "error" in o}
    assert errors[2]["line"] == 2 and errors["q4"]["line"] == 4 and "question" in errors["q4"]["error"]
    assert "history" in errors["q5"]["error"]


def test_ask_prints_answer_then_sources(notes):
    done = rag_cli(notes, "ask", "What does the parameter b do in BM25?", "--backend", "none")
    assert done.returncode == 0, done.stderr
    answer, sources = done.stdout.split("\nSources:\n")
    assert "b = 0.75" in answer and "[1]" in answer
    assert re.search(r"^\*\[1\] training/bm25\.md, lines \d+–\d+  BM25 keyword ranking", sources, re.M)


def test_ask_rejects_an_empty_question(notes):
    done = rag_cli(notes, "ask", "  ", "--backend", "none")
    assert done.returncode == 2 and "error: Please type a question." in done.stderr


def test_chat_keeps_history_for_follow_ups(notes):
    done = rag_cli(notes, "chat", "--backend", "none",
                   input="What is mixed precision training?\n\nWhat are its drawbacks?\n")
    assert done.returncode == 0, done.stderr  # EOF after the last question ends the session
    answers = done.stdout.split("Sources:")
    assert len(answers) == 3  # two answers, each followed by its sources
    # The follow-up found the drawbacks because the first question was kept as history.
    second = answers[1]
    assert "underflow to zero" in second


def test_chat_ctrl_c_stops_the_answer_and_eof_exits(notes):
    cmd = [sys.executable, "-m", "rag.cli", "chat", "--backend", "llamacpp", "--corpus", str(notes.corpus_dir),
           "--index", str(notes.index_dir)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAG_LLM_MAX_TOKENS": "400", "RAG_CONTEXT_CHARS": "600",
           **{f"RAG_{k.upper()}": str(v) for k, v in SECTION_PER_PASSAGE.items()}}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=REPO_ROOT, env=env, text=True)
    out: list[str] = []
    threading.Thread(target=lambda: out.extend(iter(lambda: proc.stdout.read(1), "")), daemon=True).start()
    try:
        proc.stdin.write("Explain loss scaling in detail.\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 120
        while len("".join(out).split("> ", 1)[-1]) < 20:  # some answer text after the prompt
            assert time.monotonic() < deadline and proc.poll() is None, "".join(out)
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        while "Sources:" not in "".join(out):
            assert time.monotonic() - t0 < 15, "".join(out)
            time.sleep(0.1)
        stopped_in = time.monotonic() - t0
        proc.stdin.close()  # EOF at the prompt: leave
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert stopped_in < 15
    assert "(stopped)" in proc.stderr.read()
