"""The sizing engine answers from the model's own definition for every architecture people download.

Reference set: tests/core/data/reference_configs/*.json (real published config.json fields) with the expected
numbers and their sources in MANIFEST.json. Parameters within 0.005%, published (rounded) card figures within
the tolerance written beside them, KV and recurrent state within 0.5% of the hand calculation from the config.

The inventories are built by transformers on the meta device once per session, in this process, into a disk
cache folder; the engine then finds them there exactly as the app finds a cached inventory on a second click.
One test builds through the isolated child process the app uses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core import sizing
from core.errors import QuantLensError
from core.sizing import meta_inventory
from core.sizing.architecture import architecture_from_config, parameter_count
from core.sizing.inventory_plan import plan_inventory

DATA = Path(__file__).parent / "data" / "reference_configs"
MANIFEST = json.loads((DATA / "MANIFEST.json").read_text())["models"]
SIZED = sorted(n for n, m in MANIFEST.items() if "refused" not in m)


def _config(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def _param(name: str):
    marks = [pytest.mark.slow] if MANIFEST[name].get("slow") else []
    return pytest.param(name, marks=marks, id=name)


@pytest.fixture(scope="module")
def inventory_cache(tmp_path_factory):
    """A disk cache for this module's inventories (the engine reads it like the app's own cache)."""
    folder = tmp_path_factory.mktemp("inventory")
    old = os.environ.get(meta_inventory.DISK_CACHE_ENV)
    os.environ[meta_inventory.DISK_CACHE_ENV] = str(folder)
    meta_inventory.clear_memory_cache()
    yield folder
    meta_inventory.clear_memory_cache()
    if old is None:
        os.environ.pop(meta_inventory.DISK_CACHE_ENV, None)
    else:
        os.environ[meta_inventory.DISK_CACHE_ENV] = old


def _model(name: str) -> sizing.ModelSpec:
    """The engine's model for a reference config; its inventory is built in-process first (same cache key)."""
    from core.sizing.families import TEXT_CONFIG_TYPES, is_known
    from core.sizing.inventory_arch import needs_inventory, transformers_type

    cfg = _config(name)
    declared, named = str(cfg.get("model_type", "")), transformers_type(cfg)
    hand = is_known(declared) or declared in TEXT_CONFIG_TYPES or (named is not None and is_known(named))
    if needs_inventory(cfg, hand):
        meta_inventory.build_inventory(dict(cfg, model_type=named), isolate=False)
    return sizing.model_from_config(cfg, name)


def test_the_reference_set_covers_at_least_25_architectures_in_every_group():
    groups = " ".join(m["group"] for m in MANIFEST.values())
    assert len(MANIFEST) >= 25
    for word in ("hybrid", "pure SSM", "MLA", "MTP", "multimodal", "encoder-decoder", "MoE", "decoder"):
        assert word in groups, word
    for name, m in MANIFEST.items():
        assert (DATA / f"{name}.json").exists(), name
        assert m["config_source"].startswith("https://huggingface.co/"), name


@pytest.mark.parametrize("name", [_param(n) for n in SIZED])
def test_parameters_equal_the_published_total(name, inventory_cache):
    m = MANIFEST[name]
    model = _model(name)
    assert model.parameters == pytest.approx(m["parameters"], rel=5e-5), m["parameters_source"]
    if "card_parameters" in m:
        assert model.parameters == pytest.approx(m["card_parameters"], rel=m["card_tolerance"]), m["card_source"]
    if "card_active_parameters" in m:
        assert model.active_parameters == pytest.approx(m["card_active_parameters"], rel=m["card_active_tolerance"]), \
            m["card_active_source"]
    assert sizing.architecture_known(model)


@pytest.mark.parametrize("name", [_param(n) for n in SIZED])
def test_kv_cache_is_counted_on_attention_layers_only_and_the_recurrent_state_apart(name, inventory_cache):
    m = MANIFEST[name]
    model = _model(name)
    summary = sizing.model_summary(model)
    assert summary["kv_bytes_per_token_fp16"] == pytest.approx(m["kv_bytes_per_token_fp16"], rel=0.005)
    state = m.get("state_bytes_per_sequence_llama_cpp", 0)
    assert summary["state_bytes_per_sequence"] == pytest.approx(state, rel=0.005)
    est = sizing.estimate(model, "bf16", 4096, 2, "fp16", "llama.cpp")
    assert est.state_bytes == pytest.approx(2 * state, rel=0.005)
    assert est.total_bytes == est.weights_bytes + est.kv_cache_bytes + est.state_bytes + est.overhead_bytes


