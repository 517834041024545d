"""The memory calculator page as a user drives it (Streamlit AppTest, no browser)."""

import base64
import json
import re
from pathlib import Path

import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from tests.core.sizing_reference import CONFIGS

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "calculator.py")



def shown_all(values) -> list[str]:
    """shown() of each value."""
    return [shown(str(v)) for v in values]


def shown(markdown: str) -> str:
    """What a reader sees of an echoed value: pages escape Markdown in it (pages/text.py), the browser drops the \\
    and the invisible word joiners that break autolinks."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def page(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def table_with(at: AppTest, column: str):
    """The first table (interactive grid or plain table) with this column; a plain table's index counts too."""
    frames = [d.value for d in at.dataframe] + [shown_table(t.value.reset_index()) for t in at.table]
    return next(f for f in frames if column in f.columns)


def shown_table(frame):
    """A plain table as the reader sees it: st.table renders its cells as Markdown, so the page escapes them."""
    return frame.map(lambda v: shown(v) if isinstance(v, str) else v)


def memory_table(at: AppTest):
    return table_with(at, "Total GiB")


def url_list(at: AppTest, key: str) -> list[str]:
    value = at.query_params[key]
    return value if isinstance(value, list) else [value]


def test_default_page_renders_a_memory_table_without_errors():
    at = page()
    assert not at.exception and not at.error
    df = memory_table(at)
    assert list(df["Model"].unique()) == ["Llama 3.1 8B"]
    assert {"FP16", "INT4", "GGUF Q4_K_M"} <= set(df["Precision"])
    assert url_list(at, "model") == ["meta-llama/Llama-3.1-8B"]
    assert url_list(at, "prec") == ["fp16", "int8", "int4", "Q8_0", "Q4_K_M", "AWQ-INT4", "NF4"]


def test_changing_the_model_changes_the_table_and_the_link():
    at = page()
    before = memory_table(at)["Total GB"].tolist()
    at.multiselect(key="w_model").set_value(["meta-llama/Llama-3.1-70B"]).run()
    after = memory_table(at)
    assert list(after["Model"].unique()) == ["Llama 3.1 70B"]
    assert after["Total GB"].tolist() != before and min(after["Total GB"]) > max(before) / 2
    assert url_list(at, "model") == ["meta-llama/Llama-3.1-70B"]


def test_several_models_give_a_models_by_precisions_table():
    at = page(model=["meta-llama/Llama-3.1-8B", "mistralai/Mixtral-8x7B-v0.1"], prec=["fp16", "int4"])
    df = memory_table(at)
    assert len(df) == 4 and set(df["Model"]) == {"Llama 3.1 8B", "Mixtral 8x7B"}


def test_query_params_restore_the_whole_state():
    at = page(src="params", params="7B 70B", prec=["fp16", "int8", "int4"], ctx="0", batch="1", kv="fp8",
              rt="vllm", gpu=["rtx-4090"])
    assert not at.exception and not any(w.startswith("Ignored") for w in shown_all(at.warning.values))
    assert at.radio(key="w_src").value == "params"
    assert at.text_input(key="w_params").value == "7B 70B"
    assert at.selectbox(key="w_kv").value == "fp8" and at.selectbox(key="w_rt").value == "vllm"
    df = memory_table(at)
    assert df["Weights GB"].round(6).tolist() == [14.0, 7.0, 3.5, 140.0, 70.0, 35.0]


def test_70b_at_int4_on_a_24gb_card_is_called_out_as_not_fitting():
    # INT4 as vLLM loads it (compressed-tensors W4A16); llama.cpp greys it out (GGUF only)
    at = page(src="params", params="70B", prec=["int4"], ctx="0", gpu=["rtx-4090"], rt="vllm")
    assert any("false" in w and "24 GB" in w for w in shown_all(at.warning.values))
    fit_matrix = table_with(at, "INT4")
    assert fit_matrix["INT4"].iloc[0].startswith("❌ needs 2 cards")
    assert any(m.startswith("❌ 70B parameters on NVIDIA GeForce RTX 4090: no — needs 2 cards")
               for m in shown_all(x.value for x in at.markdown))


