"""The calculator's runtime answers as a user meets them: "Paste a log" compares at the log's own format, "Run it"
commands realise the verdict's format, and the KV cache precision is one the runtime can use (AppTest, no browser).
Logs: tests/core/data/logs/*.log (sources on their first lines)."""

from tests.app.test_calculator_page import page, shown_all, table_with
from tests.core.test_reconcile_log_precision import MODERN


def test_a_pasted_q4_k_m_log_is_compared_at_q4_k_m_even_when_the_page_starts_at_fp16():
    at = page(ctx="8k", gpu=["rtx-4090"])  # default precisions: FP16 first
    at.text_area(key="calc_log_text").set_value(MODERN).run()
    assert not at.exception
    rows = table_with(at, "Measured").set_index("Component")
    assert abs(float(rows.loc["Weights", "Gap %"].rstrip("%"))) < 1  # not -69% against FP16
    assert any("at Q4_K_M (the format the log names)" in c for c in shown_all(at.caption.values))
    measured = at.query_params["measured"]
    measured = measured[0] if isinstance(measured, list) else measured
    assert ".precision.q4_k_m" in measured
    again = page(ctx="8k", gpu=["rtx-4090"], measured=measured)  # the shared link shows the same comparison
    rows = table_with(again, "Measured").set_index("Component")
    assert abs(float(rows.loc["Weights", "Gap %"].rstrip("%"))) < 1


def test_a_log_that_names_no_format_is_compared_at_the_first_precision_and_the_page_says_so():
    at = page(ctx="8k", gpu=["rtx-4090"], prec=["Q8_0", "Q4_K_M"],
              measured="llama.cpp.weights.7990000000.kv_cache.1073741824.n_ctx.8192")
    assert not at.exception
    assert any("names no weight format" in i for i in shown_all(at.info.values))
    assert any("at Q8_0 (the log names no format" in c for c in shown_all(at.caption.values))


def test_run_it_under_llama_cpp_at_fp16_downloads_the_f16_gguf_the_verdict_names():
    at = page(model=["meta-llama/Llama-3.1-8B"], prec=["fp16", "int8", "int4", "Q4_K_M"], ctx="128k",
              gpu=["h100-sxm-80gb"])
    server = next(c.value for c in at.code if c.value.startswith("llama-server "))
    assert ":F16 " in server and "Q4_K_M" not in server
    assert any("GGUF type F16" in c for c in shown_all(at.caption.values))


def test_run_it_under_vllm_at_awq_serves_an_awq_checkpoint_and_says_which():
    at = page(rt="vllm", model=["Qwen/Qwen3-30B-A3B"], prec=["AWQ-INT4"], ctx="32k", gpu=["rtx-4090"])
    serve = next(c.value for c in at.code if c.value.startswith("vllm serve "))
    assert serve.startswith("vllm serve <org>/Qwen3-30B-A3B-AWQ ")
    assert any("Serve an AWQ 4-bit checkpoint of this model" in c for c in shown_all(at.caption.values))


def test_the_kv_selector_offers_only_the_runtimes_own_types():
    at = page(model=["meta-llama/Llama-3.1-8B"], gpu=["rtx-4090"])
    shown = at.selectbox(key="w_kv").options  # labels, as the user reads them
    assert {"q8_0 (8.5 bits)", "q4_0 (4.5 bits)", "q5_1 (6 bits)"} <= set(shown) and "FP8" not in shown
    at = page(model=["meta-llama/Llama-3.1-8B"], gpu=["rtx-4090"], rt="vllm")
    assert at.selectbox(key="w_kv").options == ["FP16", "BF16", "FP8"]


def test_a_link_with_a_kv_type_vllm_cannot_use_is_warned_about_and_sized_as_fp16_everywhere():
    query = dict(model=["meta-llama/Llama-3.1-8B"], prec=["fp16"], ctx="32k", rt="vllm", gpu=["rtx-4090"])
    at = page(kv="q4_0", **query)
    assert not at.exception
    assert any("kv=q4_0" in w and "vLLM cannot keep its KV cache in q4_0" in w for w in shown_all(at.warning.values))
    assert at.selectbox(key="w_kv").value == "fp16"
    fp16 = page(**query)
    boot = [c.value for c in at.code if c.value.startswith("GPU KV cache size: ")]
    assert boot and boot == [c.value for c in fp16.code if c.value.startswith("GPU KV cache size: ")]
    # the totals and the boot lines agree: both are FP16 KV, as the page without kv= shows
    assert table_with(at, "KV cache GB").equals(table_with(fp16, "KV cache GB"))


def test_switching_to_vllm_with_a_q8_0_cache_falls_back_to_fp16_and_says_so():
    at = page(model=["meta-llama/Llama-3.1-8B"], gpu=["rtx-4090"], ctx="8k", kv="q8_0")
    assert any("-ctk q8_0 -ctv q8_0" in c.value for c in at.code)
    at.selectbox(key="w_rt").set_value("vllm").run()
    assert not at.exception and at.selectbox(key="w_kv").value == "fp16"
    assert any("vLLM cannot keep its KV cache in q8_0" in w for w in shown_all(at.warning.values))
    serve = next(c.value for c in at.code if c.value.startswith("vllm serve "))
    assert "--kv-cache-dtype" not in serve


def test_vllm_with_an_fp8_cache_sets_it_in_the_command_and_predicts_more_cache_tokens():
    query = dict(model=["meta-llama/Llama-3.1-8B"], prec=["fp16"], ctx="32k", rt="vllm", gpu=["rtx-4090"])
    fp8, fp16 = page(kv="fp8", **query), page(**query)
    assert any(c.value.startswith("vllm serve ") and c.value.endswith("--kv-cache-dtype fp8") for c in fp8.code)

    def tokens(at):
        line = next(c.value for c in at.code if c.value.startswith("GPU KV cache size: "))
        return int(line.split(":")[1].split("tokens")[0].replace(",", ""))
    assert tokens(fp8) > 1.9 * tokens(fp16)  # one byte per value instead of two


def test_a_pasted_log_with_a_q8_0_kv_cache_is_compared_at_q8_0_while_the_page_says_fp16():
    log = MODERN.replace("KV buffer size =  1024.00 MiB", "KV buffer size =   544.00 MiB").replace(
        "K (f16):  512.00 MiB, V (f16):  512.00 MiB", "K (q8_0):  272.00 MiB, V (q8_0):  272.00 MiB")
    at = page(ctx="8k", gpu=["rtx-4090"])
    at.text_area(key="calc_log_text").set_value(log).run()
    rows = table_with(at, "Measured").set_index("Component")
    assert rows.loc["KV cache", "Gap %"] == "+0.0%"
    assert any("KV cache q8_0 (named by the log)" in c for c in shown_all(at.caption.values))
