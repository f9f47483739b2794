"""The shape of the code: no import cycles in rag/ and ui/; imports only go down the stages
(core → reading → index → search → answer → the notes folder and the CLI on top → ui), and the
library never imports the web UI (only the command line, on top, starts it); no module over
500 lines and no class over 250, so each can be read in one sitting.

Imports are read with ``ast`` from every module under rag/ (absolute and relative, at the
top or inside functions): a cycle means neither side can be read, tested or replaced alone.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The rag/ui modules ``path`` imports (a package's ``from . import x`` counts as x)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    paths = [p for folder in ("rag", "ui") for p in (ROOT / folder).rglob("*.py")]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports(p, modules) for p in paths}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_library_has_no_import_cycles():
    assert cycles(graph()) == []


# The command line sits on top of everything: `rag serve` starts the web UI.
TOP = {"rag.cli"}


def test_the_library_never_imports_the_web_ui():
    upward = {m: sorted(t for t in targets if t.split(".")[0] == "ui")
              for m, targets in graph().items() if m.split(".")[0] == "rag" and m not in TOP}
    assert {m: t for m, t in upward.items() if t} == {}


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# The stages in pipeline order; a module may import its own stage and those before it.
STAGES = ("rag.core", "rag.reading", "rag.index", "rag.search", "rag.answer", "rag", "ui")


def stage(module: str) -> int:
    """The position of ``module``'s stage: the longest prefix in STAGES that names it."""
    matches = [i for i, s in enumerate(STAGES) if module == s or module.startswith(s + ".")]
    return max(matches, key=lambda i: len(STAGES[i]))


def upward_imports(edges: dict[str, set[str]]) -> dict[str, list[str]]:
    found = {m: sorted(t for t in targets if stage(t) > stage(m)) for m, targets in edges.items()}
    return {m: t for m, t in found.items() if t and m not in TOP}


def test_imports_only_go_down_the_stages():
    assert upward_imports(graph()) == {}


def test_the_stage_check_finds_an_upward_import():
    edges = {"rag.reading.chunking": {"rag.core.text", "rag.search.retrieval"}, "rag.search.retrieval": {"rag.index.bm25"}}
    assert upward_imports(edges) == {"rag.reading.chunking": ["rag.search.retrieval"]}


MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250


def test_no_module_or_class_is_too_big_to_read():
    big = []
    for path in [p for folder in ("rag", "ui") for p in (ROOT / folder).rglob("*.py")]:
        source = path.read_text(encoding="utf-8")
        if source.count("\n") > MAX_MODULE_LINES:
            big.append(f"{module_name(path)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                big.append(f"{module_name(path)}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert big == []
