"""Predicted vs measured (core.sizing.reconcile): real published load logs (sources in tests/core/data/logs/*.log,
first lines) read into components and set beside the engine's estimate."""

from pathlib import Path

import pytest

from core import sizing
from core.errors import QuantLensError
from core.sizing.reconcile import MAX_LOG_BYTES, from_link, parse_log, predicted_components, reconcile
from core.units import GIB, MIB
from tests.core.test_sizing_serving import QWEN3_14B

LOGS = Path(__file__).parent / "data" / "logs"


def read(name: str):
    return parse_log((LOGS / name).read_text())


def test_an_ollama_runner_log_of_llama_31_8b_q4_k_m_reconciles_weights_kv_and_compute():
    p = read("ollama_llama31_8b_q4km.log")
    assert p.runtime == "ollama" and p.facts["n_ctx"] == 8192 and p.facts["flash_attn"] == 0
    assert abs(p.components["weights"] - (281.81 + 4403.49) * MIB) < 2
    assert p.components["kv_cache"] == 1024 * MIB
    rows = {r.component: r for r in reconcile(p, predicted_components(
        sizing.model_from_catalog("meta-llama/Llama-3.1-8B"), "Q4_K_M", p))}
    assert abs(rows["Weights"].gap_percent) < 1  # per-tensor GGUF sizing: 0.13% off the published buffers
    assert rows["KV cache"].gap_bytes == 0  # exact: 8192 cells x 32 layers x 2 x 1024 x 2 bytes
    assert abs(rows["Compute buffers"].gap_percent) < 25  # an estimate: KQ scores without flash attention
    assert rows["Output buffer"].predicted_bytes is None


def test_a_vllm_v0_log_gives_the_pool_and_tokens_and_the_prediction_lands_within_ten_percent():
    p = read("vllm_v0_llama31_8b_rtx3090.log")
    assert p.runtime == "vllm" and p.facts["kv_tokens"] == 1952 * 16 and p.facts["max_model_len"] == 20000
    assert abs(p.components["weights"] - 14.9888 * GIB) < 2  # vLLM's "GB" there is GiB
    m = sizing.model_from_catalog("meta-llama/Llama-3.1-8B")
    # V0 without chunked prefill profiles max_model_len tokens; the card's total is the log's total_gpu_memory
    predicted = predicted_components(m, "bf16", p, total_memory_bytes=int(23.58 * GIB), max_num_batched_tokens=20000)
    rows = {r.component: r for r in reconcile(p, predicted)}
    assert abs(rows["Weights"].gap_percent) < 1
    assert rows["vLLM KV cache tokens"].unit == "tokens" and abs(rows["vLLM KV cache tokens"].gap_percent) < 10


def test_a_vllm_v1_pool_turns_into_exactly_the_printed_tokens():
    p = read("vllm_v1_qwen3_14b.log")
    assert p.facts == {"kv_tokens": 42_656, "max_model_len": 32_768, "max_concurrency_x100": 130}
    rows = {r.component: r for r in reconcile(p, predicted_components(sizing.model_from_config(QWEN3_14B), "bf16", p))}
    assert rows["vLLM KV cache tokens"].gap_bytes == 0


def test_older_llama_cpp_buffer_lines_are_read_too():
    p = read("llamafile_trilm_rtx4080.log")
    assert p.runtime == "llama.cpp" and p.components["kv_cache"] == 180 * MIB
    assert abs(p.components["weights"] - (297.00 + 7317.71) * MIB) < 2 and p.facts["n_ctx"] == 512


def test_a_draft_model_and_a_projector_are_counted_apart():
    p = parse_log("srv load_model: loading draft model 'small.gguf'\n"
                  "load_tensors:   CUDA0 model buffer size =   500.00 MiB\n"
                  "llama_kv_cache:      CUDA0 KV buffer size =    64.00 MiB\n"
                  "clip_model_loader: model name: mmproj\n"
                  "load_hparams: CLIP model size: 851.25 MiB\n")
    assert p.components["draft_weights"] == 500 * MIB and p.components["draft_kv_cache"] == 64 * MIB
    assert p.components["mmproj"] == round(851.25 * MIB) and "weights" not in p.components


def test_the_link_carries_numbers_only_and_reads_them_back():
    p = read("ollama_llama31_8b_q4km.log")
    link = p.to_link()
    assert "CUDA" not in link and "llm_load" not in link and set(link) <= set("abcdefghijklmnopqrstuvwxyz_.0123456789")
    back = from_link(link)
    assert back.runtime == p.runtime and back.components == p.components and back.facts == p.facts
    for bad in ("javascript.alert.1", "ollama.weights.12a", "vllm.rm_rf.1", "x" * 900):
        with pytest.raises(QuantLensError) as err:
            from_link(bad)
        assert err.value.code == "log_link_invalid"


def test_hostile_logs_are_capped_and_a_log_without_memory_lines_is_refused():
    with pytest.raises(QuantLensError) as err:
        parse_log(b"x" * (MAX_LOG_BYTES + 1))
    assert err.value.code == "log_too_large"
    with pytest.raises(QuantLensError) as err:
        parse_log("<script>alert(1)</script>\n[click](http://evil)\n")
    assert err.value.code == "log_no_memory_lines"
    long_line = "load_tensors: CUDA0 model buffer size = 1.00 MiB" + " " * 5000
    with pytest.raises(QuantLensError):
        parse_log(long_line)  # over-long lines are skipped, never searched
