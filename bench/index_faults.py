"""Index-damage fault cases, one line each: what was done, what the user saw, what was lost.

    python bench/index_faults.py [--corpus corpus]

Builds a real index of a copy of the notes in two versions (all notes but one, then all),
then for each case damages a fresh copy on disk, runs `rag retrieve` and `rag index` as
subprocesses and reports: the exit codes, whether a traceback reached the user, which
version answered, and whether the repaired index holds every note again. Ends with how
many cases held. (For bench/fault_matrix.py: ``CASES`` and ``run_case`` are importable.)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.index.store import IndexStore  # noqa: E402

from rag.index.version_files import COMPLETE_MARKER


def _truncate(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 8] = bytes(255 - b for b in data[mid : mid + 8])
    path.write_bytes(bytes(data))


def _current(index: Path) -> Path:
    return index / "versions" / (index / "CURRENT").read_text().strip()


CASES: dict[str, Callable[[Path], None]] = {
    "truncated chunks.jsonl": lambda ix: _truncate(_current(ix) / "chunks.jsonl"),
    "truncated vectors.npy": lambda ix: _truncate(_current(ix) / "vectors.npy"),
    "truncated dense.faiss": lambda ix: _truncate(_current(ix) / "dense.faiss"),
    "truncated bm25.npz": lambda ix: _truncate(_current(ix) / "bm25.npz"),
    "bytes flipped in vectors.npy (same size)": lambda ix: _flip(_current(ix) / "vectors.npy"),
    "garbage manifest.json": lambda ix: (_current(ix) / "manifest.json").write_text("{garbage"),
    "garbage COMPLETE marker": lambda ix: (_current(ix) / COMPLETE_MARKER).write_bytes(b"\x00\x01"),
    "deleted CURRENT": lambda ix: (ix / "CURRENT").unlink(),
    "every version's manifest garbage": lambda ix: [(v / "manifest.json").write_text("{")
                                                     for v in (ix / "versions").iterdir()],
}


@dataclass
class Outcome:
    case: str
    retrieve_rc: int
    traceback: bool
    served: str
    index_rc: int
    index_said: str
    notes_after: int
    notes_expected: int

    @property
    def held(self) -> bool:
        return (not self.traceback and self.index_rc == 0 and self.notes_after == self.notes_expected
                and self.retrieve_rc in (0, 2))

    def line(self) -> str:
        lost = "nothing lost" if self.notes_after == self.notes_expected else \
            f"LOST {self.notes_expected - self.notes_after} notes"
        return (f"{'held ' if self.held else 'FAILED'} | {self.case}: retrieve rc={self.retrieve_rc} "
                f"({self.served}){' TRACEBACK' if self.traceback else ''}; rag index rc={self.index_rc} "
                f"\"{self.index_said[:110]}\"; {lost}")


def rag(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True,
                          encoding="utf-8", env=env, cwd=ROOT, timeout=900)


def run_case(name: str, template: Path, work: Path, question: str, env: dict[str, str]) -> Outcome:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(template, work)
    corpus, index = work / "corpus", work / "index"
    CASES[name](index)
    where = ["--corpus", str(corpus), "--index", str(index)]
    asked = rag("retrieve", question, "--json", "--k", "1", *where, env=env)
    if asked.returncode == 0:
        warned = "WARNING" in asked.stderr
        served = "answered, with a warning on stderr" if warned else "answered, no warning"
    else:
        served = "refused: " + (asked.stderr.strip().splitlines() or ["?"])[-1][:80]
    built = rag("index", *where, env=env)
    manifest = IndexStore(index).read_manifest() if built.returncode == 0 else None
    return Outcome(name, asked.returncode, "Traceback" in asked.stderr + built.stderr, served, built.returncode,
                   (built.stdout or built.stderr).strip(), len(manifest.files) if manifest else 0,
                   len(list(corpus.rglob("*.*"))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(ROOT / "corpus"))
    parser.add_argument("--question", default="LoRA 的特点是什么？")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["HF_HUB_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory(prefix="index-faults-") as tmp:
        template = Path(tmp) / "template"
        notes = sorted(p for p in Path(args.corpus).rglob("*") if p.is_file())
        (template / "corpus").mkdir(parents=True)
        for note in notes[:-1]:
            shutil.copy2(note, template / "corpus" / note.name)
        where = ["--corpus", str(template / "corpus"), "--index", str(template / "index")]
        assert rag("index", *where, env=env).returncode == 0
        shutil.copy2(notes[-1], template / "corpus" / notes[-1].name)
        assert rag("index", *where, env=env).returncode == 0
        outcomes = []
        for name in CASES:
            outcome = run_case(name, template, Path(tmp) / "work", args.question, env)
            outcomes.append(outcome)
            print(outcome.line(), flush=True)
        held = sum(o.held for o in outcomes)
        print(f"\n{held}/{len(outcomes)} index-damage cases held")
        print(json.dumps([o.__dict__ for o in outcomes], ensure_ascii=False), file=sys.stderr)


if __name__ == "__main__":
    main()
