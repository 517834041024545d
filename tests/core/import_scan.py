"""The modules a Python file imports, read with ast (nothing is imported): shared by the import-rule tests."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_modules(path: Path, *, absolute_only: bool = False) -> list[str]:
    """Every `import x` / `from x import y` anywhere in the file (inside functions too), as module names."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and (node.level == 0 or not absolute_only):
            names.append(node.module)
    return names
