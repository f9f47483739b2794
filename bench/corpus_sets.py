"""The command line shared by the benches that run over (notes folder, index) pairs: one
markdown table row per ``--set CORPUS INDEX``."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


def main_over_sets(doc: str, header: list[str], run_set: Callable[..., dict],
                   row: Callable[[str, dict], list[str]], questions: Path | None = None) -> int:
    """``questions``: the default of ``--questions`` (hand-written questions), passed to
    ``run_set`` as its third argument; None: the bench has no such option."""
    ap = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    ap.add_argument("--set", nargs=2, action="append", metavar=("CORPUS", "INDEX"), required=True)
    if questions is not None:
        ap.add_argument("--questions", type=Path, default=questions, help="hand-written questions")
    args = ap.parse_args()
    extra = (args.questions,) if questions is not None else ()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for corpus, index in args.set:
        print("| " + " | ".join(row(corpus, run_set(Path(corpus), Path(index), *extra))) + " |", flush=True)
    return 0
