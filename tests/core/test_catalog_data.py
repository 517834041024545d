"""Specification of the data files the sizing engine ships with: core/sizing/data/models.json and hardware.json.

These tests read only the JSON files (and, when present, ../shared/reference/configs) with the standard library.
They hold the catalog to the facts a user would check against: each model's config.json fields must produce the
parameter count its publisher states, counted here by a small independent counter written from the architectures
(not by the engine under test), and each device's memory and bandwidth must be physically plausible.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "core" / "sizing" / "data"
REFERENCE_CONFIGS = ROOT.parent / "shared" / "reference" / "configs"

GiB = 2**30
MiB = 2**20

MODEL_KINDS = {"dense", "moe", "mla-moe", "encoder"}
REQUIRED_FAMILIES = {"llama", "mistral", "mixtral", "qwen", "gemma", "phi", "deepseek", "gpt2"}
HARDWARE_VENDORS = {"nvidia", "amd", "apple", "intel", "generic"}
HARDWARE_KINDS = {"gpu", "apple", "cpu"}

# The six shared reference configs and the catalog entry each must appear in, field for field.
REFERENCE_TO_MODEL = {
    "llama-3.1-8b.json": "meta-llama/Llama-3.1-8B",
    "mistral-7b-v0.1.json": "mistralai/Mistral-7B-v0.1",
    "mixtral-8x7b.json": "mistralai/Mixtral-8x7B-v0.1",
    "phi-3-mini-4k.json": "microsoft/Phi-3-mini-4k-instruct",
    "qwen2.5-0.5b.json": "Qwen/Qwen2.5-0.5B",
    "gpt2.json": "openai-community/gpt2",
}

# Parameter counts stated in ../shared/reference/README.md (copied here so the check runs without ../shared).
REFERENCE_PARAMETERS = {
    "meta-llama/Llama-3.1-8B": 8_030_261_248,
    "mistralai/Mistral-7B-v0.1": 7_241_732_096,
    "mistralai/Mixtral-8x7B-v0.1": 46_702_792_704,
    "microsoft/Phi-3-mini-4k-instruct": 3_821_079_552,
    "Qwen/Qwen2.5-0.5B": 494_032_768,
    "openai-community/gpt2": 124_439_808,
}


@cache
def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def models() -> list[dict[str, Any]]:
    return _load("models.json")


def hardware() -> list[dict[str, Any]]:
    return _load("hardware.json")


def model(model_id: str) -> dict[str, Any]:
    return next(m for m in models() if m["id"] == model_id)


def device(device_id: str) -> dict[str, Any]:
    return next(d for d in hardware() if d["id"] == device_id)


MODEL_IDS = [m["id"] for m in models()]


# --------------------------------------------------------------------------------------------------------------
# An independent parameter counter, written from the transformers module definitions of each architecture.
# It returns (total, parameters inside routed experts) so MoE active counts can be derived.
# --------------------------------------------------------------------------------------------------------------


def _head_dim(c: dict[str, Any]) -> int:
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def _embeddings(c: dict[str, Any]) -> int:
    h, v = c["hidden_size"], c["vocab_size"]
    return v * h * (1 if c.get("tie_word_embeddings", False) else 2) + h  # + final norm


def _gqa_attention(c: dict[str, Any], *, qkv_bias: bool, o_bias: bool) -> int:
    h, heads, kv, hd = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], _head_dim(c)
    weights = h * heads * hd + 2 * h * kv * hd + heads * hd * h
    biases = (heads * hd + 2 * kv * hd if qkv_bias else 0) + (h if o_bias else 0)
    return weights + biases


def _gated_mlp(h: int, inner: int) -> int:
    return 3 * h * inner  # gate, up, down


def _count_llama_like(c: dict[str, Any]) -> tuple[int, int]:
    """Llama, Mistral, Qwen2/3, Gemma 1/2/3, Phi-3, OLMo 2: pre-norm blocks, gated MLP, GQA."""
    mt, h, hd = c["model_type"], c["hidden_size"], _head_dim(c)
    bias = bool(c.get("attention_bias", False))
    if mt == "qwen2":
        attn = _gqa_attention(c, qkv_bias=True, o_bias=False)
    else:
        attn = _gqa_attention(c, qkv_bias=bias, o_bias=bias)
    mlp = _gated_mlp(h, c["intermediate_size"]) + (2 * c["intermediate_size"] + h if c.get("mlp_bias", False) else 0)
    norms = {"gemma2": 4 * h, "gemma3_text": 4 * h}.get(mt, 2 * h)
    if mt in ("qwen3", "gemma3_text"):
        norms += 2 * hd  # per-head q_norm and k_norm
    if mt == "olmo2":
        norms += (c["num_attention_heads"] + c["num_key_value_heads"]) * hd  # q_norm/k_norm over the projections
    return c["num_hidden_layers"] * (attn + mlp + norms) + _embeddings(c), 0


def _count_gpt2(c: dict[str, Any]) -> tuple[int, int]:
    n, v, p = c["n_embd"], c["vocab_size"], c["n_positions"]
    inner = c.get("n_inner") or 4 * n
    block = 2 * n + (n * 3 * n + 3 * n) + (n * n + n) + 2 * n + (n * inner + inner) + (inner * n + n)
    return v * n + p * n + c["n_layer"] * block + 2 * n, 0


def _count_phi(c: dict[str, Any]) -> tuple[int, int]:
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    attn = _gqa_attention(c, qkv_bias=True, o_bias=True)
    block = 2 * h + attn + (h * i + i) + (i * h + h)
    return v * h + c["num_hidden_layers"] * block + 2 * h + (v * h + v), 0


def _count_falcon(c: dict[str, Any]) -> tuple[int, int]:
    assert c["multi_query"] and c["parallel_attn"] and not c["new_decoder_architecture"] and not c["bias"]
    h, v = c["hidden_size"], c["vocab_size"]
    hd = h // c["num_attention_heads"]
    block = 2 * h + h * (h + 2 * hd) + h * h + 2 * (h * 4 * h)
    lm_head = 0 if c.get("tie_word_embeddings", True) else v * h
    return v * h + c["num_hidden_layers"] * block + 2 * h + lm_head, 0


def _count_bert(c: dict[str, Any]) -> tuple[int, int]:
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    embeddings = v * h + c["max_position_embeddings"] * h + c["type_vocab_size"] * h + 2 * h
    block = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
    total = embeddings + c["num_hidden_layers"] * block
    if c["architectures"] == ["BertModel"]:
        return total + h * h + h, 0  # pooler
    assert c["architectures"] == ["BertForMaskedLM"]
    return total + (h * h + h) + 2 * h + v, 0  # MLM transform + LayerNorm + decoder bias (decoder weight tied)


def _count_mixtral(c: dict[str, Any]) -> tuple[int, int]:
    h, e = c["hidden_size"], c["num_local_experts"]
    experts = e * _gated_mlp(h, c["intermediate_size"])
    block = _gqa_attention(c, qkv_bias=False, o_bias=False) + h * e + experts + 2 * h
    return c["num_hidden_layers"] * block + _embeddings(c), c["num_hidden_layers"] * experts


def _count_qwen_moe(c: dict[str, Any]) -> tuple[int, int]:
    h, e, layers = c["hidden_size"], c["num_experts"], c["num_hidden_layers"]
    assert c.get("decoder_sparse_step", 1) == 1 and not c.get("mlp_only_layers")
    experts = e * _gated_mlp(h, c["moe_intermediate_size"])
    if c["model_type"] == "qwen2_moe":
        attn = _gqa_attention(c, qkv_bias=True, o_bias=False)
        shared = _gated_mlp(h, c["shared_expert_intermediate_size"]) + h  # + sigmoid gate
        norms = 2 * h
    else:
        attn = _gqa_attention(c, qkv_bias=False, o_bias=False)
        shared = 0
        norms = 2 * h + 2 * _head_dim(c)
    block = attn + h * e + experts + shared + norms
    return layers * block + _embeddings(c), layers * experts


def _count_deepseek(c: dict[str, Any]) -> tuple[int, int]:
    h, heads = c["hidden_size"], c["num_attention_heads"]
    nope, rope, vd = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    q_rank, kv_rank = c["q_lora_rank"], c["kv_lora_rank"]
    q = h * heads * (nope + rope) if q_rank is None else h * q_rank + q_rank + q_rank * heads * (nope + rope)
    kv = h * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + vd)
    attn = q + kv + heads * vd * h
    e, layers, dense_layers = c["n_routed_experts"], c["num_hidden_layers"], c["first_k_dense_replace"]
    assert c.get("moe_layer_freq", 1) == 1
    experts = e * _gated_mlp(h, c["moe_intermediate_size"])
    # V3's checkpoint also stores a 256-value e_score_correction_bias per MoE layer; transformers keeps it as a
    # buffer, so the meta-device convention these counts follow leaves it out (14,848 values in all).
    router = e * h
    shared = _gated_mlp(h, c["moe_intermediate_size"] * c["n_shared_experts"])
    moe_layers = layers - dense_layers
    total = (
        layers * (attn + 2 * h)
        + dense_layers * _gated_mlp(h, c["intermediate_size"])
        + moe_layers * (router + experts + shared)
        + _embeddings(c)
    )
    return total, moe_layers * experts


def _count_gpt_oss(c: dict[str, Any]) -> tuple[int, int]:
    h, i, e = c["hidden_size"], c["intermediate_size"], c["num_local_experts"]
    attn = _gqa_attention(c, qkv_bias=True, o_bias=True) + c["num_attention_heads"]  # + attention sinks
    experts = e * (h * 2 * i + 2 * i + i * h + h)
    block = attn + (h * e + e) + experts + 2 * h
    return c["num_hidden_layers"] * block + _embeddings(c), c["num_hidden_layers"] * experts


COUNTERS: dict[str, Callable[[dict[str, Any]], tuple[int, int]]] = {
    **dict.fromkeys(
        ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2"], _count_llama_like
    ),
    "gpt2": _count_gpt2,
    "phi": _count_phi,
    "falcon": _count_falcon,
    "bert": _count_bert,
    "mixtral": _count_mixtral,
    "qwen2_moe": _count_qwen_moe,
    "qwen3_moe": _count_qwen_moe,
    "deepseek_v2": _count_deepseek,
    "deepseek_v3": _count_deepseek,
    "gpt_oss": _count_gpt_oss,
}


def experts_per_token(c: dict[str, Any]) -> tuple[int, int] | None:
    n = c.get("num_local_experts") or c.get("num_experts") or c.get("n_routed_experts")
    return (n, c["num_experts_per_tok"]) if n else None


def independent_count(c: dict[str, Any]) -> tuple[int, int]:
    """(total parameters, active parameters per token): active = total minus the unrouted share of the experts."""
    total, expert_params = COUNTERS[c["model_type"]](c)
    routing = experts_per_token(c)
    if routing is None:
        return total, total
    n, k = routing
    return total, total - expert_params + expert_params * k // n


# ------------------------------------------------------------------ models.json: shape of the file


def test_models_json_is_a_list_of_entries_with_every_field_the_engine_reads():
    assert isinstance(models(), list)
    for m in models():
        assert isinstance(m["id"], str) and m["id"], m
        assert isinstance(m["name"], str) and m["name"], m["id"]
        assert isinstance(m["family"], str) and m["family"], m["id"]
        assert m["kind"] in MODEL_KINDS, m["id"]
        assert m["published_parameters"] is None or (
            isinstance(m["published_parameters"], int) and m["published_parameters"] > 0
        ), m["id"]
        assert isinstance(m["counted_parameters"], int) and m["counted_parameters"] > 0, m["id"]
        assert isinstance(m["notes"], str) and len(m["notes"]) >= 20, m["id"]
        assert isinstance(m["features"], list) and all(isinstance(f, str) for f in m["features"]), m["id"]
        config = m["config"]
        assert isinstance(config, dict), m["id"]
        assert isinstance(config["model_type"], str) and config["model_type"] in COUNTERS, m["id"]
        assert isinstance(config["architectures"], list) and len(config["architectures"]) == 1, m["id"]
        assert isinstance(config["vocab_size"], int) and config["vocab_size"] > 0, m["id"]
        assert "torch_dtype" in config or config["model_type"] == "gpt2", m["id"]


def test_model_ids_are_unique_hub_style_names():
    assert len(MODEL_IDS) == len(set(MODEL_IDS))
    for model_id in MODEL_IDS:
        owner, _, name = model_id.partition("/")
        assert owner and name and "/" not in name and " " not in model_id, model_id
    names = [m["name"] for m in models()]
    assert len(names) == len(set(names))


def test_catalog_has_at_least_35_models_from_every_required_family():
    assert len(models()) >= 35
    assert {m["family"] for m in models()} >= REQUIRED_FAMILIES


@pytest.mark.parametrize(
    "model_id",
    [
        "meta-llama/Llama-2-7b-hf",
        "meta-llama/Llama-2-13b-hf",
        "meta-llama/Llama-2-70b-hf",
        "meta-llama/Llama-3.1-8B",
        "meta-llama/Llama-3.1-70B",
        "meta-llama/Llama-3.1-405B",
        "meta-llama/Llama-3.2-1B",
        "meta-llama/Llama-3.2-3B",
        "mistralai/Mistral-7B-v0.1",
        "mistralai/Mistral-Nemo-Base-2407",
        "mistralai/Mixtral-8x7B-v0.1",
        "mistralai/Mixtral-8x22B-v0.1",
        "Qwen/Qwen2.5-0.5B",
        "Qwen/Qwen2.5-1.5B",
        "Qwen/Qwen2.5-7B",
        "Qwen/Qwen2.5-14B",
        "Qwen/Qwen2.5-32B",
        "Qwen/Qwen2.5-72B",
        "Qwen/Qwen3-8B",
        "Qwen/Qwen3-32B",
        "Qwen/Qwen3-30B-A3B",
        "Qwen/Qwen3-235B-A22B",
        "google/gemma-2b",
        "google/gemma-7b",
        "google/gemma-2-2b",
        "google/gemma-2-9b",
        "google/gemma-2-27b",
        "google/gemma-3-1b-pt",
        "google/gemma-3-4b-pt",
        "google/gemma-3-12b-pt",
        "google/gemma-3-27b-pt",
        "microsoft/phi-2",
        "microsoft/Phi-3-mini-4k-instruct",
        "microsoft/Phi-3-medium-4k-instruct",
        "microsoft/phi-4",
        "deepseek-ai/DeepSeek-V2-Lite",
        "deepseek-ai/DeepSeek-V3",
        "openai-community/gpt2",
        "openai-community/gpt2-xl",
        "sentence-transformers/all-MiniLM-L6-v2",
        "google-bert/bert-base-uncased",
    ],
)
def test_catalog_contains_the_models_users_ask_about(model_id):
    assert model_id in MODEL_IDS


def _is_gqa(c: dict[str, Any]) -> bool:
    kv = c.get("num_key_value_heads")
    return kv is not None and 1 < kv < c["num_attention_heads"]


def _slides(c: dict[str, Any]) -> bool:
    """A config whose attention really is windowed (Qwen2 carries a sliding_window it does not use)."""
    return bool(c.get("sliding_window")) and c.get("use_sliding_window", True) is not False


def test_catalog_covers_dense_gqa_moe_sliding_window_mla_and_encoder_architectures():
    configs = [m["config"] for m in models()]
    assert sum(_is_gqa(c) and experts_per_token(c) is None for c in configs) >= 10
    assert sum(experts_per_token(c) is not None for c in configs) >= 5
    assert sum(_slides(c) for c in configs) >= 5
    assert sum("layer_types" in c and len(set(c["layer_types"])) == 2 for c in configs) >= 5  # local/global mixes
    assert sum("kv_lora_rank" in c for c in configs) >= 2
    assert sum(c.get("num_key_value_heads") == 1 or c.get("multi_query") is True for c in configs) >= 2  # MQA
    assert sum(m["kind"] == "encoder" for m in models()) >= 2


def test_kind_follows_from_the_config():
    for m in models():
        c = m["config"]
        if c["model_type"] == "bert":
            expected = "encoder"
        elif "kv_lora_rank" in c:
            expected = "mla-moe"
        elif experts_per_token(c) is not None:
            expected = "moe"
        else:
            expected = "dense"
        assert m["kind"] == expected, m["id"]


def test_moe_entries_name_their_expert_counts_and_top_k():
    for m in models():
        if m["kind"] in ("moe", "mla-moe"):
            n, k = experts_per_token(m["config"])
            assert 1 <= k < n, m["id"]
            assert m["counted_active_parameters"] < m["counted_parameters"], m["id"]
        else:
            assert m["counted_active_parameters"] is None, m["id"]


def test_layer_types_list_one_entry_per_layer_and_match_the_sliding_pattern():
    for m in models():
        c = m["config"]
        if "layer_types" not in c:
            continue
        assert len(c["layer_types"]) == c["num_hidden_layers"], m["id"]
        assert set(c["layer_types"]) <= {"sliding_attention", "full_attention"}, m["id"]
        assert c["sliding_window"], m["id"]
        if "sliding_window_pattern" in c:
            pattern = c["sliding_window_pattern"]
            for i, kind in enumerate(c["layer_types"]):
                assert (kind == "full_attention") == ((i + 1) % pattern == 0), (m["id"], i)


def test_gemma_3_has_five_local_layers_per_global_layer():
    c = model("google/gemma-3-27b-pt")["config"]
    assert c["layer_types"][:6] == ["sliding_attention"] * 5 + ["full_attention"]
    assert c["layer_types"].count("full_attention") == 10  # layers 5, 11, ..., 59 of 62
    assert c["sliding_window"] == 1024


def test_gemma_2_9b_records_head_dim_256_not_hidden_over_heads():
    c = model("google/gemma-2-9b")["config"]
    assert c["hidden_size"] // c["num_attention_heads"] == 224
    assert c["head_dim"] == 256


def test_deepseek_v3_is_mla_with_three_dense_layers_before_the_experts():
    c = model("deepseek-ai/DeepSeek-V3")["config"]
    assert (c["q_lora_rank"], c["kv_lora_rank"], c["qk_rope_head_dim"]) == (1536, 512, 64)
    assert c["first_k_dense_replace"] == 3
    assert (c["n_routed_experts"], c["n_shared_experts"], c["num_experts_per_tok"]) == (256, 1, 8)


def test_config_defaults_added_name_keys_that_are_in_the_config():
    for m in models():
        added = m.get("config_defaults_added", [])
        assert isinstance(added, list)
        assert set(added) <= set(m["config"]), m["id"]


def test_reference_counts_from_the_shared_readme_are_the_published_counts():
    for model_id, parameters in REFERENCE_PARAMETERS.items():
        assert model(model_id)["published_parameters"] == parameters


@pytest.mark.parametrize("reference_file", sorted(REFERENCE_TO_MODEL))
def test_shared_reference_configs_are_included_field_for_field(reference_file):
    path = REFERENCE_CONFIGS / reference_file
    if not path.is_file():
        pytest.skip("../shared/reference/configs is not present (the project must work without it)")
    reference = json.loads(path.read_text(encoding="utf-8"))
    assert model(REFERENCE_TO_MODEL[reference_file])["config"] == reference


# ------------------------------------------------------------------ models.json: the numbers


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_independent_count_of_the_config_equals_the_recorded_count(model_id):
    m = model(model_id)
    total, active = independent_count(m["config"])
    assert total == m["counted_parameters"]
    if m["counted_active_parameters"] is not None:
        assert active == m["counted_active_parameters"]


@pytest.mark.parametrize("model_id", [m["id"] for m in models() if m["published_parameters"]])
def test_config_produces_the_parameter_count_its_publisher_states(model_id):
    m = model(model_id)
    total, _ = independent_count(m["config"])
    assert total == pytest.approx(m["published_parameters"], rel=0.01), m["published_parameters_source"]


def _fp16_kv_bytes_per_token(c: dict[str, Any]) -> int:
    """K and V for every layer of a plain (non-MLA, non-windowed) decoder at 2 bytes per value."""
    if c["model_type"] == "gpt2":
        return 2 * c["n_layer"] * c["n_embd"] * 2
    return 2 * c["num_hidden_layers"] * c["num_key_value_heads"] * _head_dim(c) * 2


@pytest.mark.parametrize(
    ("model_id", "bytes_per_token"),
    [
        ("meta-llama/Llama-3.1-8B", 131_072),
        ("microsoft/Phi-3-mini-4k-instruct", 393_216),
        ("Qwen/Qwen2.5-0.5B", 12_288),
        ("openai-community/gpt2", 36_864),
    ],
)
def test_configs_give_the_reference_kv_cache_bytes_per_token(model_id, bytes_per_token):
    assert _fp16_kv_bytes_per_token(model(model_id)["config"]) == bytes_per_token


def test_mixtral_8x7b_has_12_9b_active_of_46_7b_parameters():
    assert independent_count(model("mistralai/Mixtral-8x7B-v0.1")["config"]) == (46_702_792_704, 12_879_925_248)


def test_llama_2_7b_is_sold_as_7b_but_has_6_74b_parameters():
    assert independent_count(model("meta-llama/Llama-2-7b-hf")["config"])[0] == 6_738_415_616


def test_counter_does_not_accept_a_config_with_the_wrong_head_dim():
    # If the counter ignored head_dim, Gemma 2 9B would come out ~2% small and this catalog check would be void.
    c = dict(model("google/gemma-2-9b")["config"])
    del c["head_dim"]
    assert independent_count(c)[0] < model("google/gemma-2-9b")["published_parameters"] * 0.99


# ------------------------------------------------------------------ hardware.json


REQUIRED_DEVICES = [
    "rtx-3060-12gb",
    "rtx-3080-10gb",
    "rtx-3090",
    "rtx-4060-ti-16gb",
    "rtx-4070-12gb",
    "rtx-4080-16gb",
    "rtx-4090",
    "rtx-5080",
    "rtx-5090",
    "tesla-t4",
    "v100-32gb",
    "a10g",
    "l4",
    "l40s",
    "a100-40gb",
    "a100-80gb",
    "h100-pcie-80gb",
    "h100-sxm-80gb",
    "h200",
    "b200",
    "mi300x",
    "rx-7900-xtx",
    "apple-m1-8gb",
    "apple-m1-16gb",
    "apple-m2-pro-32gb",
    "apple-m3-max-64gb",
    "apple-m3-max-128gb",
    "apple-m2-ultra-192gb",
    "apple-m4-max-128gb",
    "apple-m3-ultra-512gb",
    "cpu-ddr5-16gb",
    "cpu-ddr5-32gb",
    "cpu-ddr5-64gb",
    "cpu-ddr5-128gb",
]


def test_hardware_json_is_a_list_of_complete_device_entries():
    assert isinstance(hardware(), list)
    for d in hardware():
        assert isinstance(d["id"], str) and d["id"] == d["id"].lower() and " " not in d["id"], d
        assert isinstance(d["name"], str) and d["name"], d["id"]
        assert d["vendor"] in HARDWARE_VENDORS, d["id"]
        assert d["kind"] in HARDWARE_KINDS, d["id"]
        assert isinstance(d["memory_bytes"], int) and isinstance(d["usable_memory_bytes"], int), d["id"]
        assert isinstance(d["bandwidth_gb_s"], (int, float)) and not isinstance(d["bandwidth_gb_s"], bool), d["id"]
        assert d["fp16_tflops"] is None or isinstance(d["fp16_tflops"], (int, float)), d["id"]
        assert isinstance(d["notes"], str) and d["notes"], d["id"]


def test_hardware_ids_and_names_are_unique():
    ids = [d["id"] for d in hardware()]
    names = [d["name"] for d in hardware()]
    assert len(ids) == len(set(ids))
    assert len(names) == len(set(names))


def test_hardware_catalog_covers_consumer_datacentre_apple_and_cpu():
    ids = {d["id"] for d in hardware()}
    assert len(ids) >= 30
    assert set(REQUIRED_DEVICES) <= ids
    assert {d["kind"] for d in hardware()} == HARDWARE_KINDS


def test_usable_memory_is_positive_and_never_more_than_the_memory_installed():
    for d in hardware():
        assert 0.6 * d["memory_bytes"] <= d["usable_memory_bytes"] <= d["memory_bytes"], d["id"]


def test_memory_sizes_are_whole_mebibytes_between_8_gib_and_1_tib():
    for d in hardware():
        assert d["memory_bytes"] % MiB == 0, d["id"]
        assert 8 * GiB <= d["memory_bytes"] <= 1024 * GiB, d["id"]


def test_bandwidth_is_plausible_for_each_kind_of_memory():
    limits = {"cpu": (20, 1_000), "apple": (60, 1_000), "gpu": (250, 10_000)}
    for d in hardware():
        low, high = limits[d["kind"]]
        assert low <= d["bandwidth_gb_s"] <= high, d["id"]


def test_compute_is_plausible_where_it_is_stated():
    for d in hardware():
        if d["fp16_tflops"] is not None:
            assert 10 <= d["fp16_tflops"] <= 5_000, d["id"]


def test_a_24_gb_consumer_card_has_24_gib_and_the_4090_about_1_tb_per_second():
    rtx_4090 = device("rtx-4090")
    assert rtx_4090["memory_bytes"] == 24 * GiB
    assert rtx_4090["bandwidth_gb_s"] == 1008
    assert device("rtx-3090")["memory_bytes"] == 24 * GiB


def test_h100_80gb_cannot_hand_all_80_gib_to_a_model():
    for device_id in ("h100-sxm-80gb", "h100-pcie-80gb"):
        d = device(device_id)
        assert d["memory_bytes"] == 80 * GiB
        assert 78 * GiB <= d["usable_memory_bytes"] < 80 * GiB


def test_apple_silicon_usable_memory_is_metals_default_gpu_working_set():
    for d in hardware():
        if d["kind"] != "apple":
            continue
        fraction = 2 / 3 if d["memory_bytes"] <= 32 * GiB else 3 / 4
        assert d["usable_memory_bytes"] == pytest.approx(d["memory_bytes"] * fraction, abs=1), d["id"]
    assert device("apple-m2-ultra-192gb")["usable_memory_bytes"] == 147_456 * MiB  # what llama.cpp logs


def test_cpu_ram_entries_use_dual_channel_ddr5_bandwidth():
    for size in (16, 32, 64, 128):
        d = device(f"cpu-ddr5-{size}gb")
        assert d["memory_bytes"] == size * GiB
        assert 76.8 <= d["bandwidth_gb_s"] <= 96  # DDR5-4800 .. DDR5-6000, two 64-bit channels
