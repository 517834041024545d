"""Specification of the architecture's import rules, checked in a fresh interpreter.

Sizing runs on every calculator click and the gate reads untrusted bytes before any native parser does, so
neither may load an ML library; nothing in core/ may import streamlit (the engine is UI-free).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.import_scan import imported_modules

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("onnx", "onnxruntime", "torch", "transformers", "optimum", "streamlit")
PARTS = ["core.sizing", "core.gate", "core.errors", "core.units", "core.cli", "core.jobs", "core.compare"]


def _modules_loaded_by(module: str) -> list[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("part", PARTS)
def test_importing_a_part_of_core_loads_no_ml_library_and_no_streamlit(part):
    loaded = _modules_loaded_by(part)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == [], f"importing {part} loaded {heavy}"


def test_every_sizing_and_gate_module_imports_only_the_standard_library_and_core_at_top_level():
    stdlib = set(sys.stdlib_module_names)
    offenders = []
    for folder in ("sizing", "gate"):
        for path in sorted((ROOT / "core" / folder).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:  # top level only: a function-local import is the documented lazy path
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in stdlib and top != "core" and top != "__future__":
                        offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_nothing_in_core_imports_streamlit():
    offenders = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        if any(n.split(".")[0] == "streamlit" for n in imported_modules(path)):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_core_is_split_into_parts_each_listing_its_public_names():
    for part in ("sizing", "gate", "compare", "jobs", "cli"):
        init = ROOT / "core" / part / "__init__.py"
        assert init.is_file(), f"core/{part}/ is not a package"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"core/{part}/__init__.py says nothing about its part"
        assert any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
                   for n in tree.body), f"core/{part}/__init__.py lists no public names"
    flat = sorted(p.name for p in (ROOT / "core").glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "config_bounds.py", "errors.py", "units.py", "versions.py"]
