"""Index build cost: cold build, incremental rebuild after editing one note, and a 10x corpus.

    python bench/build.py            # sample corpus: cold + incremental
    python bench/build.py --scale 10 # also a corpus 10x larger (distinct text, so nothing is reused)

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


def run_index(corpus: Path, index: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, summary line) of one `rag index` run in its own process."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "index", "--corpus", str(corpus), "--index", str(index)],
            stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(ROOT / "corpus"))
    parser.add_argument("--scale", type=int, default=0, help="also build a corpus this many times larger")
    args = parser.parse_args()
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
