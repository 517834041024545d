"""Each runtime's KV cache types (core.sizing.runtimes.kv_refusal): what it can be told to use, what the launch
command sets, and a one-line refusal for the rest. Flags: llama.cpp common/arg.cpp (-ctk/-ctv, -fa), vLLM
EngineArgs --kv-cache-dtype (auto, fp8, fp8_e4m3, fp8_e5m2), Ollama docs/faq.md (OLLAMA_KV_CACHE_TYPE f16|q8_0|q4_0)."""

import pytest

from core.cli.main import main
from core.sizing.kv_cache import get_kv_precision
from core.sizing.launch import launch_plan
from core.sizing.runtimes import kv_choices, kv_refusal


@pytest.mark.parametrize("runtime,kv", [("llama.cpp", "fp8"), ("vllm", "q8_0"), ("vllm", "q4_0"), ("vllm", "fp32"),
                                        ("transformers", "q4_0"), ("transformers", "fp8")])
def test_a_kv_type_the_runtime_cannot_use_is_refused_in_one_sentence(runtime, kv):
    why = kv_refusal(runtime, kv)
    assert why and kv in why and "\n" not in why and kv not in kv_choices(runtime)


@pytest.mark.parametrize("runtime,kv", [("llama.cpp", "q8_0"), ("llama.cpp", "q4_0"), ("llama.cpp", "q5_1"),
                                        ("llama.cpp", "iq4_nl"), ("vllm", "fp8"), ("vllm", "bf16"),
                                        ("transformers", "fp16")])
def test_the_runtimes_own_kv_types_are_accepted(runtime, kv):
    assert kv_refusal(runtime, kv) is None and kv in kv_choices(runtime)
    assert kv_choices(runtime)[0] == "fp16"


def test_llama_cpps_other_quantized_caches_are_sized_by_their_ggml_blocks():
    # ggml-common.h: block_q5_1 = 2 x fp16 + 4 + 16 bytes per 32 values; block_q4_1 = 2 x fp16 + 16; iq4_nl = fp16 + 16
    assert get_kv_precision("q5_1").bits_per_value == 6 and get_kv_precision("q4_1").bits_per_value == 5
    assert get_kv_precision("iq4_nl").bits_per_value == 4.5


@pytest.mark.parametrize("kv,flags", [("q8_0", "-fa on -ctk q8_0 -ctv q8_0"), ("q5_1", "-fa on -ctk q5_1 -ctv q5_1"),
                                      ("bf16", "-ctk bf16 -ctv bf16"), ("fp32", "-ctk f32 -ctv f32")])
def test_llama_server_is_told_the_kv_type_the_answer_assumed(kv, flags):
    p = launch_plan("llama.cpp", "Q4_K_M", 8192, 1, kv, "org/model-GGUF")
    assert p.commands[0].command.endswith(flags)


def test_ollama_gets_only_the_kv_types_it_takes_and_says_so_otherwise():
    p = launch_plan("llama.cpp", "Q4_K_M", 8192, 1, "q4_0", "org/model-GGUF")
    assert "OLLAMA_KV_CACHE_TYPE=q4_0" in p.commands[1].command
    p = launch_plan("llama.cpp", "Q4_K_M", 8192, 1, "q5_1", "org/model-GGUF")
    assert "OLLAMA_KV_CACHE_TYPE" not in p.commands[1].command
    assert any("OLLAMA_KV_CACHE_TYPE takes f16, q8_0 or q4_0 only" in n for n in p.notes)


def test_vllm_serve_sets_an_fp8_kv_cache():
    assert launch_plan("vllm", "fp16", 8192, 1, "fp8", "org/m").commands[0].command.endswith("--kv-cache-dtype fp8")


def test_the_cli_refuses_a_kv_type_the_runtime_cannot_use(capsys):
    assert main(["size", "--model", "meta-llama/Llama-3.1-8B", "--runtime", "vllm", "--kv-precision", "q4_0"]) != 0
    err = capsys.readouterr().err
    assert "[kv_precision_unsupported]" in err and len(err.strip().splitlines()) == 1


def test_the_cli_json_lists_the_runtimes_kv_types(capsys):
    import json

    assert main(["size", "--model", "meta-llama/Llama-3.1-8B", "--runtime", "vllm", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["runtime_rules"]["kv_precisions"] == ["fp16", "bf16", "fp8"]