@pytest.mark.parametrize(
    ("key", "value", "widget", "default"),
    [("ctx", "lots", "w_ctx", "4096"), ("batch", "-3", "w_batch", 1), ("kv", "q3_0", "w_kv", "fp16"),
     ("prec", "int5", "w_prec", None), ("model", "no/such-model", "w_model", ["meta-llama/Llama-3.1-8B"]),
     ("src", "web", "w_src", "catalog"), ("cfg", "!!!notbase64", "w_src", "catalog")],
)
def test_a_bad_query_param_shows_a_warning_and_falls_back(key, value, widget, default):
    at = page(**{key: value})
    assert not at.exception and not at.error
    assert any(f"Ignored {key}=" in shown(w) for w in shown_all(at.warning.values))
    if default is not None:
        assert at.get_by_key(widget).value == default
    assert len(memory_table(at)) > 0


def test_an_uploaded_config_travels_in_the_link_and_is_counted_exactly():
    cfg = base64.urlsafe_b64encode(json.dumps(CONFIGS["qwen2.5-0.5b"]).encode()).decode().rstrip("=")
    at = page(src="config", cfg=cfg, prec=["fp16"], ctx="0")
    assert not at.exception and not at.error
    df = memory_table(at)
    assert df["Model"].tolist() == ["Uploaded config.json"]
    assert df["Weights GB"].tolist()[0] == pytest.approx(2 * 494_032_768 / 1e9)


def test_csv_download_of_the_table_is_offered():
    at = page()
    buttons = [b for b in at.get("download_button")]
    assert buttons and "CSV" in buttons[0].proto.label


def test_qlora_mode_sizes_fine_tuning_70b_on_one_card():
    at = page(model=["meta-llama/Llama-3.1-70B"], mode="qlora", ctx="2048", gpu=["h100-sxm-80gb"])
    assert not at.exception and not at.error
    df = table_with(at, "Trainable parameters")
    assert df["Model"].tolist() == ["Llama 3.1 70B"]
    fits = table_with(at, "Fits")
    assert fits["Hardware"].tolist() == ["NVIDIA H100 SXM 80GB"] and fits["Fits"].tolist() == ["✅ fits"]


def test_clearing_the_hardware_list_is_kept_in_the_link():
    at = page()
    at.multiselect(key="w_gpu").set_value([]).run()
    assert at.query_params["gpu"] in ("", [""])
    again = page(gpu="")
    assert again.multiselect(key="w_gpu").value == []
    assert not again.exception and not any(w.startswith("Ignored") for w in again.warning.values)


def test_coming_back_from_another_page_restores_the_last_state(tmp_path):
    other = tmp_path / "other.py"
    other.write_text("import streamlit as st\nst.write('another page')\n")
    router = (
        "import streamlit as st\n"
        f"st.navigation([st.Page({PAGE!r}, url_path='calculator', default=True), st.Page({str(other)!r})]).run()\n"
    )
    at = AppTest.from_string(router, default_timeout=60)
    at.query_params["model"] = "meta-llama/Llama-3.1-70B"
    at.query_params["ctx"] = "8192"
    at.run()
    assert at.multiselect(key="w_model").value == ["meta-llama/Llama-3.1-70B"]
    at.switch_page(str(other)).run()
    assert not at.exception
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.multiselect(key="w_model").value == ["meta-llama/Llama-3.1-70B"]
    assert at.text_input(key="w_ctx").value == "8192"


