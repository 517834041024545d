"""Every query key the pages read, found in their source (so a key added tomorrow is walked by the link tests).

A page reads its link through `st.query_params` (or `qp`/`query`, the names the pages give it): `.get("k")`,
`.get_all("k")`, `qp["k"]`, `"k" in qp`; the calculator also declares its keys as the dict `defaults()` returns and
its guessed aliases (`ALIASES`), the compare page as `URL_KEYS`/`URL_DEFAULTS`. All of those string literals count.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE_FILES = ("app.py", "pages/*.py")
_RECEIVERS = {"qp", "query", "query_params"}
_DECLARED = {"ALIASES", "URL_KEYS", "URL_DEFAULTS"}


def _is_receiver(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id in _RECEIVERS) or (
        isinstance(node, ast.Attribute) and node.attr in _RECEIVERS)


def _strings(node: ast.AST | None) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for elt in node.elts for s in _strings(elt)]
    if isinstance(node, ast.Dict):
        return [s for key in node.keys for s in _strings(key)]
    return []


def keys_read_by(source: str) -> set[str]:
    keys: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args \
                and node.func.attr in ("get", "get_all") and _is_receiver(node.func.value):
            keys.update(_strings(node.args[0]))
        elif isinstance(node, ast.Subscript) and _is_receiver(node.value):
            keys.update(_strings(node.slice))
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) \
                and any(_is_receiver(c) for c in node.comparators):
            keys.update(_strings(node.left))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in _DECLARED for t in node.targets):
            keys.update(_strings(node.value))
        elif isinstance(node, ast.FunctionDef) and node.name == "defaults":
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return):
                    keys.update(_strings(ret.value))
    return keys


def query_keys() -> list[str]:
    """Every key any page reads from its link, sorted."""
    files = [REPO / "app.py", *sorted((REPO / "pages").glob("*.py"))]
    return sorted(set().union(*(keys_read_by(f.read_text(encoding="utf-8")) for f in files)))


# Link values that would show another host's link or image if any reached Markdown live.
PAYLOADS = [
    "x` ![t](https://evil.example/pixel.png) `",
    "x` [Session expired: sign in](https://evil.example/login) `",
    "https://evil.example/bare www.evil.example phish@evil.example",
    "<img src=https://evil.example/i.png><a href=https://evil.example/a>a</a> [x][1]\n\n[1]: https://evil.example/ref",
    "&#104;ttps://evil.example/e ![x](https:evil.example?img.png) evil/www.evil.example <https://evil.example/auto>",
]
HOSTILE_KEY = "x` ![k](https://evil.example/key.png) [k](https://evil.example/key) www.evil.example `"


def hostile_query(keys: list[str], shift: int) -> list[tuple[str, str]]:
    """Every key with a payload (rotated by `shift`, so over len(PAYLOADS) rounds each key gets each payload), plus
    a key that is itself a payload."""
    query = [(key, PAYLOADS[(i + shift) % len(PAYLOADS)]) for i, key in enumerate(keys)]
    return query + [(HOSTILE_KEY, PAYLOADS[shift % len(PAYLOADS)])]
