"""LLM servers that misbehave: a real HTTP server on 127.0.0.1 streams too slowly, sends no
text, an HTML error page, an empty choice list or JSON cut in half. Every answer ends within
the deadlines, keeps what was said, falls back to the extractive answer, and the failure is
logged as one line (a traceback only when debugging)."""
from __future__ import annotations

import logging
import time

import pytest

from rag.answer.chat import ChatEngine
from rag.answer.llm.base import LLMUnavailable, PromptMessage
from rag.answer.llm.openai_backend import OpenAIChatModel
from tests.conftest import write_notes
from rag.answer.llm.fake_servers import MisbehavingLLMServer

HELLO = [PromptMessage("user", "Say hello.")]
QUESTION = "What does the parameter b do in BM25?"


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    from rag.index.builder import build_index
    from rag.core.settings import Settings

    root = tmp_path_factory.mktemp("notes")
    write_notes(root / "corpus", {"bm25.md": "# BM25\n\n## Length normalisation\n\nThe parameter b controls how "
                                              "strongly long passages are penalised; b = 0.75 is the usual default.\n"})
    settings = Settings(corpus_dir=root / "corpus", index_dir=root / "index", llm_backend="openai",
                        chunk_min_chars=0, expand_max_chars=0)
    build_index(settings)
    return settings


@pytest.fixture
def server(request):
    mode, delay = request.param
    srv = MisbehavingLLMServer(mode, delay_s=delay)
    yield srv
    srv.close()


def answer_with(notes, server: MisbehavingLLMServer, **deadlines):
    from rag.search.retrieval import Retriever

    llm = OpenAIChatModel(server.url, "m", timeout_s=5.0, **deadlines)
    engine = ChatEngine(notes, Retriever.from_settings(notes), llm)
    return engine.ask(QUESTION, [])


@pytest.mark.parametrize("server", [("slow", 1.0)], indirect=True)
def test_a_stream_of_one_token_a_second_ends_at_its_total_deadline_and_keeps_what_was_said(server):
    llm = OpenAIChatModel(server.url, "m", timeout_s=5.0, first_token_s=10.0, total_s=2.5)
    got: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailable, match=r"did not finish its answer within 2.5s \(RAG_LLM_TOTAL_S\)"):
        for delta in llm.stream(HELLO, max_tokens=50, temperature=0.0):
            got.append(delta)
    assert time.monotonic() - t0 < 3.5
    assert got and "".join(got).startswith("One token")


@pytest.mark.parametrize("server", [("silent", 0.3)], indirect=True)
def test_a_server_that_sends_only_keep_alives_ends_at_the_first_token_deadline(server):
    llm = OpenAIChatModel(server.url, "m", timeout_s=5.0, first_token_s=1.5, total_s=60.0)
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailable, match=r"sent no text within 1.5s \(RAG_LLM_FIRST_TOKEN_S\)"):
        list(llm.stream(HELLO, max_tokens=50, temperature=0.0))
    assert time.monotonic() - t0 < 2.5


@pytest.mark.parametrize("server", [("slow", 1.0)], indirect=True)
def test_a_slow_answer_past_its_deadline_falls_back_to_the_extractive_answer(notes, server):
    t0 = time.monotonic()
    answer = answer_with(notes, server, first_token_s=10.0, total_s=2.5)
    assert time.monotonic() - t0 < 10
    assert answer.mode == "extractive" and "RAG_LLM_TOTAL_S" in answer.notice
    assert answer.text.startswith("One token") and "b = 0.75" in answer.text


@pytest.mark.parametrize("server", [("garbage", 0), ("empty", 0), ("broken", 0)], indirect=True)
def test_a_body_that_is_not_an_openai_stream_is_one_log_line_and_an_extractive_answer(notes, server, caplog):
    with caplog.at_level(logging.INFO):
        answer = answer_with(notes, server)
    assert answer.mode == "extractive" and "b = 0.75" in answer.text
    failures = [r for r in caplog.records if "generation failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.WARNING, caplog.text
    assert not failures[0].exc_info and "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("server", [("broken", 0)], indirect=True)
def test_the_traceback_of_a_failed_generation_is_logged_only_when_debugging(notes, server, caplog):
    with caplog.at_level(logging.DEBUG):
        answer_with(notes, server)
    failures = [r for r in caplog.records if "generation failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info