def test_the_page_shows_what_it_read_from_the_architecture():
    at = page(model=["mistralai/Mixtral-8x7B-v0.1", "google/gemma-2-9b"])
    models = table_with(at, "Active / token").set_index("Model")
    assert models.loc["Mixtral 8x7B", "Parameters"] == 46_702_792_704
    assert models.loc["Mixtral 8x7B", "Active / token"] == 12_879_925_248
    assert models.loc["Gemma 2 9B", "head_dim"] == 256
    assert models.loc["Gemma 2 9B", "Sliding window"] == "4096 tokens on 21 of 42 layers"


def test_uploading_a_config_counts_it_exactly_flags_auto_map_and_puts_it_in_the_link():
    at = page(src="config")
    cfg = CONFIGS["phi-3-mini-4k"] | {"auto_map": {"AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM"}}
    at.file_uploader(key="w_upload").set_value(("config.json", json.dumps(cfg).encode(), "application/json")).run()
    assert not at.exception and not at.error
    models = table_with(at, "Active / token")
    assert models["Parameters"].tolist() == [3_821_079_552]
    assert any("auto_map" in shown(i) for i in at.info.values)
    shared = page(src="config", cfg=at.query_params["cfg"])
    assert table_with(shared, "Active / token")["Parameters"].tolist() == [3_821_079_552]


def test_an_upload_that_is_not_json_is_refused_in_one_line():
    at = page(src="config")
    at.file_uploader(key="w_upload").set_value(("config.json", b"import os\nos.system('x')", "application/json")).run()
    assert not at.exception
    assert any("config_invalid_json" in e for e in shown_all(at.error.values))


def test_switching_the_model_source_and_back_keeps_the_catalog_choice():
    at = page(model=["google/gemma-2-9b", "microsoft/phi-4"])
    at.radio(key="w_src").set_value("params").run()
    assert table_with(at, "Total GiB")["Model"].unique().tolist() == ["7B parameters", "70B parameters"]
    assert url_list(at, "model") == ["google/gemma-2-9b", "microsoft/phi-4"]
    at.radio(key="w_src").set_value("catalog").run()
    assert at.multiselect(key="w_model").value == ["google/gemma-2-9b", "microsoft/phi-4"]
    assert table_with(at, "Total GiB")["Model"].unique().tolist() == ["Gemma 2 9B", "Phi-4"]


def test_typing_128k_in_the_context_box_means_131072_tokens_and_the_link_says_so():
    at = page(model=["meta-llama/Llama-3.1-8B"], prec=["fp16"])
    at.text_input(key="w_ctx").set_value("128k").run()
    assert not at.exception and not at.error
    assert url_list(at, "ctx") == ["131072"]
    kv_gb = memory_table(at)["KV cache GB"].iloc[0]
    assert kv_gb == pytest.approx(131_072 * 131_072 / 1e9)  # Llama 3.1 8B: 128 KiB per token at FP16


def test_a_context_typo_is_an_error_instead_of_silently_becoming_another_number():
    at = page(model=["meta-llama/Llama-3.1-8B"], prec=["fp16"], ctx="8192")
    at.text_input(key="w_ctx").set_value("12x8").run()
    assert not at.exception
    assert any("invalid_context" in e for e in shown_all(at.error.values))
    assert url_list(at, "ctx") == ["8192"]  # the last good value stays in force


def test_the_imatrix_checkbox_lives_in_the_link_and_each_gguf_row_says_what_it_assumed():
    at = page(model=["meta-llama/Llama-3.1-8B"], prec=["fp16", "Q4_0"], imatrix="1")
    assert not at.exception and not at.error
    assert at.checkbox(key="w_imatrix").value is True
    df = memory_table(at).set_index("Precision")
    assert df.loc["GGUF Q4_0", "GGUF imatrix"] == "yes" and df.loc["FP16", "GGUF imatrix"] == ""
    with_imatrix = df.loc["GGUF Q4_0", "Weights GB"]
    at.checkbox(key="w_imatrix").uncheck().run()
    assert "imatrix" not in at.query_params
    plain = memory_table(at).set_index("Precision")
    assert plain.loc["GGUF Q4_0", "GGUF imatrix"] == "no"
    assert with_imatrix > plain.loc["GGUF Q4_0", "Weights GB"]  # imatrix Q4_0 keeps early ffn_down at Q4_1


