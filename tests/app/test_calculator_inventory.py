"""The calculator page on architectures read from the model's own definition (hybrids, SSMs, towers, refusals)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.sizing import meta_inventory
from tests.app.test_calculator_page import shown_all  # pages escape echoed Markdown

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "calculator.py")
DATA = Path(__file__).resolve().parents[1] / "core" / "data" / "reference_configs"


def _link(name: str) -> str:
    cfg = json.loads((DATA / f"{name}.json").read_text())
    return base64.urlsafe_b64encode(json.dumps(cfg).encode()).decode().rstrip("=")


@pytest.fixture()
def built(tmp_path, monkeypatch):
    """Inventories built once into this test's cache folder, as the app's first click would have left them."""
    monkeypatch.setenv(meta_inventory.DISK_CACHE_ENV, str(tmp_path))
    meta_inventory.clear_memory_cache()

    def build(name: str) -> None:
        meta_inventory.build_inventory(json.loads((DATA / f"{name}.json").read_text()), isolate=False)

    yield build
    meta_inventory.clear_memory_cache()


def _page(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def _memory_table(at: AppTest):
    frames = [t.value.reset_index() for t in at.table] + [d.value for d in at.dataframe]
    return next(f for f in frames if "Total GiB" in f.columns)


def test_a_mamba_config_shows_its_recurrent_state_as_its_own_line_and_no_kv_cache(built):
    built("mamba-2.8b")
    at = _page(src="config", cfg=_link("mamba-2.8b"), prec=["bf16"], ctx="8192")
    assert not at.exception and not at.error
    df = _memory_table(at)
    assert df["Recurrent state GB"].tolist()[0] == pytest.approx(24_903_680 / 1e9, abs=0.006)
    assert df["KV cache GB"].tolist()[0] == 0
    captions = " ".join(shown_all(c.value for c in at.caption))
    assert "64 ssm" in captions and "recurrent (SSM/conv) state" in captions


def test_a_multimodal_config_shows_the_tower_apart_and_the_cost_of_one_image(built):
    built("llava-1.5-7b")
    at = _page(src="config", cfg=_link("llava-1.5-7b"), prec=["fp16"], ctx="4096")
    assert not at.exception and not at.error
    captions = " ".join(shown_all(c.value for c in at.caption))
    assert "vision/audio tower 324,487,168" in captions and "576 tokens" in captions


def test_an_architecture_nobody_describes_is_refused_in_one_line_naming_it():
    at = _page(src="config", cfg=_link("nemotron-nano-9b-v2"), prec=["fp16"], ctx="0")
    assert not at.exception
    # a bad link value is a warning naming why; pages escape Markdown in echoed text (pages/text.py)
    errors = re.sub(r"\\(.)", r"\1", " ".join(e.value for e in [*at.error, *at.warning]))
    assert "nemotron_h" in errors and "parameter count" in errors


def test_a_granite_4_0_h_small_q8_0_file_on_the_page_is_the_size_llama_cpp_writes_and_the_cli_shows(built, tmp_path):
    """Page, CLI and llama.cpp agree: llama-quantize b11434's Q8_0 of granite-4.0-h-small (recorded by `make truth`,
    tests/core/data/llamacpp_truth/granite-4.0-h-small.json) plus the header estimate is the page's Weights GB."""
    import subprocess
    import sys

    from core.sizing import gguf
    from core.sizing.architecture import architecture_from_config

    built("granite-4.0-h-small")
    at = _page(src="config", cfg=_link("granite-4.0-h-small"), prec=["Q8_0"], ctx="4096")
    assert not at.exception and not at.error
    shown_gb = _memory_table(at)["Weights GB"].tolist()[0]
    cfg_path = DATA / "granite-4.0-h-small.json"
    out = subprocess.run([sys.executable, "-m", "core", "size", "--config", str(cfg_path), "--precision", "Q8_0",
                          "--format", "json"], capture_output=True, text=True, timeout=600, check=True,
                         cwd=Path(PAGE).parents[1])
    cli_bytes = json.loads(out.stdout)["estimates"][0]["weights_bytes"]
    assert shown_gb == pytest.approx(cli_bytes / 1e9, abs=1e-9)
    truth = json.loads((DATA.parent / "llamacpp_truth" / "granite-4.0-h-small.json").read_text())
    header = gguf.header_bytes(architecture_from_config(json.loads(cfg_path.read_text())))
    assert (cli_bytes - header) / 2**20 == pytest.approx(truth["quantize"]["Q8_0"]["quant_size_mib"], abs=0.01)
    captions = " ".join(shown_all(c.value for c in at.caption))
    assert "llama-quantize (b11434)" in captions
