"""End to end in a real browser: the app server over a small notes folder, driven by Chromium.

Answers are extractive (no LLM) except in the streaming/stop tests, which give the
engine a slow fake model. Screenshots of the main states go to artifacts/screenshots/.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from rag.index.builder import build_index
from rag.core.settings import Settings
from rag.index.store import IndexStore
from rag.answer.llm.scripted import ScriptedChatModel

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")  # Debian chromium; Playwright cannot download one here
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

NOTES = {
    "lora.md": "# LoRA 低秩适配\n\n## 原理\n\nLoRA（Low-Rank Adaptation）冻结预训练模型的权重，在注意力层旁加入低秩矩阵 A 和 B，"
               "只训练这两个小矩阵，可训练参数很少。\n\n## 缺点\n\nLoRA 的缺点是秩 r 需要手工选择；秩太小时表达能力不足，"
               "复杂任务上效果不如全量微调。推理时如果不合并权重，会多一点延迟。\n",
    "bm25.md": "# BM25 keyword search\n\nSome intro line.\n\n## Scoring\n\nBM25 ranks passages by term frequency and "
               "inverse document frequency.\nIt saturates term frequency with k1 and normalises document length "
               "with b.\n\n## When to use it\n\nKeyword search is strong for exact terms such as error codes.\n",
    "cooking.txt": "Sourdough bread needs a starter fed with flour and water every day, and a long cold proof "
                   "in the fridge overnight.\n",
    "xss.md": "# Hostile note\n\nThis hostile note has a script tag <script>window.__xss=1</script> and an image\n"
              '<img src=x onerror="window.__xss=1"> that must show as plain text.\n',
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class GatedEmbedder:
    """The real embedder for rebuilds, with a gate a test can close to hold a rebuild mid-way."""

    def __init__(self, settings: Settings) -> None:
        from rag.index.embedders.factory import make_embedder

        self.inner = make_embedder(settings)
        self.identity, self.dim = self.inner.identity, self.inner.dim
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()

    def embed_passages(self, texts):
        if not self.gate.is_set():
            self.waiting.set()
            self.gate.wait(120)
        return self.inner.embed_passages(texts)

    def embed_queries(self, texts):
        return self.inner.embed_queries(texts)


def make_corpus(tmp: Path, **extra) -> Settings:
    corpus = tmp / "corpus"
    corpus.mkdir()
    for name, text in NOTES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    # The notes are a few lines a section and the tests open and name sections: each section is
    # its own passage, read alone (merging and whole-section reading: test_retrieval_shape.py).
    extra = {"chunk_min_chars": 0, "expand_max_chars": 0, **extra}
    return Settings(corpus_dir=corpus, index_dir=tmp / "index", llm_backend="none", port=free_port(), **extra)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from ui.app import start

    settings = make_corpus(tmp_path_factory.mktemp("ui"), max_upload_bytes=64 * 1024, watch_debounce_s=0.5)
    build_index(settings)
    embedder = GatedEmbedder(settings)
    app, demo, url = start(settings, watch=True, index_embedder=embedder)
    yield app, url, settings, embedder
    embedder.gate.set()
    demo.close()
    app.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1366, "height": 860}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server[1])
    page.locator("#question textarea").wait_for()
    yield page
    context.close()
    assert not errors, errors


def shot(page, name: str, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def bot_messages(page):
    return page.locator('#chat [data-testid="bot"]')


def ask(page, question: str, timeout: float = 30) -> str:
    """Type a question, press Enter, and return the answer's text once it is in."""
    before = bot_messages(page).count()
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if bot_messages(page).count() > before:
            last = bot_messages(page).last
            text = last.inner_text()
            if text.strip() and "Searching your notes" not in text:
                # The answer is in; wait for the sources panel of this very answer, in its final state.
                link = last.locator('a[href*="#src-"]')
                if link.count():
                    turn = link.first.get_attribute("href").split("#src-")[-1].split("-")[0]
                    page.locator(f'#sources .src-list[data-turn="{turn}"][data-state="final"]').wait_for(
                        timeout=max(1000, (deadline - time.time()) * 1000))
                else:
                    page.wait_for_timeout(300)
                return last.inner_text()
        page.wait_for_timeout(50)
    raise AssertionError(f"no answer to {question!r} within {timeout}s")


def source_summaries(page) -> list[str]:
    return [s.inner_text() for s in page.locator("#sources details.src > summary").all()]


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(200)


def wait_idle(app, timeout: float = 180) -> None:
    assert app.reindexer.wait(timeout), "the rebuild did not finish"


# --- asking ---------------------------------------------------------------------------------------
def test_home_shows_the_index_and_that_answers_are_quoted_from_the_notes(page):
    status = page.locator("#topbar").inner_text()
    assert "4 notes" in status and "passages" in status
    assert "quoted from your notes" in status and "RAG_LLM_BASE_URL" in status
    assert "RAG_LLM_BACKEND=none" in page.locator("#st-llm").get_attribute("title")
    assert "multilingual-e5-small" in status
    shot(page, "01_home")


