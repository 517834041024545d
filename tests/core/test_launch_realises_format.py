""""Run it" commands load the verdict's format (core.sizing.launch + core.sizing.checkpoints): an FP16 verdict never
becomes a Q4_K_M download, an AWQ verdict never serves the BF16 checkpoint. Published repos named here are listed
with their publishers in core/sizing/checkpoints.py (QUANTIZED_REPOS)."""

import pytest

from core import sizing
from core.sizing import catalog
from core.sizing.launch import launch_plan, plan_for_verdict
from core.sizing.verdict import answer


def plan(model, hw_id, runtime, precisions, context, kv="fp16"):
    hw = (catalog.find_hardware(hw_id),)
    m = sizing.model_from_catalog(model)
    r = sizing.calculate([m], precisions, context, 1, kv, runtime, hw)
    a = answer(r.models, r.estimates, hw, 1, kv, runtime)[0]
    v = a.verdicts[0]
    return v, plan_for_verdict(v, a.cells, kv, m.catalog_id if runtime != "llama.cpp" else None, None, m.catalog_id)


def test_an_fp16_verdict_in_llama_cpp_downloads_the_f16_gguf_and_says_so():
    v, p = plan("meta-llama/Llama-3.1-8B", "h100-sxm-80gb", "llama.cpp", ("fp16", "int8", "int4", "Q4_K_M"), 131072)
    assert v.best_precision == "fp16"
    assert ":F16 " in p.commands[0].command and "Q4_K_M" not in p.commands[0].command
    assert "hf.co/<org>/<repo>-GGUF:F16" in p.commands[1].command  # Ollama too
    assert any(n.startswith("GGUF type F16") for n in p.notes)


@pytest.mark.parametrize("precision,gguf", [("bf16", "BF16"), ("fp32", "F32"), ("int8", "Q8_0"), ("int4", "Q4_K_M"),
                                            ("Q6_K", "Q6_K"), ("GGUF-BF16", "BF16")])
def test_each_format_names_its_own_gguf_type(precision, gguf):
    p = launch_plan("llama.cpp", precision, 4096, 1, "fp16", "org/model-GGUF")
    assert f"-hf org/model-GGUF:{gguf} " in p.commands[0].command
    assert any(n.startswith(f"GGUF type {gguf}") for n in p.notes)


def test_an_awq_verdict_in_vllm_serves_an_awq_checkpoint_not_the_bf16_repo():
    v, p = plan("Qwen/Qwen3-30B-A3B", "rtx-4090", "vllm", ("AWQ-INT4",), 32768)
    assert v.best_precision == "AWQ-INT4"
    cmd = p.commands[0].command
    assert cmd.startswith("vllm serve <org>/Qwen3-30B-A3B-AWQ ") and "Qwen/Qwen3-30B-A3B " not in cmd
    assert any("Serve an AWQ 4-bit checkpoint of this model" in n and "Qwen/Qwen3-30B-A3B-GPTQ-Int4" in n
               for n in p.notes)


def test_a_published_quantized_checkpoint_is_named_when_known():
    p = launch_plan("vllm", "GPTQ-INT4", 32768, 1, "fp16", "Qwen/Qwen3-30B-A3B")
    assert p.commands[0].command.startswith("vllm serve Qwen/Qwen3-30B-A3B-GPTQ-Int4 ")
    p = launch_plan("vllm", "AWQ-INT4", 8192, 1, "fp16", "meta-llama/Llama-3.1-8B")
    assert p.commands[0].command.startswith("vllm serve hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4 ")


def test_fp8_without_a_published_repo_is_vllms_on_the_fly_quantization():
    p = launch_plan("vllm", "fp8", 8192, 1, "fp16", "meta-llama/Llama-3.1-8B")
    assert p.commands[0].command.startswith("vllm serve meta-llama/Llama-3.1-8B ")
    assert p.commands[0].command.endswith("--quantization fp8")
    p = launch_plan("vllm", "FP8-SCALED", 8192, 1, "fp16", "Qwen/Qwen3-32B")
    assert p.commands[0].command.startswith("vllm serve Qwen/Qwen3-32B-FP8 ") and "--quantization" not in \
        p.commands[0].command


def test_int8_in_vllm_says_which_checkpoint_and_int4_is_bitsandbytes():
    p = launch_plan("vllm", "int8", 8192, 1, "fp16", "meta-llama/Llama-3.1-8B")
    assert p.commands[0].command.startswith("vllm serve <org>/Llama-3.1-8B-quantized.w8a8 ")
    assert any("W8A8" in n and "4-bit only" in n for n in p.notes)
    p = launch_plan("vllm", "int4", 8192, 1, "fp16", "meta-llama/Llama-3.1-8B")
    assert p.commands[0].command.endswith("--quantization bitsandbytes")


def test_a_repo_already_stored_in_the_format_is_served_as_it_is():
    p = launch_plan("vllm", "AWQ-INT4", 8192, 1, "fp16", "someone/Model-7B-AWQ")
    assert p.commands[0].command.startswith("vllm serve someone/Model-7B-AWQ ")
    p = launch_plan("vllm", "GPTQ-INT4", 8192, 1, "fp16", "someone/model-7b", repo_precision="GPTQ-INT4")
    assert p.commands[0].command.startswith("vllm serve someone/model-7b ")


@pytest.mark.parametrize("precision,kwargs", [
    ("int8", "quantization_config=BitsAndBytesConfig(load_in_8bit=True)"),
    ("int4", "quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4')"),
    ("NF4", "quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4')"),
])
def test_transformers_quantizes_with_bitsandbytes_instead_of_loading_16_bit(precision, kwargs):
    p = launch_plan("transformers", precision, 8192, 1, "fp16", "meta-llama/Llama-3.1-8B")
    assert f"from_pretrained('meta-llama/Llama-3.1-8B', device_map='auto', torch_dtype='auto', {kwargs})" in \
        p.commands[0].command


def test_transformers_at_awq_loads_an_awq_checkpoint():
    p = launch_plan("transformers", "AWQ-INT4", 8192, 1, "fp16", "meta-llama/Llama-3.1-8B")
    assert "from_pretrained('hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4'" in p.commands[0].command
    p = launch_plan("transformers", "AWQ-INT4", 8192, 1, "fp16", "Qwen/Qwen3-30B-A3B")
    assert "from_pretrained('<org>/Qwen3-30B-A3B-AWQ'" in p.commands[0].command
