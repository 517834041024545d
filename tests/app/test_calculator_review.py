"""The calculator page as a new user drove it in the browser review: what each answer says (AppTest, no browser)."""

from tests.app.test_calculator_page import markdown_lines, page


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