def test_ask_shows_the_answer_and_names_the_right_note(page):
    answer = ask(page, "What does BM25 rank passages by?")
    assert "term frequency" in answer and "[1]" in answer  # the notes' own sentence, cited
    summaries = source_summaries(page)
    assert summaries and "bm25.md" in summaries[0] and "lines" in summaries[0]
    assert "Scoring" in summaries[0]  # the heading path
    shot(page, "02_answer")


def test_a_citation_opens_its_passage_in_the_note_with_words_marked(page):
    ask(page, "What does BM25 rank passages by?")
    links = page.locator('#chat [data-testid="bot"] a[href*="#src-"]')
    assert links.count() >= 2
    # A citation of a passage other than the first (open from the start).
    other = next(i for i in range(links.count()) if not links.nth(i).get_attribute("href").endswith("-1"))
    target = links.nth(other).get_attribute("href").split("#")[-1]
    details = page.locator(f"#{target}")
    assert details.get_attribute("open") is None
    links.nth(other).click()
    page.wait_for_function(f"document.getElementById('{target}').open === true")
    first = page.locator("#sources details.src").first
    assert first.get_attribute("open") is not None
    passage = first.locator(".ln.in")
    assert passage.count() >= 1 and passage.first.is_visible()
    context_lines = first.locator(".ln:not(.in)")
    assert context_lines.count() >= 1  # surrounding lines of the note are shown too
    marks = [m.inner_text() for m in first.locator(".ln.in mark").all()]
    assert {"BM25", "passages", "ranks"} <= set(marks)
    assert page.url.rstrip("/").endswith(str(server_port(page)))  # the link did not navigate away
    shot(page, "03_source_opened")


def server_port(page) -> int:
    return int(page.url.split(":")[-1].split("/")[0])


def test_follow_up_question_stays_on_the_subject(page):
    first = ask(page, "LoRA 的原理是什么？")
    assert "[1]" in first and "lora.md" in source_summaries(page)[0]  # an extractive answer, cited
    ask(page, "那它的缺点呢？")
    summaries = source_summaries(page)
    assert any("lora.md" in s and "缺点" in s for s in summaries[:2]), summaries
    marks = [m.inner_text() for m in page.locator("#sources .ln.in mark").all()]
    assert "缺点" in marks
    users = page.locator('#chat [data-testid="user"]')
    assert users.count() == 2 and "那它的缺点呢" in users.last.inner_text()
    shot(page, "04_follow_up")


def test_retry_and_new_chat(page):
    ask(page, "How is sourdough bread proofed?")
    page.locator("#retry").click()
    page.wait_for_timeout(300)
    deadline = time.time() + 20
    while "Searching your notes" in bot_messages(page).last.inner_text() and time.time() < deadline:
        page.wait_for_timeout(50)
    assert bot_messages(page).count() == 1 and page.locator('#chat [data-testid="user"]').count() == 1
    assert "Sourdough" in bot_messages(page).last.inner_text() and "cooking.txt" in source_summaries(page)[0]
    page.locator("#new-chat").click()
    page.wait_for_timeout(500)
    assert bot_messages(page).count() == 0
    assert "appear here" in page.locator("#sources").inner_text()
    ask(page, "BM25?")
    assert bot_messages(page).count() == 1


def test_each_browser_session_has_its_own_conversation(browser, server):
    pages = []
    for _ in range(2):
        ctx = browser.new_context(viewport={"width": 1000, "height": 800})
        p = ctx.new_page()
        p.goto(server[1])
        p.locator("#question textarea").wait_for()
        pages.append(p)
    ask(pages[0], "LoRA 的原理是什么？")
    ask(pages[1], "How is sourdough bread proofed?")
    ask(pages[0], "那它的缺点呢？")
    first_users = [u.inner_text() for u in pages[0].locator('#chat [data-testid="user"]').all()]
    second_users = [u.inner_text() for u in pages[1].locator('#chat [data-testid="user"]').all()]
    assert len(first_users) == 2 and len(second_users) == 1
    assert "sourdough" in second_users[0] and not any("sourdough" in u for u in first_users)
    assert any("lora.md" in s for s in source_summaries(pages[0])[:2])
    for p in pages:
        p.context.close()


def test_a_hostile_note_is_shown_as_text_and_runs_nothing(page):
    answer = ask(page, "hostile note with a script tag and an image")
    assert "<script>window.__xss=1</script>" in answer
    assert 'onerror="window.__xss=1"' in answer
    xss = page.locator("#sources details.src", has_text="xss.md").first
    if xss.get_attribute("open") is None:
        xss.locator("summary").click()
    assert "<script>window.__xss=1</script>" in xss.inner_text()
    page.wait_for_timeout(500)
    assert page.evaluate("typeof window.__xss") == "undefined"
    injected = page.evaluate("""() => document.querySelectorAll(
        '#chat script, #sources script, #chat img[src="x"], #sources img, [onerror]').length""")
    assert injected == 0
    shot(page, "07_hostile_note_as_text")


