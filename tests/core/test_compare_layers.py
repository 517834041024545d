"""Specification of core/compare's layout: folders in the order data flows, and no import that runs backwards.

core/compare/ reads as the path a comparison's data takes: common (what every stage shares) → inputs → prepare →
techniques → measure → judge, with the orchestration (pipeline, isolated_steps, report) on top. A module may import
its own stage, an earlier stage or common/, never a later one, and no two modules may import each other through any
chain (an import circle: export → media_tasks → feeds → prepare → export used to be one). Imports inside functions
count too: deferring an import hides a circle from Python, not from the reader. Only `if TYPE_CHECKING:` blocks are
left out, as they name types for the reader and never run.

bench/ measures the product, so it builds its models from core/ or bench/, never from tests/.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.core.import_scan import imported_modules

ROOT = Path(__file__).resolve().parents[2]
COMPARE = ROOT / "core" / "compare"
# Earlier stages first; "top" is the orchestration that may import every stage.
STAGES = ("common", "inputs", "prepare", "techniques", "measure", "judge", "top")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported_modules(tree: ast.AST, known: set[str]) -> set[str]:
    """Every module named by an import anywhere in the file (functions included), TYPE_CHECKING blocks left out."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking_block(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def compare_import_graph() -> dict[str, set[str]]:
    """core.compare module -> the core.compare modules it imports (packages count as their __init__)."""
    files = {_module_name(p): p for p in sorted(COMPARE.rglob("*.py"))}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        imported = _imported_modules(ast.parse(path.read_text(encoding="utf-8")), known)
        graph[name] = {m for m in imported if m in known and m != name and m != "core.compare"}
    return graph


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 or (len(parts) == 3 and parts[2] in STAGES) else "top"


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan), as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return groups


def test_compare_is_laid_out_as_the_stages_data_goes_through():
    folders = sorted(p.name for p in COMPARE.iterdir() if (p / "__init__.py").is_file())
    assert folders == sorted(s for s in STAGES if s != "top")
    for folder in folders:
        tree = ast.parse((COMPARE / folder / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"core/compare/{folder}/__init__.py does not say why it is a stage"
        assert any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
                   for n in tree.body), f"core/compare/{folder}/__init__.py lists no public names"
    top = sorted(p.name for p in COMPARE.glob("*.py"))
    assert top == ["__init__.py", "isolated_steps.py", "pipeline.py", "report.py"], "only orchestration stays on top"


def test_no_compare_module_imports_a_later_stage():
    order = {stage: i for i, stage in enumerate(STAGES)}
    backwards = [f"{module} ({stage_of(module)}) imports {target} ({stage_of(target)})"
                 for module, targets in sorted(compare_import_graph().items()) for target in sorted(targets)
                 if order[stage_of(target)] > order[stage_of(module)]]
    assert backwards == []


def test_compare_has_no_import_circle():
    assert import_cycles(compare_import_graph()) == []


def test_the_circle_check_finds_a_circle_when_there_is_one():
    graph = {"a.export": {"a.media_tasks"}, "a.media_tasks": {"a.feeds"}, "a.feeds": {"a.prepare"},
             "a.prepare": {"a.export"}, "a.pipeline": {"a.prepare"}}
    assert import_cycles(graph) == [["a.export", "a.feeds", "a.media_tasks", "a.prepare"]]
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x.y\ndef f():\n    import x.z\n")
    assert _imported_modules(tree, set()) == {"typing", "x.z"}


def test_every_compare_module_imports_ml_libraries_only_inside_the_functions_that_use_them():
    # The package import is checked in a fresh interpreter (test_import_rules); this holds it per module, so a
    # module the pipeline imports later (a stage's own file) cannot pull onnx or torch in at import either.
    heavy = {"onnx", "onnxruntime", "torch", "transformers", "optimum", "streamlit"}
    offenders = []
    for path in sorted(COMPARE.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            offenders += [f"{path.relative_to(ROOT)} imports {n}" for n in names if n.split(".")[0] in heavy]
    assert offenders == []


def test_nothing_in_bench_imports_from_tests():
    offenders = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        offenders += [f"{path.relative_to(ROOT)} imports {n}" for n in imported_modules(path)
                      if n.split(".")[0] == "tests"]
    assert offenders == []