def test_the_page_names_the_kv_cache_rule_of_the_chosen_runtime():
    at = page(model=["mistralai/Mistral-7B-v0.1"], prec=["Q4_K_M"], ctx="32768", rt="llama.cpp")
    assert any("llama.cpp runs this model without its sliding window" in c for c in shown_all(at.caption.values))
    at = page(model=["mistralai/Mistral-7B-v0.1"], prec=["Q4_K_M"], ctx="32768", rt="vllm")
    assert any("vLLM: whole 16-token blocks" in c for c in shown_all(at.caption.values))


def markdown_lines(at: AppTest) -> list[str]:
    return shown_all(m.value for m in at.markdown)


def test_every_selected_model_gets_its_verdict_fit_rows_and_context_line():
    at = page(model=["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B"], gpu=["rtx-4090"], prec=["fp16", "Q4_K_M"])
    assert not at.exception and not at.error
    verdicts = [m for m in markdown_lines(at) if " on NVIDIA GeForce RTX 4090: " in m]
    assert any(v.startswith("✅ Llama 3.1 8B") for v in verdicts)
    assert any(v.startswith("❌ Llama 3.1 70B") and "needs 2 cards at GGUF Q4_K_M" in v for v in verdicts)
    assert table_with(at, "GGUF Q4_K_M")["Model"].tolist() == ["Llama 3.1 8B", "Llama 3.1 70B"]
    lines = next(c for c in at.get("vega_lite_chart") if "strokeDash" in c.proto.spec)
    rows = convert_arrow_bytes_to_pandas_df(lines.proto.data.data)  # the rows travel beside the spec (data=)
    assert set(rows["Model"]) == {"Llama 3.1 8B", "Llama 3.1 70B"}


def test_the_cards_i_have_turn_8_h100_into_a_yes_for_deepseek_v3_at_a_format_llama_cpp_loads():
    at = page(model=["deepseek-ai/DeepSeek-V3"], gpu=["h100-sxm-80gb"], cards="8", prec=["int8", "Q4_K_M"])
    assert not at.exception and not at.error
    assert at.number_input(key="w_cards").value == 8
    assert any(m.startswith("✅ DeepSeek V3 on 8× NVIDIA H100 SXM 80GB: yes — GGUF Q4_K_M fits")
               for m in markdown_lines(at))
    matrix = table_with(at, "INT8")
    assert matrix["INT8"].iloc[0].startswith("⛔ llama.cpp cannot load it")
    assert matrix["GGUF Q4_K_M"].iloc[0].startswith("✅ on 5 cards")
    assert any("GGUF Q8_0" in c for c in shown_all(x.value for x in at.caption))  # why INT8 is greyed, and what to use


def test_with_two_cards_the_verdict_the_matrix_and_the_detail_table_say_the_same():
    """'Cards I have = 2' once gave a yes above a table of single-card numbers (Fits no, Free -19.6 GB, context 0)."""
    at = page(model=["meta-llama/Llama-3.1-70B"], gpu=["rtx-4090"], cards="2", prec=["Q4_K_M"], ctx="4096")
    assert any(m.startswith("✅ Llama 3.1 70B on 2× NVIDIA GeForce RTX 4090: yes — GGUF Q4_K_M fits")
               and "split over 2 cards" in m for m in markdown_lines(at))
    assert table_with(at, "GGUF Q4_K_M")["GGUF Q4_K_M"].iloc[0].startswith("✅ on 2 cards")
    row = table_with(at, "Max context").iloc[0]
    assert row["Fits"] == "yes, 2 cards" and row["Cards"] == "2" and float(row["Free GB per card"]) > 0
    assert int(row["Max context"].replace(",", "")) >= 4096


