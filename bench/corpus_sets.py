"""The command line shared by the benches that run over (notes folder, index) pairs: one
markdown table row per ``--set CORPUS INDEX``."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


def main_over_sets(doc: str, header: list[str], run_set: Callable[[Path, Path], dict],
                   row: Callable[[str, dict], list[str]]) -> int:
    ap = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    ap.add_argument("--set", nargs=2, action="append", metavar=("CORPUS", "INDEX"), required=True)
    args = ap.parse_args()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for corpus, index in args.set:
        print("| " + " | ".join(row(corpus, run_set(Path(corpus), Path(index)))) + " |", flush=True)
    return 0
