"""`python -m core size --gpu ... --cards N` under each runtime: verdicts with the commands that realise them."""

import json

from tests.core.test_sizing_cli import size


def doc(*args: str) -> dict:
    out = size(*args, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_deepseek_v3_fp8_on_8_h100_under_llama_cpp_is_unsupported_not_a_yes():
    d = doc("--model", "deepseek-ai/DeepSeek-V3", "--precision", "FP8-SCALED,Q4_K_M", "--context", "4096",
            "--gpu", "h100-sxm-80gb", "--cards", "8")
    fp8 = d["estimates"][0]["hardware"][0]
    assert fp8["status"] == "unsupported" and "GGUF" in fp8["load_refusal"]
    v = d["verdicts"][0]
    assert v["fits"] and v["precision"] == "Q4_K_M" and v["cards"] == 8
    assert d["runtime_rules"]["loads"][:3] == ["fp32", "fp16", "bf16"] and "AWQ-INT4" not in d["runtime_rules"]["loads"]


def test_70b_on_a_4090_offers_an_offload_plan_with_its_llama_server_command():
    d = doc("--model", "meta-llama/Llama-3.1-70B", "--precision", "Q4_K_M", "--context", "8k", "--gpu", "rtx-4090")
    v = d["verdicts"][0]
    assert not v["fits"] and v["offload"]["kind"] == "layers" and v["offload"]["ram_bytes"] > 10**10
    cmd = v["launch"]["commands"][0]["command"]
    assert cmd.startswith("llama-server -hf ") and f"-ngl {v['offload']['n_gpu_layers']}" in cmd


def test_vllm_verdict_carries_the_serve_command_and_the_predicted_boot_lines():
    d = doc("--model", "meta-llama/Llama-3.1-8B", "--precision", "fp16", "--context", "8k", "--batch", "16",
            "--runtime", "vllm", "--gpu", "h100-sxm-80gb")
    v = d["verdicts"][0]
    assert v["launch"]["commands"][0]["command"].startswith(
        "vllm serve meta-llama/Llama-3.1-8B --max-model-len 8192 --max-num-seqs 16")
    lines = v["vllm"]["log_lines"]
    assert lines[0].startswith("GPU KV cache size: ") and lines[1].startswith("Maximum concurrency for 8,192 tokens")
    assert v["vllm"]["concurrent_requests"] == 16 and "16 concurrent requests" in v["sentence"]


def test_cards_out_of_range_is_one_line_with_a_code():
    out = size("--params", "7B", "--gpu", "rtx-4090", "--cards", "0")
    assert out.returncode == 1 and out.stderr.strip().endswith("[invalid_number]")