def test_sources_of_an_earlier_turn_can_still_be_opened_after_a_later_question(page):
    ask(page, "What does BM25 rank passages by?")
    first_link = bot_messages(page).first.locator('a[href*="#src-"]').first
    target = first_link.get_attribute("href").split("#")[-1]
    ask(page, "How is sourdough bread proofed?")
    assert "cooking.txt" in source_summaries(page)[0]  # the panel leads with the latest answer
    earlier = page.locator("#sources details.src-turn")
    assert earlier.count() == 1 and earlier.first.get_attribute("open") is None
    assert "What does BM25 rank passages by?" in earlier.first.locator("> summary").inner_text()
    first_link.click()
    page.wait_for_function(f"document.getElementById('{target}').open === true")
    passage = page.locator(f"#{target}")
    assert passage.is_visible() and "bm25.md" in passage.locator("summary").inner_text()
    assert passage.locator(".ln.in").first.is_visible()
    shot(page, "14_earlier_turn_sources")


def test_a_question_over_the_length_limit_shows_the_limit(page, server):
    settings = server[2]
    too_long = "What does BM25 rank passages by? " * (settings.max_question_chars // 20)
    box = page.locator("#question textarea")
    box.fill(too_long)
    box.press("Enter")
    page.locator("#ask-msg .err").wait_for(timeout=10_000)
    message = page.locator("#ask-msg").inner_text()
    assert f"the limit is {settings.max_question_chars}" in message and str(len(too_long.strip())) in message
    assert box.input_value() == too_long  # kept, to be shortened
    assert bot_messages(page).count() == 0
    shot(page, "15_question_too_long")
    ask(page, "What does BM25 rank passages by?")  # a question within the limit goes
    assert "bm25.md" in source_summaries(page)[0]
    assert page.locator("#ask-msg .err").count() == 0  # and the refusal is gone


def test_the_page_is_in_chinese_when_the_browser_asks_for_chinese(browser, server):
    ctx = browser.new_context(viewport={"width": 1366, "height": 860}, locale="zh-CN")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server[1])
    page.locator("#question textarea").wait_for()
    assert page.locator("#send").inner_text().strip() == "发送"
    assert page.locator("#stop").inner_text().strip() == "停止"
    assert page.locator("#new-chat").inner_text().strip() == "新对话"
    assert "向笔记提问" in page.locator("#question textarea").get_attribute("placeholder")
    tabs = [t.strip() for t in page.locator("#side [role=tab]").all_inner_texts()]
    assert tabs[:2] == ["来源", "笔记"], tabs
    page.wait_for_function("document.querySelector('#topbar').innerText.includes('篇笔记')")
    status = page.locator("#topbar").inner_text()
    assert "笔记问答" in status and "摘自你的笔记" in status
    assert "提问后" in page.locator("#sources").inner_text()
    shot(page, "16_chinese_home")
    answer = ask(page, "LoRA 的缺点是什么？")
    assert "秩 r 需要手工选择" in answer and "lora.md" in source_summaries(page)[0]
    assert "最新回答的来源" in page.locator("#sources").inner_text()
    assert "第" in source_summaries(page)[0] and "行" in source_summaries(page)[0]
    # A citation opens its passage from the other tab too (the tab is found by id, not by its label).
    page.get_by_role("tab", name="笔记").click()
    assert "篇笔记" in page.locator("#notes-list").inner_text()
    link = bot_messages(page).last.locator('a[href*="#src-"]').first
    target = link.get_attribute("href").split("#")[-1]
    link.click()
    page.wait_for_function(f"document.getElementById('{target}') && document.getElementById('{target}').open")
    assert page.locator(f"#{target}").is_visible()
    shot(page, "17_chinese_answer")
    # A refused question is refused in Chinese too.
    too_long = "LoRA 的缺点是什么？" * (server[2].max_question_chars // 8)
    page.locator("#question textarea").fill(too_long)
    page.locator("#question textarea").press("Enter")
    page.locator("#ask-msg .err").wait_for(timeout=10_000)
    message = page.locator("#ask-msg").inner_text()
    assert "问题太长" in message and f"上限 {server[2].max_question_chars}" in message, message
    ctx.close()
    assert not errors, errors


# --- notes --------------------------------------------------------------------------------------
def upload(page, files: list[dict]) -> str:
    """Upload files in the Notes tab; returns the message shown."""
    old = page.locator("#notes-msg .msg").inner_text() if page.locator("#notes-msg .msg").count() else ""
    page.evaluate("old => { window.__oldMsg = old; }", old)
    page.locator("#upload input[type=file]").set_input_files(files)
    page.wait_for_function(
        "() => { const el = document.querySelector('#notes-msg .msg'); "
        "return el && el.innerText.trim() && el.innerText !== window.__oldMsg; }",
        timeout=30_000)
    return page.locator("#notes-msg .msg").inner_text()


def test_an_uploaded_pdf_answers_and_its_cited_passage_opens_on_its_page(browser, tmp_path):
    """A PDF printed by Chromium (tests/data/formats, three pages, one topic a page) added in
    the Notes tab: the answer cites it, and its source opens as the page the passage is on."""
    from ui.app import start

    pdf = ROOT / "tests" / "data" / "formats" / "训练技巧.pdf"
    settings = make_corpus(tmp_path, max_upload_bytes=1024 * 1024, watch_debounce_s=0.5)
    build_index(settings)
    app, demo, url = start(settings, watch=True)
    ctx = browser.new_context(viewport={"width": 1366, "height": 860}, locale="en-US")
    try:
        page = ctx.new_page()
        page.goto(url)
        page.locator("#question textarea").wait_for()
        open_tab(page, "Notes")
        message = upload(page, [{"name": pdf.name, "mimeType": "application/pdf", "buffer": pdf.read_bytes()}])
        assert pdf.name in message, message
        wait_idle(app)
        assert IndexStore(settings.index_dir).read_manifest().files.get(pdf.name), "the PDF was not indexed"
        open_tab(page, "Sources")
        answer = ask(page, "梯度检查点是怎么省显存的？")
        assert "[1]" in answer and "重新计算" in answer, answer
        first = source_summaries(page)[0]
        assert pdf.name in first and "page 2" in first, first
        link = bot_messages(page).last.locator('a[href*="#src-"]').first
        target = link.get_attribute("href").split("#")[-1]
        link.click()
        page.wait_for_function(f"document.getElementById('{target}') && document.getElementById('{target}').open")
        shown = page.locator(f"#{target}").inner_text()
        assert "梯度检查点用重新计算换取显存" in shown  # the passage, on its page
        assert "损失缩放" not in shown and "ZeRO partitions" not in shown  # not pages 1 and 3
        shot(page, "18_pdf_source_on_its_page")
    finally:
        ctx.close()
        demo.close()
        app.close()


def test_bad_uploads_are_refused_with_a_clear_message_and_change_nothing(page, server):
    app, _, settings, _ = server
    wait_idle(app)
    corpus_root = Path(settings.corpus_dir).parent
    before_files = snapshot(Path(settings.corpus_dir))
    before_index = IndexStore(settings.index_dir).current_version()
    open_tab(page, "Notes")
    cases = [
        ([{"name": "../../evil.md", "mimeType": "text/markdown", "buffer": b"# evil\n\nowned"}], "folders"),
        ([{"name": "photo.md", "mimeType": "text/markdown",
           "buffer": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4}], "not a text note"),
        ([{"name": "fine.md", "mimeType": "text/markdown", "buffer": b"# fine"},
          {"name": "bad.md", "mimeType": "text/markdown", "buffer": b"\x00\x01binary"}], "Nothing was added"),
    ]
    for files, words in cases:
        message = upload(page, files)
        assert words in message, message
        assert page.locator("#notes-msg .err").count() == 1
        if words == "folders":
            shot(page, "06_bad_upload_refused")
    # Over the size limit: Gradio's browser client refuses it before sending it, naming the limit the
    # upload label states (64.0 KB there, "64.0 Kb" in Gradio's words).
    assert "up to 64.0 KB each" in page.locator("#upload").inner_text()
    page.locator("#upload input[type=file]").set_input_files(
        [{"name": "big.md", "mimeType": "text/markdown", "buffer": b"# big\n" + b"x" * (100 * 1024)}])
    toast = page.locator(".toast-body").filter(has_text="big.md")
    toast.wait_for(timeout=10_000)
    assert "maximum allowed size of 64.0 Kb" in toast.inner_text(), toast.inner_text()
    time.sleep(1.0)  # give the watcher a chance to (wrongly) notice something
    assert snapshot(Path(settings.corpus_dir)) == before_files
    assert not (corpus_root / "evil.md").exists() and not (corpus_root.parent / "evil.md").exists()
    assert IndexStore(settings.index_dir).current_version() == before_index
    assert not app.reindexer.status().running


def test_the_notes_message_never_shows_the_previous_files_error(page, server):
    from gradio.utils import get_upload_folder

    app = server[0]
    wait_idle(app)
    open_tab(page, "Notes")
    tag = uuid.uuid4().hex[:8]  # Gradio's temp folder is shared with any other app on this machine
    refused = upload(page, [{"name": f"photo-{tag}.md", "mimeType": "text/markdown", "buffer": b"\x00\x01\x02binary"}])
    assert "not a text note" in refused and page.locator("#notes-msg .err").count() == 1
    # Every state the box goes through from here on: the refusal must go as soon as the next upload starts.
    page.evaluate("""() => { window.__msgs = []; new MutationObserver(() => window.__msgs.push(
        document.querySelector('#notes-msg').innerText.trim())).observe(document.querySelector('#notes-msg'),
        {subtree: true, childList: true, characterData: true}); }""")
    again = upload(page, [{"name": f"same-{tag}.md", "mimeType": "text/markdown", "buffer": NOTES["bm25.md"].encode()}])
    assert "already in your notes" in again
    assert page.locator("#notes-msg .err").count() == 0 and "not a text note" not in page.locator("#notes-msg").inner_text()
    states = page.evaluate("window.__msgs")
    first_new = next(i for i, text in enumerate(states) if "already in your notes" in text)
    assert "" in states[:first_new], states  # cleared before the new outcome came
    assert not app.reindexer.status().running
    # Neither upload stays in Gradio's temporary folder.
    assert not [p for p in Path(get_upload_folder()).rglob(f"*{tag}*") if p.is_file()]


def test_upload_notes_rebuild_and_find_them_by_asking(page, server):
    app, _, settings, _ = server
    wait_idle(app)
    open_tab(page, "Notes")
    message = upload(page, [
        {"name": "注意力机制.md", "mimeType": "text/markdown",
         "buffer": "# 注意力机制\n\n自注意力（self-attention）计算查询和键的点积，除以根号 d 后做 softmax 得到权重。\n".encode()},
        {"name": "checkpointing.txt", "mimeType": "text/plain",
         "buffer": b"Gradient checkpointing saves memory by recomputing activations during the backward pass.\n"},
    ])
    assert "Added 2 notes" in message and "注意力机制.md" in message
    assert (Path(settings.corpus_dir) / "注意力机制.md").exists()
    page.wait_for_function("document.querySelector('#reindex').innerText.includes('Index updated')",
                           timeout=180_000)
    page.wait_for_function("document.querySelector('#notes-list').innerText.includes('注意力机制.md')")
    shot(page, "05_upload_and_rebuild")
    open_tab(page, "Sources")
    ask(page, "自注意力是怎么计算的？")
    assert "注意力机制.md" in source_summaries(page)[0]
    # A new subject in a new chat: the retriever leans on earlier turns, even for a complete question.
    page.locator("#new-chat").click()
    page.wait_for_timeout(300)
    ask(page, "How does gradient checkpointing save memory?")
    assert "checkpointing.txt" in source_summaries(page)[0]
    # The same file again is recognised by its content.
    open_tab(page, "Notes")
    again = upload(page, [{"name": "copy.txt", "mimeType": "text/plain",
                           "buffer": b"Gradient checkpointing saves memory by recomputing activations during the "
                                     b"backward pass.\n"}])
    assert "already in your notes as “checkpointing.txt”" in again


def test_questions_are_answered_while_the_index_rebuilds(page, server):
    app, _, settings, embedder = server
    wait_idle(app)
    old_version = IndexStore(settings.index_dir).current_version()
    embedder.gate.clear()
    embedder.waiting.clear()
    try:
        (Path(settings.corpus_dir) / "quantization.md").write_text(
            "# Quantization\n\nInt8 quantization stores weights in eight bits with a per-channel scale.\n",
            encoding="utf-8")
        open_tab(page, "Notes")
        page.locator("#rebuild").click()
        assert embedder.waiting.wait(60), "the rebuild never reached the embedding step"
        page.wait_for_function("document.querySelector('#reindex').innerText.includes('Re-indexing')")
        assert "previous index" in page.locator("#reindex").inner_text()
        open_tab(page, "Sources")
        answer = ask(page, "What does BM25 rank passages by?")
        assert "term frequency" in answer and "bm25.md" in source_summaries(page)[0]
        assert app.reindexer.status().running  # answered from the old index, mid-rebuild
        assert IndexStore(settings.index_dir).current_version() == old_version
        page.wait_for_function("document.querySelector('#topbar').innerText.includes('re-indexing')")
        shot(page, "10_answer_during_rebuild")
    finally:
        embedder.gate.set()
    wait_idle(app)
    assert IndexStore(settings.index_dir).current_version() != old_version
    ask(page, "How are weights stored with int8 quantization?")
    assert "quantization.md" in source_summaries(page)[0]


def test_cancelling_a_rebuild_keeps_the_previous_index_answering(page, server):
    app, _, settings, embedder = server
    wait_idle(app)
    store = IndexStore(settings.index_dir)
    old_version = store.current_version()
    versions = sorted(p.name for p in (Path(settings.index_dir) / "versions").iterdir())
    note = Path(settings.corpus_dir) / "distillation.md"
    open_tab(page, "Notes")
    assert not page.locator("#cancel-reindex").is_visible()  # shown only while a rebuild runs
    embedder.gate.clear()
    embedder.waiting.clear()
    try:
        # The watcher sees the new note and starts a rebuild, held in its embedding step by the gate.
        note.write_text("# Distillation\n\nA small student model learns from the soft labels of a large teacher.\n",
                        encoding="utf-8")
        assert embedder.waiting.wait(60), "the rebuild never reached the embedding step"
        page.locator("#cancel-reindex").wait_for(state="visible", timeout=10_000)
        shot(page, "18_rebuild_with_cancel")
        page.locator("#cancel-reindex").click()
        page.wait_for_function("document.querySelector('#notes-msg').innerText.includes('previous index')")
    finally:
        embedder.gate.set()  # the held batch ends; the build stops at its next step
    wait_idle(app, 60)
    page.wait_for_function("document.querySelector('#reindex').innerText.includes('Re-indexing cancelled')")
    page.locator("#cancel-reindex").wait_for(state="hidden", timeout=10_000)
    assert store.current_version() == old_version
    assert sorted(p.name for p in (Path(settings.index_dir) / "versions").iterdir()) == versions
    # The note stays on disk, listed as pending: the next rebuild takes it.
    page.wait_for_function("document.querySelector('#notes-list tr[data-source=\"distillation.md\"]') && "
                           "document.querySelector('#notes-list tr[data-source=\"distillation.md\"]').innerText"
                           ".includes('pending')")
    shot(page, "19_rebuild_cancelled")
    open_tab(page, "Sources")
    answer = ask(page, "What does BM25 rank passages by?")
    assert "term frequency" in answer and "bm25.md" in source_summaries(page)[0]
    note.unlink()
    wait_idle(app)


def test_the_notes_tab_shows_each_notes_state_in_its_folder_and_finds_notes_by_path(browser, tmp_path):
    from tests.conftest import write_notes
    from ui.app import start

    settings = make_corpus(tmp_path, watch_debounce_s=0.5)
    write_notes(Path(settings.corpus_dir), {
        "ml/attention.md": "# Attention\n\nScaled dot-product attention divides by the square root of d.\n",
        "ml/lora/lora-notes.md": "# LoRA\n\nTwo small matrices A and B: few trainable parameters.\n",
        "ml/empty.md": "  \n",
        "ml/scan.pdf": b"%PDF-1.4\n%%EOF\n",
        "nlp/tokenizers.md": "# Tokenizers\n\nBPE merges the most frequent pairs of symbols.\n"})
    build_index(settings)
    write_notes(Path(settings.corpus_dir), {"nlp/new-note.md": "# New\n\nWritten after the last build.\n"})
    app, demo, url = start(settings, watch=False)
    try:
        for locale, tab, words in (
                ("en-US", "Notes", ("10 notes in the notes folder: 7 indexed · 1 pending · 1 skipped · 1 failed",
                                    "empty file", "not a readable PDF", "1 passage", "4 shown: paths containing “ml/”")),
                ("zh-CN", "笔记", ("笔记文件夹中有 10 篇笔记：7 篇已索引 · 1 篇待索引 · 1 篇已跳过 · 1 篇失败",
                                  "已跳过", "失败", "1 个段落", "显示 4 篇：路径包含“ml/”"))):
            ctx = browser.new_context(viewport={"width": 1366, "height": 1100}, locale=locale)
            page = ctx.new_page()
            page.goto(url)
            page.locator("#question textarea").wait_for()
            open_tab(page, tab)
            listing = page.locator("#notes-list")
            page.wait_for_function("document.querySelector('#notes-list tr.dir')")
            text = listing.inner_text()
            assert words[0] in text, text
            rows = [r.get_attribute("data-source") for r in listing.locator("tr.note").all()]
            assert rows == ["bm25.md", "cooking.txt", "lora.md", "xss.md", "ml/attention.md", "ml/empty.md",
                            "ml/scan.pdf", "ml/lora/lora-notes.md", "nlp/new-note.md", "nlp/tokenizers.md"]
            assert [d.inner_text().strip() for d in listing.locator("tr.dir").all()] == ["▸ ml/", "▸ lora/", "▸ nlp/"]
            assert all(w in text for w in words[1:4]), text
            listing.scroll_into_view_if_needed()
            shot(page, f"20_notes_states_{locale}")
            page.locator("#notes-search input, #notes-search textarea").first.fill("ml/")
            page.wait_for_function("document.querySelector('#notes-list').innerText.includes('ml/”')")
            assert [r.get_attribute("data-source") for r in listing.locator("tr.note").all()] == [
                "ml/attention.md", "ml/empty.md", "ml/scan.pdf", "ml/lora/lora-notes.md"]
            assert words[4] in listing.inner_text()
            # The page's poll keeps the search: the list stays filtered after the next tick.
            page.wait_for_timeout(2500)
            assert listing.locator("tr.note").count() == 4
            shot(page, f"21_notes_search_{locale}")
            ctx.close()
    finally:
        demo.close()
        app.close()


def test_delete_a_note(page, server):
    app, _, settings, _ = server
    wait_idle(app)
    open_tab(page, "Notes")
    page.locator("#note-pick input").click()
    page.get_by_role("option", name="cooking.txt").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete").click()
    page.wait_for_function("(document.querySelector('#notes-msg .msg') || {innerText: ''}).innerText"
                           ".includes('Deleted')")
    assert not (Path(settings.corpus_dir) / "cooking.txt").exists()
    wait_idle(app)
    open_tab(page, "Sources")
    ask(page, "How is sourdough bread proofed?")
    assert not any("cooking.txt" in s for s in source_summaries(page))


def test_edits_outside_the_app_are_picked_up(page, server):
    app, _, settings, _ = server
    wait_idle(app)
    (Path(settings.corpus_dir) / "outside edit.md").write_text(
        "# Speculative decoding\n\nA small draft model proposes tokens that the large model verifies in one pass.\n",
        encoding="utf-8")
    # The notice shows in the status line whatever tab is open, and in the Notes tab.
    page.wait_for_function("document.querySelector('#topbar').innerText.includes('outside edit.md')",
                           timeout=60_000)
    wait_idle(app)
    page.wait_for_function("document.querySelector('#topbar').innerText.includes('Index updated')")
    shot(page, "13_outside_edit_notice")
    open_tab(page, "Notes")
    assert "outside edit.md" in page.locator("#reindex").inner_text()
    page.wait_for_function("document.querySelector('#notes-list').innerText.includes('outside edit.md')")
    open_tab(page, "Sources")
    ask(page, "How does speculative decoding use a draft model?")
    assert "outside edit.md" in source_summaries(page)[0]


def test_layout_holds_on_a_phone(browser, server):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                              has_touch=True)
    page = ctx.new_page()
    page.goto(server[1])
    page.locator("#question textarea").wait_for()
    ask(page, "LoRA 的缺点是什么？")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 392, f"the page scrolls sideways on a phone ({width}px)"
    for sel in ("#question textarea", "#send", "#stop", "#chat"):
        box = page.locator(sel).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 391, (sel, box)
    shot(page, "08_phone", full_page=True)
    open_tab(page, "Notes")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 392, f"the Notes tab scrolls sideways on a phone ({width}px)"
    page.locator("#upload").scroll_into_view_if_needed()
    shot(page, "08b_phone_notes")
    ctx.close()


