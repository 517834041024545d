"""The memory calculator page as a user drives it (Streamlit AppTest, no browser)."""

import base64
import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.core.sizing_reference import CONFIGS

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "calculator.py")


def shown(markdown: str) -> str:
    """What a reader sees of an echoed value: pages escape Markdown in it (pages/text.py), the browser drops the \\."""
    return re.sub(r"\\(.)", r"\1", markdown)


def page(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def table_with(at: AppTest, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


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
    at = page(src="params", params="7B 70B", prec=["fp16", "int8", "int4"], ctx="0", batch="1", kv="q8_0",
              rt="vllm", gpu=["rtx-4090"])
    assert not at.exception and not any(w.startswith("Ignored") for w in at.warning.values)
    assert at.radio(key="w_src").value == "params"
    assert at.text_input(key="w_params").value == "7B 70B"
    assert at.selectbox(key="w_kv").value == "q8_0" and at.selectbox(key="w_rt").value == "vllm"
    df = memory_table(at)
    assert df["Weights GB"].round(6).tolist() == [14.0, 7.0, 3.5, 140.0, 70.0, 35.0]


def test_70b_at_int4_on_a_24gb_card_is_called_out_as_not_fitting():
    at = page(src="params", params="70B", prec=["int4"], ctx="0", gpu=["rtx-4090"])
    assert any("false" in w and "24 GB" in w for w in at.warning.values)
    fit_matrix = table_with(at, "INT4")
    assert fit_matrix.iloc[0, 0].startswith("✗")


@pytest.mark.parametrize(
    ("key", "value", "widget", "default"),
    [("ctx", "lots", "w_ctx", 4096), ("batch", "-3", "w_batch", 1), ("kv", "q3_0", "w_kv", "fp16"),
     ("prec", "int5", "w_prec", None), ("model", "no/such-model", "w_model", ["meta-llama/Llama-3.1-8B"]),
     ("src", "web", "w_src", "catalog"), ("cfg", "!!!notbase64", "w_src", "catalog")],
)
def test_a_bad_query_param_shows_a_warning_and_falls_back(key, value, widget, default):
    at = page(**{key: value})
    assert not at.exception and not at.error
    assert any(f"Ignored {key}=" in shown(w) for w in at.warning.values)
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
    assert df["NVIDIA H100 SXM 80GB"].tolist() == ["fits"]


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
    assert at.number_input(key="w_ctx").value == 8192


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
    assert any("config_invalid_json" in e for e in at.error.values)


def test_switching_the_model_source_and_back_keeps_the_catalog_choice():
    at = page(model=["google/gemma-2-9b", "microsoft/phi-4"])
    at.radio(key="w_src").set_value("params").run()
    assert table_with(at, "Total GiB")["Model"].unique().tolist() == ["7B parameters", "70B parameters"]
    assert url_list(at, "model") == ["google/gemma-2-9b", "microsoft/phi-4"]
    at.radio(key="w_src").set_value("catalog").run()
    assert at.multiselect(key="w_model").value == ["google/gemma-2-9b", "microsoft/phi-4"]
    assert table_with(at, "Total GiB")["Model"].unique().tolist() == ["Gemma 2 9B", "Phi-4"]
