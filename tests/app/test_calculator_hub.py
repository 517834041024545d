"""The calculator's "Hugging Face id or URL" way in, as a user drives it (AppTest) against the local Hub."""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from bench._shared import hub_server as hs
from tests.app.test_calculator_page import table_with  # grids and plain tables alike

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "calculator.py")



def shown(values) -> list[str]:
    """What the user reads: the Markdown escapes pages/text.plain() adds to echoed values removed."""
    return [re.sub(r"\\(.)", r"\1", str(v)).replace("\u2060", "") for v in values]

def page(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()




def url_list(at: AppTest, key: str) -> list[str]:
    value = at.query_params[key]
    return value if isinstance(value, list) else [value]


def test_a_link_with_hf_sizes_that_repo_in_its_own_format_with_predicted_next_to_published(local_hub):
    at = page(hf="big/llama-8b", prec=["fp16", "int4"], ctx="8192")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.radio(key="w_src").value == "hf"
    memory = table_with(at, "Total GiB")
    assert list(memory["Model"].unique()) == ["big/llama-8b"]
    assert list(memory["Precision"]) == ["BF16", "FP16", "INT4"]
    assert memory["Weights GB"].iloc[0] == 2 * 8_030_261_248 / 1e9
    checks = table_with(at, "Published GB")
    weights = checks[checks["Check"].str.startswith("Weights")].iloc[0]
    assert weights["Predicted GB"] == weights["Published GB"]


def test_typing_an_id_and_a_gguf_link_gives_both_side_by_side_and_a_shareable_link(local_hub):
    at = page(src="hf")
    assert not at.exception
    at.text_area(key="w_hf").set_value(
        "tiny/llama\nhttps://huggingface.co/tiny/llama-GGUF/blob/main/tiny-llama-Q8_0.gguf").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    memory = table_with(at, "Total GiB")
    assert list(memory["Model"].unique()) == ["tiny/llama", "tiny/llama-GGUF (tiny-llama-Q8_0.gguf)"]
    files = table_with(at, "GGUF file")
    assert set(files["GGUF file"]) == {"tiny-llama-Q8_0.gguf", "split/tiny-llama-Q8_0-00001-of-00002.gguf"}
    assert url_list(at, "hf") == ["tiny/llama", "https://huggingface.co/tiny/llama-GGUF/blob/main/tiny-llama-Q8_0.gguf"]


def test_a_file_link_round_trips_through_hf_rev_and_file(local_hub):
    at = page(hf="tiny/llama-GGUF", file="tiny-llama-Q8_0.gguf")
    assert not at.exception and not at.error
    assert at.query_params["hf"] == "tiny/llama-GGUF" or url_list(at, "hf") == ["tiny/llama-GGUF"]
    assert at.query_params["file"] == "tiny-llama-Q8_0.gguf"
    assert "GGUF Q8_0" in list(table_with(at, "Total GiB")["Precision"])


def test_a_gated_model_says_what_to_do_and_the_token_form_sizes_it_without_keeping_the_token(local_hub):
    at = page(hf="gated/llama")
    assert any("[hub_gated]" in e for e in shown(e.value for e in at.error))
    token_box = next(t for t in at.text_input if "Read token" in t.label)
    token_box.input(hs.TOKEN)
    next(b for b in at.button if "token" in b.label.lower()).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert list(table_with(at, "Total GiB")["Model"].unique()) == ["gated/llama"]
    assert all(hs.TOKEN not in str(v) for v in at.query_params.values())
    assert hs.TOKEN not in repr({k: at.session_state[k] for k in at.session_state})
    assert next(t for t in at.text_input if "Read token" in t.label).value == ""  # the form cleared it
    # a rerun (another context) needs neither the token nor a request
    local_hub.reset_log()
    at.text_input(key="w_ctx").set_value("2048").run()
    assert not at.error and local_hub.requests == 0


def test_a_bad_id_in_the_link_is_a_warning_not_an_exception(local_hub):
    at = page(hf="https://evil.example/x/y")
    assert not at.exception
    assert any("Ignored hf=" in w for w in shown(w.value for w in at.warning))
    assert local_hub.requests == 0