# --- the scope picker -------------------------------------------------------------------------------
def test_a_folder_picked_as_scope_keeps_every_source_inside_it_in_english_and_in_chinese(browser, tmp_path):
    from tests.conftest import write_notes
    from ui.app import start

    settings = make_corpus(tmp_path)
    write_notes(Path(settings.corpus_dir), {
        "工作/rag/retrieval.md": "# Hybrid retrieval\n\nHybrid retrieval ranks passages by fusing BM25 keyword ranks "
                                 "with dense vector ranks. #rag\n",
        "工作/rag/chunking.md": "# Chunking\n\nNotes are split along their own headings into passages. #rag\n"})
    build_index(settings)
    app, demo, url = start(settings, watch=False)
    question = "What does BM25 rank passages by?"  # outside the scope, bm25.md answers it best
    try:
        for locale, line, cleared, empty in (
                ("en-US", "Scope: in 工作/rag", "Clear scope",
                 "No note matches this scope (in 工作/rag; since 2999-01-01): check the folder, tag or dates."),
                ("zh-CN", "范围：位于 工作/rag", "清除范围",
                 "没有笔记符合这个范围（位于 工作/rag；2999-01-01 起）：请检查文件夹、标签或日期。")):
            ctx = browser.new_context(viewport={"width": 1366, "height": 900}, locale=locale)
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.locator("#question textarea").wait_for()
            page.locator("#scope > button").click()  # the picker opens (its title in the page's language)
            expected = ["bm25.md", "cooking.txt", "lora.md", "xss.md", "工作/", "工作/rag/", "工作/rag/chunking.md",
                        "工作/rag/retrieval.md"] + (["新/", "新/later.md"] if locale == "zh-CN" else [])
            for _ in range(20):  # the page's poll brings the choices up to date
                page.locator("#scope-in input").click()
                options = [o.strip() for o in page.locator("#scope-in [role=option]").all_inner_texts()]
                if options == expected:
                    break
                page.locator("#question textarea").click()
                page.wait_for_timeout(300)
            assert options == expected, options
            page.wait_for_timeout(400)  # the list fades in
            shot(page, f"29_scope_tree_{locale}")
            page.get_by_role("option", name="工作/rag/", exact=True).click()
            page.locator("#scope-active .answer-scope").wait_for()
            assert "工作/rag" in page.locator("#scope-active").inner_text()
            page.locator("#question textarea").click()  # closes the list
            answer = ask(page, question)
            summaries = source_summaries(page)
            assert summaries and all("工作/rag/" in s for s in summaries), summaries
            assert bot_messages(page).last.locator(".answer-scope").inner_text().strip() == line, answer
            shot(page, f"30_scope_{locale}", full_page=True)
            # A follow-up keeps the scope.
            ask(page, "And how are notes split?")
            shown = [s for s in source_summaries(page) if s]  # the earlier answer's sources are collapsed
            assert shown and all("工作/rag/" in s for s in shown), shown
            assert bot_messages(page).last.locator(".answer-scope").inner_text().strip() == line
            # A scope that holds no note says so in one line, in the page's language.
            page.locator("#scope-since input, #scope-since textarea").first.fill("2999-01-01")
            assert ask(page, question).strip() == empty
            # Cleared, the next question searches every note again and names no scope.
            page.locator("#scope-clear").click()
            assert page.locator("#scope-clear").inner_text().strip() == cleared
            page.wait_for_function("!document.querySelector('#scope-active .answer-scope')")
            ask(page, question)
            assert "bm25.md" in source_summaries(page)[0] and "工作/" not in source_summaries(page)[0]
            assert bot_messages(page).last.locator(".answer-scope").count() == 0
            ctx.close()
            assert not errors, errors
            # A note written now (not indexed yet) is offered on the next page without a restart.
            write_notes(Path(settings.corpus_dir), {"新/later.md": "# Later\n\nWritten after the page was built.\n"})
    finally:
        demo.close()
        app.close()


