"""The format a pasted log is compared at comes from the log itself (core.sizing.reconcile.choose_precision), the
same for the page and `python -m core reconcile`: a Q4_K_M log is never set beside an FP16 prediction.

Logs: tests/core/data/logs/*.log (sources on their first lines). The modern llama.cpp line `print_info: file type
= Q4_K - Medium` is llama.cpp's src/llama-model.cpp print_info() (`file type   = %s`, llama_model_ftype_name)."""

import json
from pathlib import Path

import pytest

from core import sizing
from core.cli.main import main
from core.errors import QuantLensError
from core.sizing.reconcile import (
    choose_precision,
    from_link,
    llama_ftype_precision,
    parse_log,
    predicted_components,
    reconcile,
)
from tests.core.test_sizing_serving import QWEN3_14B

LOGS = Path(__file__).parent / "data" / "logs"
OLLAMA = (LOGS / "ollama_llama31_8b_q4km.log").read_text()
# the same published numbers as a current llama-server prints them (print_info / load_tensors / llama_context)
MODERN = OLLAMA.replace("llm_load_print_meta: model ftype      =", "print_info: file type   =").replace(
    "llm_load_tensors:", "load_tensors:").replace("llama_new_context_with_model:", "llama_context:").replace(
    "time=2025-12-01", "")


def test_a_current_llama_cpp_log_names_its_gguf_type_and_the_comparison_uses_it():
    p = parse_log(MODERN)
    assert p.precision == "Q4_K_M" and "file type" in p.precision_source
    choice = choose_precision(p, "fp16")  # the page's first precision is FP16: the log's own type still wins
    assert choice.name == "Q4_K_M" and choice.from_log
    rows = {r.component: r for r in reconcile(p, predicted_components(
        sizing.model_from_catalog("meta-llama/Llama-3.1-8B"), choice.name, p))}
    assert abs(rows["Weights"].gap_percent) < 1  # not -69% as against FP16


def test_an_older_log_names_its_type_as_model_ftype():
    assert parse_log(OLLAMA).precision == "Q4_K_M"


@pytest.mark.parametrize("words,name", [("Q4_K - Medium", "Q4_K_M"), ("Q5_K - Small", "Q5_K_S"),
                                        ("Q3_K - Large", "Q3_K_L"), ("Q2_K - Medium", "Q2_K"), ("Q8_0", "Q8_0"),
                                        ("IQ4_XS - 4.25 bpw", "IQ4_XS"), ("BF16", "GGUF-BF16"), ("F16", "GGUF-F16"),
                                        ("all F32", "GGUF-F32"), ("mostly Q4_0", "Q4_0"), ("MXFP4 MoE", "MXFP4_MOE"),
                                        ("IQ3_S mix - 3.66 bpw", "IQ3_M"), ("Q9_Z - Huge", None)])
def test_each_llama_cpp_file_type_name_maps_to_its_format(words, name):
    assert llama_ftype_precision(words) == name


def test_a_vllm_engine_config_names_its_quantization_and_a_plain_one_its_dtype():
    awq = parse_log((LOGS / "vllm_v0_awq_engine_config.log").read_text() + "\nLoading model weights took 6.9 GB\n")
    assert awq.runtime == "vllm" and awq.precision == "AWQ-INT4"
    plain = parse_log("Initializing a V1 LLM engine (v0.10.1) with config: model='Qwen/Qwen3-14B', dtype=torch.bfloat16,"
                      " max_seq_len=32768, quantization=None, enforce_eager=False, kv_cache_dtype=auto\n"
                      + (LOGS / "vllm_v1_qwen3_14b.log").read_text())
    assert plain.precision == "bf16" and "dtype" in plain.precision_source


def test_a_log_that_names_no_format_falls_back_to_the_first_precision_and_says_so():
    p = parse_log((LOGS / "llamafile_trilm_rtx4080.log").read_text())
    assert p.precision is None
    choice = choose_precision(p, "Q8_0")
    assert choice.name == "Q8_0" and not choice.from_log and "names no format" in choice.words


def test_the_link_carries_the_logs_format_so_a_shared_link_shows_the_same_comparison():
    link = parse_log(MODERN).to_link()
    assert ".precision.q4_k_m." in link and link.endswith(".kv.fp16")
    back = from_link(link)
    assert back.precision == "Q4_K_M" and choose_precision(back, "fp16").name == "Q4_K_M"
    for bad in ("llama.cpp.weights.1.precision.q9_z", "llama.cpp.weights.1.precision.<b>"):
        with pytest.raises(QuantLensError) as err:
            from_link(bad)
        assert err.value.code == "log_link_invalid"


def test_the_cli_reads_the_current_file_type_line_like_the_page(tmp_path, capsys):
    log = tmp_path / "llama.log"
    log.write_text(MODERN.replace("Q4_K - Medium", "Q8_0"))
    assert main(["reconcile", str(log), "--model", "meta-llama/Llama-3.1-8B", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"] == "Q8_0" and ".precision.q8_0." in report["link_value"]


def test_a_log_with_a_q8_0_kv_cache_is_compared_with_a_q8_0_prediction():
    # llama.cpp prints the cache type beside its size (`K (q8_0):`); numbers as the fp16 log above, halved-ish
    log = MODERN.replace("KV buffer size =  1024.00 MiB", "KV buffer size =   544.00 MiB").replace(
        "KV self size  = 1024.00 MiB, K (f16):  512.00 MiB, V (f16):  512.00 MiB",
        "KV self size  =  544.00 MiB, K (q8_0):  272.00 MiB, V (q8_0):  272.00 MiB")
    p = parse_log(log)
    assert p.kv_precision == "q8_0" and from_link(p.to_link()).kv_precision == "q8_0"
    rows = {r.component: r for r in reconcile(p, predicted_components(
        sizing.model_from_catalog("meta-llama/Llama-3.1-8B"), "Q4_K_M", p, p.kv_precision))}
    assert rows["KV cache"].gap_bytes == 0  # 8192 x 32 layers x 2 x 1024 values x 34/32 bytes = 544 MiB


def test_a_vllm_log_with_an_fp8_cache_turns_its_pool_into_twice_the_tokens():
    # the published V1 pool (6.51 GiB, Qwen3-14B) read with kv_cache_dtype=fp8: one byte per value instead of two
    text = (LOGS / "vllm_v1_qwen3_14b.log").read_text()
    m = sizing.model_from_config(QWEN3_14B)
    bf16 = predicted_components(m, "bf16", parse_log(text))["kv_tokens"]
    fp8_log = parse_log("Initializing a V1 LLM engine with config: model='Qwen/Qwen3-14B', dtype=torch.bfloat16, "
                        "quantization=None, kv_cache_dtype=fp8\n" + text)
    assert fp8_log.kv_precision == "fp8"
    assert predicted_components(m, "bf16", fp8_log, fp8_log.kv_precision)["kv_tokens"] == 2 * bf16


def test_the_reconcile_json_says_where_its_format_came_from_and_every_key_is_in_the_readme(tmp_path, capsys):
    log = tmp_path / "llama.log"
    log.write_text((LOGS / "llamafile_trilm_rtx4080.log").read_text())
    assert main(["reconcile", str(log), "--params", "3.9B", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision_source"] == "default" and report["kv_precision"] == "fp16"
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### `python -m core reconcile`"):readme.index("### `python -m core compare`")]
    assert [k for k in report if f'"{k}"' not in section] == []
