"""Issue 18's contradictions, in Chromium at 1400 and 390 px: answers that hold on the runtime the user runs.

Every wait is for a condition (Playwright's expect / wait_for_function), never a fixed time.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import assert_no_exception, save_screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
WIDTHS = [1400, 390]


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def sized(request, browser, server_url):
    width = request.param
    context = browser.new_context(viewport={"width": width, "height": 1000 if width > 400 else 844},
                                  is_mobile=width < 400)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg, width
    context.close()


def fits_width(pg, locator, width: int) -> None:
    box = locator.bounding_box()
    assert box and box["x"] >= -1 and box["x"] + box["width"] <= width + 1, box


def test_deepseek_v3_on_8_h100_under_llama_cpp_answers_with_a_gguf_and_greys_out_fp8(sized, server_url):
    pg, width = sized
    pg.goto(f"{server_url}/calculator?model=deepseek-ai/DeepSeek-V3&gpu=h100-sxm-80gb&cards=8"
            "&prec=FP8-SCALED&prec=int8&prec=Q4_K_M")
    verdict = pg.get_by_text(re.compile(r"DeepSeek V3 on 8× NVIDIA H100 SXM 80GB: yes — GGUF Q4_K_M fits"))
    expect(verdict).to_be_visible(timeout=90_000)
    expect(pg.get_by_text(re.compile(r"DeepSeek V3 on 8× .*(INT8|FP8) fits"))).to_have_count(0)
    expect(pg.get_by_text("⛔ llama.cpp cannot load it").first).to_be_attached()
    fits_width(pg, verdict, width)
    assert_no_exception(pg)


def test_vllm_8b_with_16_requests_of_8k_does_not_fit_a_4090_and_says_so(sized, server_url):
    pg, width = sized
    pg.goto(f"{server_url}/calculator?model=meta-llama/Llama-3.1-8B&gpu=rtx-4090&rt=vllm&ctx=8192&batch=16")
    verdict = pg.get_by_text(re.compile(r"Llama 3\.1 8B on NVIDIA GeForce RTX 4090: no"))
    expect(verdict).to_be_visible(timeout=90_000)
    expect(verdict).to_contain_text("16 concurrent requests × 8k context")
    expect(verdict).not_to_contain_text("GGUF")
    expect(pg.get_by_text(re.compile(r"Llama 3\.1 8B, 8k context × 16 concurrent requests"))).to_be_visible()
    fits_width(pg, verdict, width)
    assert_no_exception(pg)


def test_two_cards_give_one_answer_in_the_verdict_the_matrix_and_the_table(sized, server_url):
    pg, width = sized
    pg.goto(f"{server_url}/calculator?model=meta-llama/Llama-3.1-70B&gpu=rtx-4090&cards=2&prec=Q4_K_M")
    verdict = pg.get_by_text(re.compile(r"Llama 3\.1 70B on 2× NVIDIA GeForce RTX 4090: yes .*split over 2 cards"))
    expect(verdict).to_be_visible(timeout=90_000)
    expect(pg.get_by_text(re.compile(r"^✅ on 2 cards, [0-9.]+ GB free each$")).first).to_be_attached()
    expect(pg.get_by_role("cell", name="yes, 2 cards").first).to_be_attached()
    expect(pg.get_by_role("cell", name=re.compile(r"^-"))).to_have_count(0)  # no negative free GB left anywhere
    assert_no_exception(pg)


def test_70b_on_one_4090_offers_offload_and_a_command_to_copy(sized, server_url):
    pg, width = sized
    pg.goto(f"{server_url}/calculator?model=meta-llama/Llama-3.1-70B&gpu=rtx-4090&prec=Q4_K_M&ctx=8192")
    verdict = pg.get_by_text(re.compile(r"Llama 3\.1 70B on NVIDIA GeForce RTX 4090: no .*-ngl \d+ puts"))
    expect(verdict).to_be_visible(timeout=90_000)
    code = pg.locator("[data-testid='stCode']").filter(has_text=re.compile(r"llama-server -hf .* -ngl \d+")).first
    code.scroll_into_view_if_needed()
    expect(code).to_be_visible()
    fits_width(pg, code, width)
    assert_no_exception(pg)


def test_several_models_get_every_answer_and_the_charts_stay_on_screen(sized, server_url):
    pg, width = sized
    pg.goto(f"{server_url}/calculator?model=meta-llama/Llama-3.1-8B&model=meta-llama/Llama-3.1-70B"
            "&model=Qwen/Qwen2.5-32B&gpu=rtx-4090&prec=Q4_K_M&prec=Q8_0")
    expect(pg.get_by_text(re.compile(r"Qwen2\.5 32B on NVIDIA GeForce RTX 4090: "))).to_be_visible(timeout=90_000)
    for name in ("Llama 3.1 8B", "Llama 3.1 70B", "Qwen2.5 32B"):  # every model has its own detail rows
        expect(pg.get_by_role("cell", name=name, exact=True).first).to_be_attached()
    charts = pg.locator("[data-testid='stVegaLiteChart']")
    expect(charts.first).to_be_visible()
    pg.wait_for_function("() => document.querySelectorAll('[data-testid=\"stVegaLiteChart\"] svg, "
                         "[data-testid=\"stVegaLiteChart\"] canvas').length >= 2")
    for i in range(charts.count()):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed()
        fits_width(pg, chart, width)
    assert pg.evaluate("() => document.documentElement.scrollWidth") <= width + 1
    save_screenshot(pg, f"calculator-three-models-{width}px")
    assert_no_exception(pg)
