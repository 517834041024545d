"""Mixed cards on the calculator page: an RTX 4090 and an RTX 3060 12GB used together (link key mixed=)."""

from streamlit.testing.v1 import AppTest

from tests.app.test_calculator_page import PAGE, markdown_lines, page


def test_a_4090_and_a_3060_together_fit_32b_at_q6_k_which_the_4090_alone_cannot():
    at = page(model=["Qwen/Qwen2.5-32B"], gpu=["rtx-4090"], prec=["Q8_0", "Q6_K"], ctx="8192",
              mixed="rtx-4090+rtx-3060-12gb")
    assert not at.exception and not at.error
    assert at.multiselect(key="w_mixed").value == ["rtx-4090", "rtx-3060-12gb"]
    line = next(m for m in markdown_lines(at) if "together:" in m)
    assert line.startswith("✅ Qwen2.5 32B on NVIDIA GeForce RTX 4090 + NVIDIA GeForce RTX 3060 12GB together: yes")
    assert "GGUF Q6_K fits with 8k context in llama.cpp" in line and "-ts " in line
    assert any(c.value.startswith("llama-server -hf ") and "-ngl 65 -ts " in c.value and "-c 8192" in c.value
               for c in at.code)
    # the one-card verdict above it still says no: 4090 alone is not the pair
    assert any(m.startswith("❌ Qwen2.5 32B on NVIDIA GeForce RTX 4090: no") for m in markdown_lines(at))


def test_picking_the_cards_puts_them_in_the_link_and_a_bad_id_is_a_warning():
    at = page(model=["meta-llama/Llama-3.1-8B"], gpu=["rtx-4090"], prec=["fp16"], ctx="8192", rt="vllm")
    assert not any("together:" in m for m in markdown_lines(at))
    at.multiselect(key="w_mixed").set_value(["rtx-4090", "rtx-3060-12gb"]).run()
    mixed = at.query_params["mixed"]
    assert (mixed if isinstance(mixed, list) else [mixed]) == ["rtx-4090", "rtx-3060-12gb"]
    line = next(m for m in markdown_lines(at) if "together:" in m)
    assert "tensor parallel 2" in line and "smallest card" in line
    assert any(c.value.startswith("vllm serve meta-llama/Llama-3.1-8B") and " -tp 2 " in c.value for c in at.code)
    bad = AppTest.from_file(PAGE, default_timeout=60)
    bad.query_params["mixed"] = "rtx-4090+nope"
    bad.run()
    assert any("Ignored mixed=" in w.value and "not a GPU" in w.value for w in bad.warning)
    assert bad.multiselect(key="w_mixed").value == []
