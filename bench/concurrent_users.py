"""Many users at once through the Gradio API: errors and latency of /ask in retrieval-only mode.

Starts `rag serve --backend none` over the notes folder and its index in a subprocess (or
uses --url), then N users, each with its own gradio_client.Client (its own session), ask
questions from bench/data/dev.jsonl at the same moment. The server's queue runs
settings.concurrency_limit answers at a time (RAG_CONCURRENCY_LIMIT, default 2); the
rest wait their turn, which is what p95 shows.

    .venv/bin/python bench/concurrent_users.py                   # 20 users, 3 questions each
    .venv/bin/python bench/concurrent_users.py --users 20 --per-user 5 --concurrency-limit 4
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ui_latency import free_port, load_questions, start_server, stop_server  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--per-user", type=int, default=3, help="questions each user asks, one after another")
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--index", default="index")
    ap.add_argument("--url", help="use a running server instead of starting one")
    ap.add_argument("--concurrency-limit", type=int, help="RAG_CONCURRENCY_LIMIT for the started server")
    args = ap.parse_args(argv)

    from gradio_client import Client

    proc = None
    url = args.url
    if url is None:
        if not (Path(args.index) / "CURRENT").exists():
            raise SystemExit(f"no index in {args.index}: run `rag index --corpus {args.corpus} --index {args.index}`")
        env = {"RAG_CONCURRENCY_LIMIT": str(args.concurrency_limit)} if args.concurrency_limit else {}
        port = free_port()
        proc, up_s = start_server(args.corpus, args.index, port, env)
        url = f"http://127.0.0.1:{port}/"
        print(f"`rag serve --backend none` up after {up_s:.1f} s at {url}")
    try:
        status = Client(url, verbose=False).predict(api_name="/status")
        print(f"index: {status['index']['files']} notes, {status['index']['chunks']} passages; "
              f"answers: {'retrieval-only' if status['retrieval_only'] else status['llm_model']}")
        questions = load_questions(max(args.users * args.per_user, 1))
        latencies: list[float] = []
        connect: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(args.users)

        def user(i: int) -> None:
            try:
                t = time.perf_counter()
                client = Client(url, verbose=False)
                with lock:
                    connect.append(time.perf_counter() - t)
            except Exception as exc:  # noqa: BLE001 - counted
                with lock:
                    errors.append(f"user {i} connect: {type(exc).__name__}: {exc}")
                barrier.abort()
                return
            try:
                barrier.wait(120)
            except threading.BrokenBarrierError:
                pass
            for j in range(args.per_user):
                q = questions[(i * args.per_user + j) % len(questions)]
                t = time.perf_counter()
                try:
                    result = client.predict(q, api_name="/ask")
                    took = time.perf_counter() - t
                    ok = bool(result.get("text", "").strip()) and isinstance(result.get("sources"), list)
                    with lock:
                        latencies.append(took)
                        if not ok:
                            errors.append(f"user {i}: empty answer to {q!r}")
                except Exception as exc:  # noqa: BLE001 - counted
                    with lock:
                        errors.append(f"user {i}: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=user, args=(i,)) for i in range(args.users)]
        started = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - started
    finally:
        if proc is not None:
            stop_server(proc)

    asked = args.users * args.per_user
    print()
    print(f"users {args.users} × {args.per_user} questions = {asked} requests   "
          f"(server concurrency limit {args.concurrency_limit or 'default (2)'})")
    print(f"errors          {len(errors)}")
    for err in errors[:10]:
        print(f"  {err}")
    if latencies:
        print(f"latency  p50   {percentile(latencies, 0.50):6.2f} s")
        print(f"latency  p95   {percentile(latencies, 0.95):6.2f} s")
        print(f"latency  max   {max(latencies):6.2f} s   (mean {statistics.mean(latencies):.2f} s)")
        print(f"throughput     {len(latencies) / wall:6.2f} answers/s over {wall:.1f} s")
    if connect:
        print(f"client connect p50 {percentile(connect, 0.5):.2f} s (not in the latencies)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
