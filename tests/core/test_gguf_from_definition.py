"""GGUF files of models read from their own definition (hybrids, SSMs, MTP layers, multimodal), sized as llama.cpp
writes them: the calculator's weights for a GGUF type are llama.cpp's file.

The truth is llama.cpp itself (tag b11434): its converter over the model's real shapes and `llama-quantize
--dry-run`, recorded by `make truth` (bench/truth_llamacpp.py) in tests/core/data/llamacpp_truth/<model>.json
("quant_size_mib" is llama-quantize's own "quant size" line). The engine path under test is the one the page and
`python -m core size --config` use: sizing.model_from_config -> sizing.estimate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import sizing
from core.sizing import gguf, gguf_inventory
from core.sizing.architecture import architecture_from_config, tensor_inventory

ROOT = Path(__file__).resolve().parents[2]
TRUTH = Path(__file__).parent / "data" / "llamacpp_truth"
REFERENCE = Path(__file__).parent / "data" / "reference_configs"
# The references the hand-written rules do not describe: read from the model's own definition.
FROM_DEFINITION = ("falcon-mamba-7b", "glm-4.5-air", "granite-4.0-h-small", "jamba-1.5-mini", "lfm2-1.2b",
                   "mamba-2.8b", "mamba-codestral-7b", "qwen3-next-80b-a3b")
MIB = 2**20


def _record(name: str) -> dict:
    return json.loads((TRUTH / f"{name}.json").read_text())


def _cases():
    return [pytest.param(name, ftype, id=f"{name}-{ftype}") for name in FROM_DEFINITION
            for ftype in _record(name)["quantize"]]


def _file_data_bytes(model: sizing.ModelSpec, ftype: str) -> int:
    """What the calculator shows for the GGUF type, less its header estimate (llama-quantize counts tensor data)."""
    weights = sizing.estimate(model, "GGUF-" + ftype if ftype in ("F16", "BF16", "F32") else ftype).weights_bytes
    return weights - gguf.header_bytes(model.architecture)


@pytest.mark.parametrize(("name", "ftype"), _cases())
def test_a_hybrid_ssm_or_mtp_model_gguf_file_is_sized_as_llama_cpp_writes_it(name, ftype):
    rec = _record(name)
    model = sizing.model_from_config(rec["config"], name)
    assert model.architecture.inventory_key, "read from the model's own definition"
    want = rec["quantize"][ftype]["quant_size_mib"]
    assert _file_data_bytes(model, ftype) / MIB == pytest.approx(want, abs=0.01)


def test_a_granite_4_0_h_small_q8_0_file_is_sized_as_llama_cpp_writes_it():
    rec = _record("granite-4.0-h-small")
    model = sizing.model_from_config(rec["config"], "granite-4.0-h-small")
    est = sizing.estimate(model, "Q8_0")
    truth = {n: t for n, _shape, t in rec["quantize"]["Q8_0"]["tensors"]}
    mine = {p.name: p.ggml_type for p in gguf.plan(model.architecture, "Q8_0")}
    assert mine == truth  # every tensor, llama.cpp's name and type (SSM conv1d, A, D, norms in F32)
    assert (est.weights_bytes - gguf.header_bytes(model.architecture)) / MIB == pytest.approx(
        rec["quantize"]["Q8_0"]["quant_size_mib"], abs=0.01)
    assert "llama-quantize (b11434)" in " ".join(est.notes)


def test_glm_4_5_air_gguf_files_carry_its_dense_first_layer_and_mtp_layer_while_its_parameters_do_not():
    rec = _record("glm-4.5-air")
    model = sizing.model_from_config(rec["config"], "glm-4.5-air")
    names = {p.name: p for p in gguf.plan(model.architecture, "Q4_K_M")}
    assert "blk.0.ffn_down.weight" in names and "blk.0.ffn_down_exps.weight" not in names  # dense first layer
    for mtp in ("blk.46.nextn.eh_proj.weight", "blk.46.nextn.embed_tokens.weight",
                "blk.46.nextn.shared_head_head.weight", "blk.46.ffn_down_exps.weight"):
        assert mtp in names, mtp
    # GLM-4.5-Air model card: 106B total, MTP layer not counted (tests/core/data/reference_configs/MANIFEST.json)
    assert model.parameters == 106_852_245_504
    est = sizing.estimate(model, "Q4_K_M")
    assert "1 MTP layer included" in " ".join(est.notes)
    assert any("GGUF sizes include them" in w for w in model.warnings)


def _reference_model(name: str) -> sizing.ModelSpec:
    return sizing.model_from_config(json.loads((REFERENCE / f"{name}.json").read_text()), name)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "text_type"), [("qwen2.5-vl-7b", "qwen2"), ("gemma-3-4b-it", "gemma3_text"),
                                                 ("llava-1.5-7b", "llama")])
def test_a_multimodal_model_language_file_equals_its_text_model_file_and_its_tower_is_the_separate_mmproj_file(
        name, text_type):
    """The language model inside a multimodal wrapper is written like the text model of the same shape, which the
    hand-written rules size exactly (published files, tests/core/test_sizing_published.py); the tower is not in it."""
    mm = _reference_model(name)
    cfg = json.loads((REFERENCE / f"{name}.json").read_text())
    text = {k: v for k, v in (cfg.get("text_config") or cfg).items() if k not in ("vision_config", "architectures")}
    text.setdefault("tie_word_embeddings", cfg.get("tie_word_embeddings", text.get("tie_word_embeddings")))
    text_arch = architecture_from_config({**text, "model_type": text_type})
    assert not text_arch.inventory_key  # the hand-written path
    for ftype in ("Q8_0", "Q4_K_M", "Q6_K"):
        mine = sorted((p.name, p.ggml_type, p.bytes) for p in gguf.plan(mm.architecture, ftype))
        assert mine == sorted((p.name, p.ggml_type, p.bytes) for p in gguf.plan(text_arch, ftype)), ftype
    tower = [t for t in tensor_inventory(mm.architecture) if t.role == "tower"]
    mmproj = gguf_inventory.layout(mm.architecture).mmproj_bytes
    assert 2 * sum(t.numel for t in tower) <= mmproj <= 2.05 * sum(t.numel for t in tower)  # F16, a few F32
    est = sizing.estimate(mm, "Q4_K_M")
    assert est.weights_bytes == gguf.file_bytes(mm.architecture, "Q4_K_M") + mmproj
    assert "separate F16 mmproj file" in " ".join(est.notes)


def test_a_definition_llama_cpp_has_no_converter_for_says_its_gguf_sizes_are_an_approximation():
    model = _reference_model("whisper-tiny")
    notes = " ".join(sizing.estimate(model, "Q8_0").notes)
    assert "no GGUF architecture" in notes and "'whisper'" in notes and "approximation" in notes


def test_the_cli_and_the_engine_give_the_same_gguf_bytes_for_a_config(tmp_path):
    """`python -m core size --config` and the page both call the engine; the CLI's JSON is llama.cpp's file too."""
    rec = _record("lfm2-1.2b")
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(rec["config"]))
    out = subprocess.run([sys.executable, "-m", "core", "size", "--config", str(cfg_path), "--precision", "Q4_K_M,Q8_0",
                          "--format", "json"], capture_output=True, text=True, cwd=ROOT, timeout=600, check=True)
    shown = {e["precision"]: e["weights_bytes"] for e in json.loads(out.stdout)["estimates"]}
    model = sizing.model_from_config(rec["config"], "config.json")
    assert shown == {p: sizing.estimate(model, p).weights_bytes for p in ("Q4_K_M", "Q8_0")}
    for p in ("Q4_K_M", "Q8_0"):
        assert (shown[p] - gguf.header_bytes(model.architecture)) / MIB == pytest.approx(
            rec["quantize"][p]["quant_size_mib"], abs=0.01)


def test_a_later_click_reuses_the_gguf_mapping_of_the_same_config():
    """The converter naming runs once per config (hash) and the quantize rules once per type: later clicks look up."""
    rec = _record("jamba-1.5-mini")
    first = sizing.model_from_config(rec["config"], "a").architecture
    again = sizing.model_from_config(json.loads(json.dumps(rec["config"])), "b").architecture
    assert gguf_inventory.layout(first) is gguf_inventory.layout(again)
    assert gguf_inventory.typed_tensors(first, "Q4_K_M", False) is gguf_inventory.typed_tensors(again, "Q4_K_M", False)
