"""Web UI latency in real Chromium: page ready after the server is up, and Enter → first answer text.

Starts `rag serve` (retrieval-only, no watcher) over the notes folder and its index in a
subprocess, waits until it answers HTTP, then drives /usr/bin/chromium with Playwright:

* page ready: navigation start → the question box is on screen with the status line
  rendered (measured in the page with performance.now(); first load, then reloads);
* first answer: the Enter keydown → the first answer text (not the placeholder) in the
  chat, measured in the page by a MutationObserver, for questions from bench/data/dev.jsonl.

Targets: page ready ≤ 2 s, first answer ≤ 1 s (retrieval-only).

    .venv/bin/python bench/ui_latency.py                       # corpus/ and index/
    .venv/bin/python bench/ui_latency.py --corpus C --index I --questions 8 --loads 5
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")  # Debian chromium; Playwright cannot download one here
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_READY_TARGET_S = 2.0
FIRST_ANSWER_TARGET_S = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(corpus: str, index: str, port: int, extra_env: dict | None = None) -> tuple[subprocess.Popen, float]:
    """`rag serve` in a subprocess; returns it and the seconds until it answered HTTP."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}, **(extra_env or {}))
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--backend", "none", "--no-watch", "--host", "127.0.0.1",
           "--port", str(port), "--corpus", corpus, "--index", index]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}):\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return proc, time.perf_counter() - started
        except OSError:
            pass
        if time.perf_counter() - started > 300:
            proc.kill()
            raise SystemExit("the server did not come up within 300 s")
        time.sleep(0.1)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def load_questions(n: int) -> list[str]:
    questions = []
    with open(ROOT / "bench" / "data" / "dev.jsonl", encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            if not item.get("history"):
                questions.append(item["question"])
    return questions[:n]


READY_JS = """() => {
  const box = document.querySelector('#question textarea');
  const status = document.querySelector('#topbar .status');
  if (!box || !status || !status.innerText.trim()) return false;
  const r = box.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && !box.disabled;
}"""

# Record when Enter goes down and when the newest bot message first shows answer text.
WATCH_JS = """() => {
  window.__t = {enter: null, placeholder: null, answer: null};
  const before = document.querySelectorAll('#chat [data-testid="bot"]').length;
  document.querySelector('#question textarea').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && window.__t.enter === null) window.__t.enter = performance.now();
  }, {capture: true, once: true});
  const check = () => {
    const bots = document.querySelectorAll('#chat [data-testid="bot"]');
    if (bots.length <= before) return;
    const text = bots[bots.length - 1].innerText || '';
    if (window.__t.placeholder === null && text.trim()) window.__t.placeholder = performance.now();
    if (window.__t.answer === null && text.trim() && !text.includes('Searching your notes')) {
      window.__t.answer = performance.now();
      obs.disconnect();
    }
  };
  const obs = new MutationObserver(check);
  obs.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--index", default="index")
    ap.add_argument("--loads", type=int, default=5, help="page loads (the first is cold)")
    ap.add_argument("--questions", type=int, default=8)
    args = ap.parse_args(argv)
    if not (Path(args.index) / "CURRENT").exists():
        raise SystemExit(f"no index in {args.index}: run `rag index --corpus {args.corpus} --index {args.index}`")

    from playwright.sync_api import sync_playwright

    port = free_port()
    print(f"starting `rag serve` (retrieval-only) on port {port} over {args.corpus}/ …", flush=True)
    proc, up_s = start_server(args.corpus, args.index, port)
    url = f"http://127.0.0.1:{port}/"
    print(f"server up (answers HTTP) after {up_s:.1f} s")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1366, "height": 860})
            page = context.new_page()
            ready = []
            for i in range(args.loads):
                wall = time.perf_counter()
                page.goto(url, wait_until="commit")
                page.wait_for_function(READY_JS, polling=20, timeout=30_000)
                in_page = page.evaluate("performance.now()") / 1000
                ready.append((in_page, time.perf_counter() - wall))
                print(f"  load {i + 1}{' (cold)' if i == 0 else ''}: ready {in_page:.2f} s after navigation "
                      f"({ready[-1][1]:.2f} s wall)")

            answers = []
            for q in load_questions(args.questions):
                page.evaluate(WATCH_JS)
                box = page.locator("#question textarea")
                box.fill(q)
                box.press("Enter")
                page.wait_for_function("() => window.__t.answer !== null", polling=20, timeout=60_000)
                t = page.evaluate("window.__t")
                first = (t["answer"] - t["enter"]) / 1000
                shown = (t["placeholder"] - t["enter"]) / 1000
                answers.append((first, shown))
                print(f"  Enter → question shown {shown:.2f} s, first answer text {first:.2f} s   {q[:40]}")
                page.wait_for_timeout(300)
            browser.close()
    finally:
        stop_server(proc)

    cold = ready[0][0]
    warm = statistics.median(r[0] for r in ready[1:]) if len(ready) > 1 else cold
    firsts = sorted(a[0] for a in answers)
    p50 = statistics.median(firsts)
    worst = firsts[-1]
    print()
    print(f"server start → HTTP up          {up_s:6.2f} s")
    print(f"page ready, first load (cold)   {cold:6.2f} s   target ≤ {PAGE_READY_TARGET_S:.0f} s  "
          f"{'OK' if cold <= PAGE_READY_TARGET_S else 'MISSED'}")
    print(f"page ready, reload (median)     {warm:6.2f} s")
    print(f"Enter → first answer text  p50  {p50:6.2f} s   max {worst:.2f} s   target ≤ {FIRST_ANSWER_TARGET_S:.0f} s  "
          f"{'OK' if worst <= FIRST_ANSWER_TARGET_S else 'MISSED (max)' if p50 <= FIRST_ANSWER_TARGET_S else 'MISSED'}")
    print(f"Enter → question in the chat p50 {statistics.median(a[1] for a in answers):6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
