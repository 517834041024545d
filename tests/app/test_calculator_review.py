"""The calculator page as a new user drove it in the browser review: what each answer says (AppTest, no browser)."""

from tests.app.test_calculator_page import markdown_lines, page, shown_all


def test_a_bare_parameter_count_says_weights_fit_and_that_its_kv_cache_is_not_counted():
    at = page(src="params", params="70B", ctx="128k", gpu=["h100-sxm-80gb"], prec=["Q8_0", "Q4_K_M"])
    assert not at.exception
    lines = markdown_lines(at)
    verdict = next(m for m in lines if m.startswith("✅ 70B parameters on NVIDIA H100 SXM 80GB"))
    assert "fits with 128k context" not in verdict
    assert "KV cache for 128k context not counted: give a model id or config.json for it" in verdict
    totals = next(m for m in lines if m.startswith("**Totals**"))
    assert "70B parameters, weights + overhead only (KV cache for 128k context not counted" in totals
    assert "70B parameters, 128k context:" not in totals


def test_a_link_with_too_many_models_and_devices_answers_for_the_first_8_and_12_and_says_what_it_left_out():
    from core.sizing import catalog

    model_ids = [m.id for m in catalog.load_models()][:10]
    gpu_ids = [h.id for h in catalog.load_hardware()][:14]
    at = page(model=model_ids, gpu=gpu_ids, ctx="4096")
    assert not at.exception
    assert at.get_by_key("w_model").value == model_ids[:8] and at.get_by_key("w_gpu").value == gpu_ids[:12]
    warnings = shown_all(at.warning.values)
    assert any(w.startswith("At most 8 models per view: left out 2 (") for w in warnings), warnings
    assert any(w.startswith("At most 12 devices per view: left out 2 (") for w in warnings), warnings
    verdicts = [m for m in markdown_lines(at) if m.startswith(("✅ ", "❌ "))]
    assert len(verdicts) == 8 * 12


def test_more_than_8_parameter_counts_are_cut_to_8_with_a_warning():
    at = page(src="params", params="1B 2B 3B 4B 5B 6B 7B 8B 9B 10B", gpu=["rtx-4090"])
    assert any(w.startswith("At most 8 models per view: left out 2 (9B parameters, 10B parameters)")
               for w in shown_all(at.warning.values))


def test_a_link_reads_comma_separated_precisions_and_all_like_the_cli():
    at = page(prec="fp16,int8,int4,Q4_K_M")
    assert not at.exception and not at.warning
    assert at.get_by_key("w_prec").value == ["fp16", "int8", "int4", "Q4_K_M"]
    from core.sizing.precisions import PRECISIONS

    at = page(prec="all")
    assert not at.warning and at.get_by_key("w_prec").value == [p.name for p in PRECISIONS]


def test_one_unknown_precision_in_a_link_keeps_the_good_ones_and_names_the_bad_one():
    at = page(prec=["ZZZ,fp16", "Q4_K_M"])
    assert at.get_by_key("w_prec").value == ["fp16", "Q4_K_M"]
    assert shown_all(at.warning.values) == ["Ignored prec=ZZZ in the link (unknown precision; kept fp16, Q4_K_M)."]


def test_a_model_without_a_trained_context_beside_one_with_it_draws_a_dash_without_pandas_warnings():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        at = page(model=["tiiuae/falcon-7b", "meta-llama/Llama-3.1-8B"], ctx="4096")  # falcon-7b: no trained context
    assert not at.exception
    summary = next(t for t in at.table if "Trained context" in t.value.columns)
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    shown_cells = convert_arrow_bytes_to_pandas_df(summary.proto.arrow_data.styler.display_values)
    assert shown_cells["Trained context"].tolist() == ["—", "131,072"]
    noisy = [str(w.message) for w in caught if "fillna" in str(w.message) or "incompatible dtype" in str(w.message)
             or "will raise" in str(w.message)]
    assert noisy == []


def test_lora_of_8b_at_8k_with_batch_4_on_a_4090_says_not_even_batch_1_fits():
    at = page(model=["meta-llama/Llama-3.1-8B"], mode="lora", ctx="8k", batch="4", gpu=["rtx-4090"])
    assert not at.exception
    line = next(m for m in markdown_lines(at) if "on NVIDIA GeForce RTX 4090" in m)
    assert "largest batch at 8,192 tokens: 0" not in line
    assert "not even batch 1 at 8,192 tokens fits" in line


def test_a_2_mb_config_upload_is_refused_in_a_sentence_that_states_the_1_mb_limit():
    at = page(src="config")
    uploader = at.file_uploader(key="w_upload")
    assert "at most 1 MB" in uploader.label
    big = b'{"model_type": "llama", "pad": "' + b"x" * 2_000_000 + b'"}'
    uploader.set_value(("config.json", big, "application/json")).run()
    assert not at.exception
    assert shown_all(at.error.values) == [
        "This file is 2.0 MB; a config.json may be at most 1 MB (a real one is a few kB: upload the model's "
        "config.json, not its weights). [config_too_large]"]


def test_the_detail_table_of_a_bare_parameter_count_says_its_kv_cache_is_not_counted():
    from tests.app.test_calculator_page import table_with

    at = page(src="params", params="70B", ctx="128k", gpu=["h100-sxm-80gb"], prec=["Q8_0"])
    details = table_with(at, "Free GB per card")
    assert details["Fits"].tolist() == ["yes (KV not counted)"]
