"""Try issues 9's and 19's faults against a real built index, as a user would, and say what held.

    python bench/fault_matrix.py [--keep] [--only NAME ...]

It writes a small corpus of its own into a temporary folder, builds it with the real
`rag index`, then runs each case: a fault done for real (a note saved in an odd way, a bad
batch line, a bad setting, a port in use, a build racing the watcher of a real `rag serve`),
and prints one line per case — what it did, what the user saw, whether anything was lost,
and whether the case held — and at the end how many held. Exit status 0 when all held.

Adding a case: write ``def my_case(ctx: Context) -> Outcome`` and decorate it with
``@case("short-name")`` (or append ``Case("short-name", fn)`` to ``CASES``). ``ctx.fresh()``
gives the case its own copy of the built corpus and index, so cases never disturb each
other; ``ctx.rag(...)`` runs the real CLI on it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from rag.index.store import IndexStore  # noqa: E402

NOTES = {
    "simcse.md": "# SimCSE\n\nSimCSE uses dropout noise as data augmentation for contrastive sentence embeddings.\n\n"
                 "## Loss\n\nThe InfoNCE loss pulls a sentence towards its dropout twin and away from in-batch "
                 "negatives.\n",
    "lora.md": "# LoRA\n\nLoRA freezes the pretrained weights and trains a low-rank update BA beside each "
               "projection matrix.\n",
    "注意力.md": "# 注意力机制\n\n自注意力让序列中的每个位置都和其他所有位置计算相关性，再按权重汇总信息。\n\n"
              "## 缩放\n\n点积的方差随维度增大，除以根号 d 可以让 softmax 不至于饱和。\n",
}
SERVE_START_S = 240  # `rag serve` loads Gradio and the embedder: slow on a busy 2-core machine
REINDEX_WAIT_S = 120


@dataclass
class Outcome:
    did: str  # what the case did, in a few words
    saw: str  # what the user saw (the relevant line of output)
    lost: bool  # did any user text / answer go missing?
    held: bool  # did the program behave as issue 9 wants?


@dataclass
class Workspace:
    root: Path
    corpus: Path
    index: Path


@dataclass
class Context:
    base: Workspace
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    _n: int = 0

    def fresh(self) -> Workspace:
        """A private copy of the built corpus and index for one case."""
        self._n += 1
        root = self.tmp / f"case{self._n:02d}"
        shutil.copytree(self.base.corpus, root / "notes", symlinks=True)
        shutil.copytree(self.base.index, root / "index", symlinks=True)
        return Workspace(root, root / "notes", root / "index")

    def rag(self, ws: Workspace | None, *args: str, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        where = ["--corpus", str(ws.corpus), "--index", str(ws.index)] if ws is not None else []
        return subprocess.run([sys.executable, "-m", "rag.cli", *args, *where], capture_output=True, text=True,
                              encoding="utf-8", timeout=timeout, env={**self.env, **(env or {})},
                              cwd=cwd or REPO_ROOT)

    def retrieve(self, ws: Workspace, question: str) -> list[dict]:
        res = self.rag(ws, "retrieve", question, "--json")
        return json.loads(res.stdout)["hits"] if res.returncode == 0 else []


@dataclass
class Case:
    name: str
    run: Callable[[Context], Outcome]


CASES: list[Case] = []


def case(name: str):
    def register(fn: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        CASES.append(Case(name, fn))
        return fn

    return register


def last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("WARNING", "INFO"))]
    return lines[-1].strip() if lines else "(nothing)"


def one_clean_line(res: subprocess.CompletedProcess) -> bool:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith(("WARNING", "INFO"))]
    return "Traceback" not in res.stderr and len(lines) == 1 and lines[0].startswith("error: ")


def found(hits: list[dict], marker: str) -> bool:
    return any(marker in h["text"] for h in hits)


# --- text that must reach the index ------------------------------------------------------------
@case("clutter-after-footer")
def clutter_after_footer(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    body = ["# 推荐系统", ""] + [f"第{i}段：协同过滤用用户和物品的交互来推荐。" for i in range(8)]
    footer = ["", "相关推荐", "", "item2vec FOOTERMARKER 把物品序列当句子训练词向量。", "", "  • 12", "    点赞",
              "  • 3", "    收藏", ""]
    mine = ["## 冷启动", "", "APPENDEDMARKER 新用户没有交互时，用注册信息和热门物品冷启动。"]
    (ws.corpus / "推荐系统.md").write_text("\n".join(body + footer + mine), encoding="utf-8")
    res = ctx.rag(ws, "index")
    kept = [m for m in ("FOOTERMARKER", "APPENDEDMARKER") if found(ctx.retrieve(ws, m), m)]
    return Outcome("note with a 相关推荐 footer, then a section", f"{len(kept)}/2 markers found; "
                   + last_line(res.stdout), lost=len(kept) < 2, held=len(kept) == 2 and res.returncode == 0)


@case("short-note")
def short_note(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    (ws.corpus / "short.md").write_text("买牛奶 MILKMARKER\n", encoding="utf-8")
    res = ctx.rag(ws, "index")
    indexed = found(ctx.retrieve(ws, "MILKMARKER"), "MILKMARKER")
    listed = "skipped short.md:" in res.stderr
    saw = "found by search" if indexed else (next((ln for ln in res.stderr.splitlines() if "short.md" in ln), "")
                                             or "nothing said")
    # Held: searchable, or (until the chunker makes one line a passage) named with the reason.
    return Outcome("one-line note, then rag index", saw, lost=not indexed, held=indexed or listed)


@case("utf16-note")
def utf16_note(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    text = "# 记事本\r\n\r\nUTF16MARKER 这是记事本存成 Unicode 的笔记，讲对比学习。\r\n"
    (ws.corpus / "notepad.txt").write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    (ws.corpus / "binary.md").write_bytes(b"\xff\xfe" + os.urandom(2048))
    res = ctx.rag(ws, "index")
    ok = found(ctx.retrieve(ws, "UTF16MARKER"), "UTF16MARKER")
    refused = "skipped binary.md: binary" in res.stderr
    return Outcome("UTF-16 note with a BOM, and a binary behind a BOM",
                   f"UTF-16 {'found' if ok else 'NOT found'}; binary {'refused' if refused else 'NOT refused'}",
                   lost=not ok, held=ok and refused)


@case("symlink-out-of-folder")
def symlink_out(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    secret = ws.root / "outside.md"
    secret.write_text("# 外面\n\nOUTSIDEMARKER 笔记文件夹外的私人文件。\n", encoding="utf-8")
    (ws.corpus / "link.md").symlink_to(secret)
    res = ctx.rag(ws, "index")
    leaked = found(ctx.retrieve(ws, "OUTSIDEMARKER"), "OUTSIDEMARKER")
    from rag.notes import list_notes
    from rag.core.settings import Settings

    shown = "link.md" in {n.source for n in list_notes(Settings(corpus_dir=ws.corpus, index_dir=ws.index))}
    warned = next((ln for ln in res.stderr.splitlines() if "link.md" in ln), "")
    return Outcome("link to a file outside the notes folder", warned or "no warning", lost=False,
                   held=bool(warned) and not leaked and not shown)


# --- errors a person can read -------------------------------------------------------------------
@case("bad-batch-lines")
def bad_batch_lines(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    lines = ['{"id": "a", "question": "What does SimCSE use as augmentation?"}', "not json",
             '{"id": "h", "question": "and?", "history": "nope"}', '{"id": "q"}',
             '{"id": "b", "question": "Which weights does LoRA freeze?"}']
    path = ws.root / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = ctx.rag(ws, "retrieve", "--batch", str(path))
    try:
        rows = [json.loads(ln) for ln in res.stdout.splitlines()]
    except json.JSONDecodeError:
        rows = []
    errors = [r for r in rows if "error" in r]
    answered = [r for r in rows if "error" not in r and r["hits"]]
    held = res.returncode == 0 and len(rows) == 5 and len(errors) == 3 and len(answered) == 2
    return Outcome("5-line batch with 3 bad lines", f"{len(answered)} answered, {len(errors)} error objects"
                   + (f" ({errors[0]['error']})" if errors else ""), lost=len(answered) < 2, held=held)


@case("bad-settings")
def bad_settings(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    (ws.root / "rag.toml").write_text("top_k = 3\nport = \n", encoding="utf-8")
    runs = [
        ctx.rag(ws, "ask", "SimCSE", env={"RAG_TOP_K": "-1", "RAG_LLM_BACKEND": "none"}),
        ctx.rag(ws, "retrieve", "SimCSE", env={"RAG_CANDIDATES": "0"}),
        ctx.rag(ws, "serve", "--port", "0", "--no-watch"),
        ctx.rag(ws, "serve", "--host", "0.0.0.0", "--no-watch"),
        ctx.rag(ws, "retrieve", "SimCSE", cwd=ws.root, env={"PYTHONPATH": str(REPO_ROOT)}),
    ]
    clean = [r for r in runs if r.returncode == 2 and one_clean_line(r) and not r.stdout.strip()]
    return Outcome("RAG_TOP_K=-1 ask, candidates 0, port 0, public host, broken rag.toml",
                   f"{len(clean)}/{len(runs)} one clear line; e.g. {last_line(runs[0].stderr)}", lost=False,
                   held=len(clean) == len(runs))


@case("port-in-use")
def port_in_use(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        res = ctx.rag(ws, "serve", "--port", str(sock.getsockname()[1]), "--no-watch",
                      env={"RAG_LLM_BACKEND": "none"})
    finally:
        sock.close()
    before = "Notes chat on" not in res.stderr
    return Outcome("rag serve on a port another program holds", last_line(res.stderr), lost=False,
                   held=res.returncode == 2 and one_clean_line(res) and before)


@case("lock-race-with-watcher")
def lock_race_with_watcher(ctx: Context) -> Outcome:
    """A real `rag serve` (watching the folder) while another process holds the build lock."""
    ws = ctx.fresh()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**ctx.env, "RAG_LLM_BACKEND": "none", "RAG_WATCH_DEBOUNCE_S": "0.5"}
    log_path = ws.root / "serve.log"
    with open(log_path, "w") as log:  # a file, not a pipe: an undrained pipe would block the server
        server = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--corpus",
                                   str(ws.corpus), "--index", str(ws.index)], cwd=REPO_ROOT, env=env,
                                  stdout=log, stderr=log, start_new_session=True)
    holder = None
    try:
        deadline = time.monotonic() + SERVE_START_S
        while "Notes chat on" not in log_path.read_text(errors="replace"):
            if time.monotonic() > deadline or server.poll() is not None:
                return Outcome("rag serve + a held lock + a saved note", "server did not start: "
                               + last_line(log_path.read_text(errors="replace")), lost=True, held=False)
            time.sleep(0.5)
        time.sleep(2)  # the watcher starts with the server; give it a moment to be scheduled
        code = ("import sys; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
                "print('held', flush=True); sys.stdin.read()")
        holder = subprocess.Popen([sys.executable, "-c", code, str(ws.index / ".lock")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        holder.stdout.readline()
        (ws.corpus / "saved-meanwhile.md").write_text("# 新\n\nRACEMARKER 在另一个构建运行时保存的笔记内容。\n",
                                                     encoding="utf-8")
        time.sleep(6)  # the watcher fires and finds the index locked, more than once
        during = "saved-meanwhile.md" in IndexStore(ws.index).read_manifest().files
        holder.stdin.close()
        holder.wait(10)
        deadline = time.monotonic() + REINDEX_WAIT_S
        after = False
        while time.monotonic() < deadline and not after:
            time.sleep(1)
            after = "saved-meanwhile.md" in IndexStore(ws.index).read_manifest().files
        waited = REINDEX_WAIT_S - max(0.0, deadline - time.monotonic())
        saw = (f"indexed {waited:.0f}s after the lock was released" if after else "never indexed") + \
              (" (but already during the lock?!)" if during else "")
        return Outcome("rag serve watching; lock held by another process; note saved", saw, lost=not after,
                       held=after and not during)
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


# --- issue 19: hostile notes and hostile servers ------------------------------------------------
def no_traceback(*runs: subprocess.CompletedProcess) -> bool:
    return all("Traceback" not in r.stderr for r in runs)


def skipped_line(res: subprocess.CompletedProcess, start: str) -> str:
    return next((ln for ln in res.stderr.splitlines() if ln.startswith(start)), "")


@case("gbk-file-name")
def gbk_file_name(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    (ws.corpus / os.fsdecode("笔记".encode("gbk") + b".md")).write_text("# 笔记\n\nGBK 文件名的笔记。\n", encoding="utf-8")
    (ws.corpus / "new.md").write_text("# New\n\nNEWMARKER a note saved beside the badly named one.\n", encoding="utf-8")
    res = ctx.rag(ws, "index")
    indexed = found(ctx.retrieve(ws, "NEWMARKER"), "NEWMARKER")
    said = skipped_line(res, "skipped \\xb1")
    return Outcome("a GBK-named note beside a new one", said or last_line(res.stderr), lost=not indexed,
                   held=res.returncode == 0 and indexed and bool(said) and no_traceback(res))


def milvus_env(db: Path) -> dict[str, str]:
    return {"RAG_VECTOR_STORE": "milvus", "RAG_MILVUS_URI": str(db)}


@case("two-indexes-one-milvus-file")
def two_indexes_one_milvus_file(ctx: Context) -> Outcome:
    one, two = ctx.fresh(), ctx.fresh()
    shutil.rmtree(one.index)
    shutil.rmtree(two.index)
    env = milvus_env(ctx.tmp / "shared-milvus.db")
    (two.corpus / "extra.md").write_text("# Extra\n\nEXTRAMARKER only in the second folder.\n", encoding="utf-8")
    runs = [ctx.rag(one, "index", env=env), ctx.rag(two, "index", env=env), ctx.rag(two, "index", "--full", env=env)]
    asked = ctx.rag(one, "retrieve", "SimCSE dropout", "--json", env=env)
    ok = asked.returncode == 0 and "SimCSE" in asked.stdout and "WARNING" not in asked.stderr
    return Outcome("rag index n1/i1, then n2/i2 twice, on one Milvus Lite file",
                   "i1 still answers" if ok else last_line(asked.stderr), lost=not ok,
                   held=ok and all(r.returncode == 0 for r in runs) and no_traceback(*runs, asked))


@case("html-bad-byte-and-deep-nesting")
def html_bad_byte_and_deep_nesting(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    page = ('<html><head><meta charset="utf-8"></head><body><h1>企鹅</h1><p>CHARSETMARKER 绿色企鹅喜欢吃鱼。</p>'
            '</body></html>').encode("utf-8").replace("吃".encode(), b"\xff", 1)
    (ws.corpus / "charset.html").write_bytes(page)
    deep = ("<html><body><h1>Deep</h1>" + "<div>" * 3000 + "<p>DEEPMARKER inside the nesting.</p>" + "</div>" * 3000
            + "<p>AFTERMARKER after the nesting.</p></body></html>")
    (ws.corpus / "deep.html").write_text(deep, encoding="utf-8")
    res = ctx.rag(ws, "index")
    kept = [m for m in ("CHARSETMARKER", "DEEPMARKER", "AFTERMARKER") if found(ctx.retrieve(ws, m), m)]
    plain = any("绿色企鹅喜欢\ufffd鱼" in h["text"] for h in ctx.retrieve(ws, "CHARSETMARKER 绿色企鹅"))
    warned = "invalid byte" in res.stderr
    return Outcome("HTML: a declared charset with one bad byte; 3000 nested divs",
                   f"{len(kept)}/3 markers found; bad byte {'warned' if warned else 'NOT warned'}",
                   lost=len(kept) < 3 or not plain, held=len(kept) == 3 and plain and warned and no_traceback(res))


@case("pdf-lookalike-pages")
def pdf_lookalike_pages(ctx: Context) -> Outcome:
    from tests.conftest import simple_pdf

    ws = ctx.fresh()
    (ws.corpus / "lookalike.pdf").write_bytes(simple_pdf([[f"Page {n}", f"Chapter {n}"] for n in range(1, 9)]))
    res = ctx.rag(ws, "index")
    dropped = skipped_line(res, "skipped lookalike.pdf")
    return Outcome("a PDF of 8 short pages that look alike", dropped or "indexed", lost=bool(dropped),
                   held=res.returncode == 0 and not dropped and no_traceback(res))


@case("batch-line-not-utf8")
def batch_line_not_utf8(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    path = ws.root / "batch.jsonl"
    path.write_bytes(b'{"id": "a", "question": "SimCSE?"}\n{"id": "b", "question": "' + "梯度".encode("gbk")
                     + b'"}\n{"id": "c", "question": "LoRA?"}\n')
    runs = [ctx.rag(ws, command, "--batch", str(path), env={"RAG_LLM_BACKEND": "none"})
            for command in ("retrieve", "ask")]
    rows = [[json.loads(ln) for ln in r.stdout.splitlines()] for r in runs]
    good = all(len(r) == 3 and "error" in r[1] and all("error" not in x for x in (r[0], r[2])) for r in rows)
    return Outcome("3-line batch, line 2 in GBK (retrieve and ask)", rows[0][1].get("error", "?") if rows[0] else
                   last_line(runs[0].stderr), lost=not good, held=good and all(r.returncode == 0 for r in runs))


@case("milvus-garbage-aliases-and-data")
def milvus_garbage_aliases_and_data(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    shutil.rmtree(ws.index)
    env = milvus_env(ws.index / "milvus.db")
    first = ctx.rag(ws, "index", env=env)
    (ws.index / "milvus.db" / "aliases.json").write_bytes(b"\x00garbage{")
    (ws.corpus / "new.md").write_text("# New\n\nNEWMARKER after the alias table broke.\n", encoding="utf-8")
    built = [ctx.rag(ws, "index", env=env), ctx.rag(ws, "index", "--full", env=env)]
    for schema in (ws.index / "milvus.db").glob("collections/*/schema.json"):
        schema.write_text("garbage", encoding="utf-8")
    asked = ctx.rag(ws, "retrieve", "SimCSE", env=env)
    repaired = ctx.rag(ws, "index", env=env)
    ok = first.returncode == 0 and all(r.returncode == 0 for r in built) and repaired.returncode == 0
    return Outcome("garbage aliases.json; then every schema.json garbage", last_line(asked.stderr)[:110], lost=not ok,
                   held=ok and one_clean_line(asked) and no_traceback(first, *built, asked, repaired))


@case("llm-slow-and-garbage")
def llm_slow_and_garbage(ctx: Context) -> Outcome:
    from rag.answer.llm.fake_servers import MisbehavingLLMServer

    ws = ctx.fresh()
    said, held = [], True
    for mode in ("slow", "garbage", "empty", "broken"):
        server = MisbehavingLLMServer(mode, delay_s=2.0)
        try:
            started = time.monotonic()
            res = ctx.rag(ws, "ask", "What does SimCSE use as augmentation?", "--json",
                          env={"RAG_LLM_BACKEND": "openai", "RAG_LLM_BASE_URL": server.url, "RAG_LLM_TOTAL_S": "5"})
            took = time.monotonic() - started
        finally:
            server.close()
        answer = json.loads(res.stdout) if res.returncode == 0 else {}
        logged = [ln for ln in res.stderr.splitlines() if "generation failed" in ln]
        ok = answer.get("mode") == "extractive" and len(logged) == 1 and no_traceback(res) and took < 60
        said.append(f"{mode}: {'ok' if ok else 'FAILED'}")
        held = held and ok
    return Outcome("LLM server: a token every 2 s (total deadline 5 s), HTML, no choices, broken JSON",
                   ", ".join(said), lost=not held, held=held)


@case("huge-one-line-note")
def huge_one_line_note(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    sentence = "自注意力让序列中的每个位置都和其他所有位置计算相关性，再按权重汇总信息。"
    (ws.corpus / "huge.md").write_text(sentence * (20_000_000 // len(sentence.encode())), encoding="utf-8")
    started = time.monotonic()
    res = ctx.rag(ws, "index")
    said = skipped_line(res, "skipped huge.md")
    return Outcome("a 20 MB note of one line", said[:110] or last_line(res.stderr), lost=False,
                   held=res.returncode == 0 and bool(said) and time.monotonic() - started < 120 and no_traceback(res))


@case("config-and-index-folder")
def config_and_index_folder(ctx: Context) -> Outcome:
    ws = ctx.fresh()
    (ws.root / "afile").write_text("a file", encoding="utf-8")
    (ws.root / "rag.toml").write_bytes(b"\xdb\x00binary")
    runs = [
        ctx.rag(ws, "retrieve", "SimCSE", env={"RAG_CONFIG": str(ws.root / "missing.toml")}),
        ctx.rag(ws, "retrieve", "SimCSE", cwd=ws.root, env={"PYTHONPATH": str(REPO_ROOT)}),
        ctx.rag(None, "index", "--corpus", str(ws.corpus), "--index", str(ws.root / "afile" / "index")),
    ]
    clean = [r for r in runs if r.returncode == 2 and one_clean_line(r) and "unexpected" not in r.stderr]
    return Outcome("RAG_CONFIG missing, binary rag.toml, index under a file",
                   f"{len(clean)}/{len(runs)} one clear line; e.g. {last_line(runs[2].stderr)[:90]}", lost=False,
                   held=len(clean) == len(runs))


# --- running -----------------------------------------------------------------------------------
def build_base(tmp: Path, env: dict[str, str]) -> Workspace:
    ws = Workspace(tmp / "base", tmp / "base" / "notes", tmp / "base" / "index")
    ws.corpus.mkdir(parents=True)
    for name, text in NOTES.items():
        (ws.corpus / name).write_text(text, encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "rag.cli", "index", "--corpus", str(ws.corpus), "--index",
                          str(ws.index)], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=600)
    if res.returncode != 0:
        raise SystemExit(f"could not build the base index: {res.stderr}")
    return ws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--only", nargs="*", help="run only these cases")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    tmp = Path(tempfile.mkdtemp(prefix="fault-matrix-"))
    cases = [c for c in CASES if not args.only or c.name in args.only]
    held = 0
    try:
        ctx = Context(build_base(tmp, env), tmp, env)
        width = max(len(c.name) for c in cases)
        for c in cases:
            started = time.perf_counter()
            try:
                out = c.run(ctx)
            except Exception as exc:  # noqa: BLE001 - a case that crashes did not hold
                out = Outcome("(crashed)", f"{type(exc).__name__}: {exc}", lost=True, held=False)
            held += out.held
            print(f"{'HELD' if out.held else 'FAIL'}  {c.name:<{width}}  did: {out.did} | saw: {out.saw} | "
                  f"lost: {'yes' if out.lost else 'no'} | {time.perf_counter() - started:.1f}s", flush=True)
        print(f"{held}/{len(cases)} cases held")
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if held == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