def test_every_model_gets_its_own_longest_context_and_speed_rows():
    at = page(model=["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B"], gpu=["rtx-4090"], prec=["Q4_K_M"])
    detail = table_with(at, "Max context")
    assert detail["Model"].tolist() == ["Llama 3.1 8B", "Llama 3.1 70B"]
    assert detail["Decode tok/s ceiling"].iloc[1] != "—"


def test_vllm_with_16_requests_of_8k_says_no_on_a_4090_and_greys_out_gguf():
    at = page(model=["meta-llama/Llama-3.1-8B"], gpu=["rtx-4090"], rt="vllm", ctx="8192", batch="16")
    verdict = next(m for m in markdown_lines(at) if " on NVIDIA GeForce RTX 4090: " in m)
    assert verdict.startswith("❌") and "16 concurrent requests × 8k context" in verdict and "GGUF" not in verdict
    assert any("16 concurrent requests" in m for m in markdown_lines(at) if "Totals" in m or m.startswith("- "))
    matrix = table_with(at, "GGUF Q4_K_M")
    assert matrix["GGUF Q4_K_M"].iloc[0].startswith("⛔ vLLM cannot load it")
    assert "0.9" in matrix["Hardware"].iloc[0]


def test_link_keys_people_guess_are_read_as_aliases_and_unknown_keys_are_named():
    at = page(context="8192", precision="Q4_K_M", colour="blue")
    assert at.text_input(key="w_ctx").value == "8192"
    assert at.multiselect(key="w_prec").value == ["Q4_K_M"]
    assert any("colour=" in w and "no such setting" in w for w in shown_all(at.warning.values))


def test_a_parameter_count_out_of_range_is_refused_with_its_reason():
    at = page(src="params", params="1e15")
    assert any("params=1e15" in w and "above the 100T limit" in w for w in shown_all(at.warning.values))


def test_a_context_beyond_the_trained_context_gets_a_note():
    at = page(model=["meta-llama/Llama-3.1-8B"], ctx="1000000")
    assert any("beyond Llama 3.1 8B's trained context of 131,072" in w for w in shown_all(at.warning.values))


def test_a_link_warning_disappears_once_the_value_is_fixed():
    at = page(ctx="lots")
    assert any("ctx=lots" in w for w in shown_all(at.warning.values))
    at.text_input(key="w_ctx").set_value("8192").run()
    assert not any("ctx=lots" in w for w in shown_all(at.warning.values))


def test_training_modes_hide_the_controls_they_ignore():
    at = page(mode="qlora", model=["meta-llama/Llama-3.1-8B"])
    keys = {w.key for w in at.multiselect} | {w.key for w in at.selectbox}
    assert "w_prec" not in keys and "w_kv" not in keys and "w_rt" not in keys and "w_gpu" in keys


def test_no_raw_none_in_the_tables_of_a_bare_parameter_count():
    at = page(src="params", params="7B", gpu=["rtx-4090", "apple-m3-max-64gb"])
    for frame in [d.value for d in at.dataframe] + [t.value for t in at.table]:
        assert "None" not in frame.astype(str).to_numpy().ravel().tolist()


def test_70b_on_one_4090_offers_the_offload_plan_and_a_llama_server_command_that_realises_it():
    at = page(model=["meta-llama/Llama-3.1-70B"], gpu=["rtx-4090"], prec=["Q4_K_M"], ctx="8192", kv="q8_0")
    verdict = next(m for m in markdown_lines(at) if "Llama 3.1 70B on NVIDIA GeForce RTX 4090" in m)
    assert verdict.startswith("❌") and "offload at GGUF Q4_K_M: -ngl " in verdict and "system RAM" in verdict
    ngl = re.search(r"-ngl (\d+)", verdict).group(1)
    commands = [c.value for c in at.code]
    assert any(c.startswith("llama-server -hf ") and f"-ngl {ngl} " in c and "-c 8192" in c
               and "-ctk q8_0 -ctv q8_0" in c for c in commands)