def test_a_pure_ssm_has_no_kv_cache_and_a_state_that_does_not_grow_with_context(inventory_cache):
    model = _model("mamba-2.8b")
    short = sizing.estimate(model, "bf16", 1024, 1, "fp16", "vllm")
    long = sizing.estimate(model, "bf16", 65536, 1, "fp16", "vllm")
    assert short.kv_cache_bytes == long.kv_cache_bytes == 0
    assert short.state_bytes == long.state_bytes == 24_903_680 // 2  # vLLM keeps the state in 16 bits
    assert "recurrent state" in long.kv_cache_rule


def test_a_hybrid_caches_k_and_v_only_on_its_attention_layers(inventory_cache):
    jamba = _model("jamba-1.5-mini")
    assert sizing.model_summary(jamba)["layer_kinds"] == {"attention": 4, "ssm": 28}
    est = sizing.estimate(jamba, "bf16", 32768, 1, "fp16", "transformers")
    assert est.kv_cache_bytes == 4 * 2 * 8 * 128 * 2 * 32768  # 4 attention layers of 32, GQA 8 x 128
    assert "only the 4 attention layers have a KV cache" in est.kv_cache_rule


@pytest.mark.parametrize("name", ["qwen2.5-vl-7b", "gemma-3-4b-it", "llava-1.5-7b"])
def test_multimodal_models_count_the_language_model_and_the_tower_apart(name, inventory_cache):
    m = MANIFEST[name]
    summary = sizing.model_summary(_model(name))
    assert summary["parts"] == m["parts"]
    assert summary["tower_parameters"] == m["parts"]["vision"] + m["parts"]["projector"]
    assert summary["image_tokens"] == m["image_tokens"]
    assert summary["kv_bytes_per_image_fp16"] == m["image_tokens"] * m["kv_bytes_per_token_fp16"]


def test_whisper_caches_cross_attention_over_its_1500_audio_frames(inventory_cache):
    model = _model("whisper-large-v3")
    est = sizing.estimate(model, "fp16", 448, 1, "fp16", "transformers")
    per_token = 32 * 2 * 1280 * 2  # 32 decoder layers, K and V of width 1280, FP16
    assert est.kv_cache_bytes == per_token * 448 + per_token * 1500
    assert "1,500 encoder tokens" in est.kv_cache_rule
    assert sizing.model_summary(model)["parts"] == {"encoder": 636_968_960, "decoder": 906_521_600}


def test_t5_is_sized_with_self_and_cross_attention_instead_of_refused_for_a_missing_field(inventory_cache):
    model = _model("flan-t5-base")
    est = sizing.estimate(model, "int8", 512, 1, "fp16", "transformers")
    assert est.kv_cache_bytes == 2 * 12 * 2 * 768 * 2 * 512  # self + cross, 12 decoder layers
    assert est.weights_bytes == 247_577_856


def test_an_architecture_nobody_describes_is_refused_with_a_sentence_naming_it():
    with pytest.raises(QuantLensError) as err:
        sizing.model_from_config(_config("nemotron-nano-9b-v2"))
    assert err.value.code == "architecture_unknown"
    assert "'nemotron_h'" in err.value.message and "parameter count" in err.value.message
    assert "num_attention_heads" not in err.value.message


def test_an_unknown_type_with_mamba_fields_is_never_counted_as_a_llama():
    cfg = _config("llama-3.1-8b") | {"model_type": "my_hybrid", "mamba_d_state": 16, "attn_layer_period": 8}
    with pytest.raises(QuantLensError, match="my_hybrid"):
        architecture_from_config(cfg)


