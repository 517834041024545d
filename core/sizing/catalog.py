"""The bundled model and hardware catalogs (core/data/models.json, core/data/hardware.json).

Read once per process (lru_cache): the page reruns on every click and must not re-read files.
Lookups are case-insensitive on id or name, and a miss lists the closest names so a typo in
`--model` gets a useful answer.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import QuantLensError
from core.sizing.hardware import Hardware, hardware_from_dict

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class CatalogModel:
    """A model shipped with the app: its real config.json fields plus a display name."""

    id: str
    name: str
    family: str
    kind: str
    config_json: str = field(repr=False)  # canonical JSON text, so the entry stays hashable
    notes: str = ""

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)


def _read_json_list(path: Path, what: str) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QuantLensError("catalog_missing", f"The {what} catalog {path.name} is missing from {path.parent}.") from None
    except ValueError as exc:
        raise QuantLensError("catalog_invalid", f"The {what} catalog {path.name} is not valid JSON: {exc}.") from None
    if not isinstance(data, list):
        raise QuantLensError("catalog_invalid", f"The {what} catalog {path.name} must be a JSON list.")
    return data


def _model_from_dict(d: Any) -> CatalogModel:
    if not isinstance(d, dict) or not isinstance(d.get("id"), str) or not isinstance(d.get("config"), dict):
        raise QuantLensError("catalog_invalid", f"A model catalog entry needs an 'id' and a 'config' object: {str(d)[:80]}")
    return CatalogModel(
        id=d["id"],
        name=str(d.get("name") or d["id"]),
        family=str(d.get("family") or d["config"].get("model_type") or ""),
        kind=str(d.get("kind") or ""),
        config_json=json.dumps(d["config"], sort_keys=True),
        notes=str(d.get("notes") or ""),
    )


@lru_cache(maxsize=8)
def load_models(path: Path | None = None) -> tuple[CatalogModel, ...]:
    """All catalog models, in file order."""
    return tuple(_model_from_dict(d) for d in _read_json_list(path or DATA_DIR / "models.json", "model"))


@lru_cache(maxsize=8)
def load_hardware(path: Path | None = None) -> tuple[Hardware, ...]:
    """All catalog hardware (GPUs, Apple Silicon, CPU RAM), in file order."""
    return tuple(hardware_from_dict(d) for d in _read_json_list(path or DATA_DIR / "hardware.json", "hardware"))


def _find(query: str, items: tuple[Any, ...], what: str) -> Any:
    if not isinstance(query, str) or not query.strip():
        raise QuantLensError(f"unknown_{what}", f"Give a {what} name or id.")
    key = query.strip().lower()
    for item in items:
        if key in (item.id.lower(), item.name.lower()):
            return item
    # Also accept the part after the organisation ("Llama-3.1-8B" for "meta-llama/Llama-3.1-8B").
    short = [item for item in items if item.id.lower().rsplit("/", 1)[-1] == key]
    if len(short) == 1:
        return short[0]
    names = {item.name.lower(): item.name for item in items} | {item.id.lower(): item.id for item in items}
    close = difflib.get_close_matches(key, list(names), n=4, cutoff=0.4)
    hint = f" Closest: {', '.join(names[c] for c in close)}." if close else ""
    raise QuantLensError(f"unknown_{what}", f"No {what} named {query.strip()[:60]!r} in the catalog.{hint}")


def find_model(query: str, models: tuple[CatalogModel, ...] | None = None) -> CatalogModel:
    """Catalog model by id or name, case-insensitive; the error lists close matches."""
    return _find(query, models if models is not None else load_models(), "model")


def find_hardware(query: str, hardware: tuple[Hardware, ...] | None = None) -> Hardware:
    """Catalog hardware by id or name, case-insensitive; the error lists close matches."""
    return _find(query, hardware if hardware is not None else load_hardware(), "hardware")