def test_vllm_shows_its_predicted_boot_lines_and_the_serve_command_with_the_requests():
    at = page(model=["meta-llama/Llama-3.1-8B"], gpu=["h100-sxm-80gb"], rt="vllm", prec=["fp16"], ctx="8192",
              batch="16")
    commands = [c.value for c in at.code]
    assert any(c == "vllm serve meta-llama/Llama-3.1-8B --max-model-len 8192 --max-num-seqs 16 "
                    "--gpu-memory-utilization 0.9" for c in commands)
    boot = next(c for c in commands if c.startswith("GPU KV cache size: "))
    assert "Maximum concurrency for 8,192 tokens per request: " in boot


def test_a_pasted_ollama_log_shows_predicted_vs_measured_and_the_link_carries_numbers_only():
    log = (Path(__file__).parents[1] / "core" / "data" / "logs" / "ollama_llama31_8b_q4km.log").read_text()
    at = page(model=["meta-llama/Llama-3.1-8B"], prec=["Q4_K_M"], gpu=["rtx-4090"])
    at.text_area(key="calc_log_text").set_value(log + "\n[click me](http://evil.example)\n").run()
    assert not at.exception
    table = table_with(at, "Measured")
    rows = table.set_index("Component")
    assert rows.loc["KV cache", "Gap %"] == "+0.0%" and rows.loc["Weights", "Predicted"].endswith(" GB")
    measured = at.query_params["measured"]
    measured = measured[0] if isinstance(measured, list) else measured
    assert measured.startswith("ollama.") and "evil" not in measured and "CUDA" not in measured
    again = page(model=["meta-llama/Llama-3.1-8B"], prec=["Q4_K_M"], gpu=["rtx-4090"], measured=measured)
    assert table_with(again, "Measured").set_index("Component").loc["KV cache", "Gap %"] == "+0.0%"


def test_a_forged_measured_link_value_is_refused_with_a_warning():
    at = page(measured="ollama.weights.<script>")
    assert any("measured=" in w for w in shown_all(at.warning.values))


def test_hardware_labels_carry_their_memory_so_typing_24_finds_the_24_gb_cards():
    at = page()
    options = at.multiselect(key="w_gpu").options
    assert "NVIDIA GeForce RTX 4090 (24 GB)" in options and "NVIDIA GeForce RTX 3090 (24 GB)" in options
    assert "Apple M3 Max 64GB" in options  # a name that already says its memory is left alone


def test_your_own_card_travels_in_the_link_and_gets_a_verdict():
    at = page(model=["meta-llama/Llama-3.1-8B"], gpu=[], card="RTX A6000, 48, 768", prec=["Q8_0"])
    assert any(m.startswith("✅ Llama 3.1 8B on RTX A6000 (yours, 48 GB): yes") for m in markdown_lines(at))
    assert at.query_params["card"] in ("RTX A6000, 48, 768", ["RTX A6000, 48, 768"])
    bad = page(card="<img src=x>, 48, 768")
    assert any("card=" in w for w in shown_all(bad.warning.values))


def test_training_says_the_largest_batch_and_the_longest_sequence_that_fit():
    at = page(model=["meta-llama/Llama-3.1-70B"], mode="qlora", ctx="4096", gpu=["h100-sxm-80gb", "rtx-4090"])
    fits = table_with(at, "Fits").set_index("Hardware")
    h100 = fits.loc["NVIDIA H100 SXM 80GB"]
    assert h100["Largest batch at 4,096 tokens"] >= 1 and h100["Longest sequence at batch 1"] >= 4096
    assert fits.loc["NVIDIA GeForce RTX 4090", "Largest batch at 4,096 tokens"] == 0
    assert any("largest batch at 4,096 tokens: " in m for m in markdown_lines(at))
    assert any("RTX 4090" in m and "not even batch 1" in m for m in markdown_lines(at))