def test_a_llama_style_guess_is_not_reported_as_a_known_architecture():
    cfg = {k: v for k, v in _config("llama-3.1-8b").items() if k != "architectures"}
    guess = sizing.model_from_config(cfg | {"model_type": "my_llama_clone"})
    assert guess.parameters == 8_030_261_248
    assert not sizing.architecture_known(guess)
    assert sizing.architecture_known(sizing.model_from_config(_config("llama-3.1-8b")))


def test_kimi_k2_is_built_as_the_transformers_class_its_config_names_not_its_custom_code(inventory_cache):
    cfg = _config("kimi-k2")
    from core.sizing.inventory_arch import transformers_type

    assert transformers_type(cfg) == "deepseek_v3"


def test_the_app_builds_an_inventory_in_an_isolated_child_and_caches_it(tmp_path, monkeypatch):
    monkeypatch.setenv(meta_inventory.DISK_CACHE_ENV, str(tmp_path))
    meta_inventory.clear_memory_cache()
    cfg = _config("whisper-tiny")
    assert meta_inventory.cached(cfg) is None
    inv = meta_inventory.build_inventory(cfg)  # the child process
    assert inv.parameters == 37_760_640 and inv.model_class == "WhisperForConditionalGeneration"
    assert list(tmp_path.glob("*.json"))  # written atomically for the next run
    meta_inventory.clear_memory_cache()
    assert meta_inventory.cached(cfg) == inv  # read back from disk: no rebuild
    assert plan_inventory(inv).encoder_tokens == 1500


def test_a_config_transformers_rejects_is_a_clear_error_from_the_child(tmp_path, monkeypatch):
    monkeypatch.setenv(meta_inventory.DISK_CACHE_ENV, str(tmp_path))
    cfg = _config("whisper-tiny") | {"d_model": 385}  # not divisible by the 6 heads
    with pytest.raises(QuantLensError) as err:
        meta_inventory.build_inventory(cfg)
    assert err.value.code in ("config_invalid_value", "inventory_failed")
    assert "whisper" in err.value.message.lower() or "WhisperForConditionalGeneration" in err.value.message


CATALOG_IDS = [(e.id, e.config) for e in __import__("core.sizing.catalog", fromlist=["load_models"]).load_models()]


@pytest.mark.parametrize("model_id,config", [
    pytest.param(i, c, marks=[pytest.mark.slow] if parameter_count(architecture_from_config(c)) > 40e9 else [], id=i)
    for i, c in CATALOG_IDS])
def test_the_hand_written_rules_give_the_same_inventory_as_the_model_definition(model_id, config, inventory_cache):
    """The fast path is kept only where it counts what transformers builds: total, per-layer KV and embeddings."""
    arch = architecture_from_config(config)
    inv = meta_inventory.build_inventory(config, isolate=False)
    plan = plan_inventory(inv)
    assert parameter_count(arch) == inv.parameters, model_id
    if not arch.is_encoder:
        from core.sizing.kv_cache import kv_bytes_per_token

        assert kv_bytes_per_token(arch) == 2 * sum(sum(layer.kv_rows) for layer in plan.layers), model_id


@pytest.mark.parametrize("patch", [{"num_hidden_layers": 512, "num_experts": 4096},
                                   {"hidden_size": 10**7}, {"vocab_size": 10**9}])
def test_a_hostile_config_for_a_defined_family_is_refused_before_anything_is_built(patch, tmp_path, monkeypatch):
    monkeypatch.setenv(meta_inventory.DISK_CACHE_ENV, str(tmp_path))
    with pytest.raises(QuantLensError) as err:
        sizing.model_from_config(_config("jamba-1.5-mini") | patch)
    assert err.value.code == "config_out_of_bounds"
    assert not list(tmp_path.iterdir())  # refused before any build


def test_an_inventory_built_inside_a_memory_limited_compare_job_keeps_the_jobs_lower_limit():
    """A compare job's worker runs under its own RLIMIT_AS; the inventory child it starts (an image model's config)
    used to fail with "Exception occurred in preexec_fn" trying to raise it."""
    import subprocess
    import sys

    code = ("import resource; lim = 8 * 2**30; resource.setrlimit(resource.RLIMIT_AS, (lim, lim)); "
            "from core.sizing.meta_inventory import _limit_child; _limit_child(); "
            "print(resource.getrlimit(resource.RLIMIT_AS)[1] == lim)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "True"