# --- streaming and stopping (a slow fake model) ----------------------------------------------------
def slow_model():
    """Fake: a model that writes a long cited answer slowly and stops when told to. Numbered
    sentences, so that none repeats (a repeated one would be cut as a loop, rag/answer/degeneration.py)."""
    words = " ".join(f"Step {i}: LoRA freezes the pretrained weights and trains two small matrices [1]."
                     for i in range(1, 41)).split(" ")
    return ScriptedChatModel([w + " " for w in words], name="fake:slow-writer", delay_s=0.08)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    from rag.answer.chat import ChatEngine
    from rag.search.retrieval import Retriever
    from ui.app import start

    settings = make_corpus(tmp_path_factory.mktemp("slow"))
    build_index(settings)
    engine = ChatEngine(settings, Retriever.from_settings(settings), slow_model(), backend_reason="test model")
    app, demo, url = start(settings, watch=False, engine=engine)
    yield url
    demo.close()
    app.close()


def test_answer_streams_in_and_stop_ends_it(browser, slow_server):
    ctx = browser.new_context(viewport={"width": 1366, "height": 860})
    page = ctx.new_page()
    page.goto(slow_server)
    page.locator("#question textarea").wait_for()
    assert "fake:slow-writer" in page.locator("#topbar").inner_text()  # the model that answers is named
    page.locator("#question textarea").fill("LoRA 的原理是什么？")
    page.locator("#question textarea").press("Enter")
    page.wait_for_function("""() => { const m = document.querySelectorAll('#chat [data-testid="bot"]');
        return m.length && m[m.length - 1].innerText.includes('freezes'); }""", timeout=30_000)
    first = len(bot_messages(page).last.inner_text())
    page.wait_for_timeout(800)
    second = len(bot_messages(page).last.inner_text())
    assert second > first, "the answer does not stream"
    assert bot_messages(page).last.locator('a[href*="#src-"]').count() >= 1  # live citations
    shot(page, "09_streaming")
    page.locator("#stop").click()
    page.wait_for_function("""() => { const m = document.querySelectorAll('#chat [data-testid="bot"]');
        return m[m.length - 1].innerText.includes('(stopped)'); }""", timeout=10_000)
    stopped = bot_messages(page).last.inner_text()
    assert len(stopped) < len("LoRA freezes the pretrained weights and trains two small matrices [1]. ") * 40
    page.wait_for_timeout(500)
    assert bot_messages(page).last.inner_text() == stopped  # nothing more arrives
    shot(page, "09b_stopped")
    # The conversation goes on after a stop.
    page.locator("#question textarea").fill("那它的缺点呢？")
    page.locator("#question textarea").press("Enter")
    page.wait_for_function("""() => document.querySelectorAll('#chat [data-testid="bot"]').length === 2""")
    page.locator("#stop").click()
    ctx.close()


def test_new_chat_during_an_answer_starts_clean(browser, slow_server):
    ctx = browser.new_context(viewport={"width": 1366, "height": 860})
    page = ctx.new_page()
    page.goto(slow_server)
    page.locator("#question textarea").fill("LoRA 的原理是什么？")
    page.locator("#question textarea").press("Enter")
    page.wait_for_function("""() => { const m = document.querySelectorAll('#chat [data-testid="bot"]');
        return m.length && m[m.length - 1].innerText.includes('freezes'); }""", timeout=30_000)
    page.locator("#new-chat").click()
    page.wait_for_timeout(1500)  # the cancelled answer must not come back into the new chat
    assert bot_messages(page).count() == 0
    page.locator("#question textarea").fill("BM25 是什么？")
    page.locator("#question textarea").press("Enter")
    page.wait_for_function("""() => document.querySelectorAll('#chat [data-testid="bot"]').length === 1""")
    assert page.locator('#chat [data-testid="user"]').count() == 1
    page.locator("#stop").click()
    ctx.close()
