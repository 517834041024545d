"""Pages that answer the question, keep their state across pages, and read at any width (issue 11), in Chromium.

Every wait is for a condition (Playwright's expect / wait_for_function), never a fixed time.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import assert_no_exception, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PARAMS_LABEL = "Parameter counts, separated by spaces (7B 70B, 1.5e9, 350M)"


def nav(pg, name: str) -> None:
    pg.get_by_role("link", name=name, exact=True).first.click()
    wait_for_app(pg)


def test_compare_results_and_settings_survive_a_visit_to_the_calculator(page, server_url):
    page.goto(f"{server_url}/compare?demo=1&run=1")
    expect(page.get_by_role("heading", name=re.compile("Results: "))).to_be_visible(timeout=240_000)
    wait_for_app(page, timeout_ms=240_000)
    nav(page, "Memory calculator")
    expect(page.get_by_role("heading", name="Memory calculator")).to_be_visible()
    nav(page, "Quantize & compare")
    expect(page.get_by_role("heading", name=re.compile("Results: "))).to_be_visible(timeout=60_000)
    page.wait_for_function("() => /[?&]p=fp32/.test(location.search)")
    assert parse_qs(urlsplit(page.url).query)["p"] == ["fp32,fp16,int8,int4"]
    expect(page.locator("[data-testid='stAlertContentError']")).to_have_count(0)
    expect(page.get_by_text(re.compile(r"^Ship "))).to_be_visible()  # the recommendation is back too
    assert_no_exception(page)


def test_a_home_link_wins_over_the_calculator_values_the_session_remembers(page, server_url):
    page.goto(f"{server_url}/calculator?src=params&params=7B%2070B&gpu=rtx-4090")
    expect(page.get_by_label(PARAMS_LABEL)).to_have_value("7B 70B", timeout=60_000)
    wait_for_app(page)
    nav(page, "Home")
    page.get_by_text("Does 70B at INT4 fit an RTX 4090?").click()
    expect(page.get_by_label(PARAMS_LABEL)).to_have_value("70B", timeout=60_000)
    expect(page.get_by_text(re.compile(r"70B parameters on NVIDIA GeForce RTX 4090: no — needs 2 cards"))).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile(r"^✅ 7B parameters"))).to_have_count(0)
    assert_no_exception(page)


def test_every_selected_model_gets_its_own_verdict(page, server_url):
    page.goto(f"{server_url}/calculator?model=meta-llama/Llama-3.1-8B&model=meta-llama/Llama-3.1-70B&gpu=rtx-4090")
    expect(page.get_by_text(re.compile(r"Llama 3\.1 8B on NVIDIA GeForce RTX 4090: yes"))).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile(r"Llama 3\.1 70B on NVIDIA GeForce RTX 4090: no"))).to_be_visible()
    assert_no_exception(page)


def test_eight_h100s_is_a_question_one_can_ask(page, server_url):
    page.goto(f"{server_url}/calculator?model=deepseek-ai/DeepSeek-V3&gpu=h100-sxm-80gb&cards=8")
    expect(page.get_by_role("spinbutton", name="Cards I have (of each GPU)")).to_have_value("8", timeout=60_000)
    expect(page.get_by_text(re.compile(r"DeepSeek V3 on 8× NVIDIA H100 SXM 80GB: yes"))).to_be_visible(timeout=60_000)
    assert_no_exception(page)


def test_guessed_link_keys_work_and_a_fixed_value_clears_its_warning(page, server_url):
    page.goto(f"{server_url}/calculator?context=8192&batch=lots")
    expect(page.get_by_label("Context (tokens; 0 = weights only)")).to_have_value("8192", timeout=60_000)
    warning = page.get_by_role("alert").filter(has_text="batch=lots")
    expect(warning).to_be_visible(timeout=60_000)
    box = page.get_by_label("Batch (sequences)")
    box.fill("2")
    box.press("Enter")
    page.wait_for_function("() => location.search.includes('batch=2')")
    expect(warning).to_have_count(0, timeout=60_000)
    assert_no_exception(page)


def test_on_a_phone_the_verdict_and_totals_fit_the_screen(browser, server_url):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    pg = context.new_page()
    try:
        pg.goto(f"{server_url}/calculator?model=meta-llama/Llama-3.1-70B&gpu=rtx-4090")
        verdict = pg.get_by_text(re.compile(r"Llama 3\.1 70B on NVIDIA GeForce RTX 4090: no"))
        expect(verdict).to_be_visible(timeout=60_000)
        totals = pg.get_by_text(re.compile(r"Llama 3\.1 70B, 4k context: FP16"))
        expect(totals).to_be_visible()
        for element in (verdict, totals):
            box = element.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390 + 1, box
        assert pg.evaluate("() => document.documentElement.scrollWidth") <= 390 + 1
        assert_no_exception(pg)
    finally:
        context.close()


@pytest.mark.parametrize("path", ["/", "/calculator", "/compare"])
def test_each_page_has_exactly_one_h1(page, server_url, path):
    page.goto(server_url + path)
    wait_for_app(page)
    expect(page.locator("h1")).to_have_count(1)


def test_a_skip_link_leads_to_the_verdict(page, server_url):
    page.goto(f"{server_url}/calculator?gpu=rtx-4090")
    skip = page.get_by_role("link", name="Skip to the answer")
    expect(skip).to_have_attribute("href", re.compile("#the-answer$"))
    expect(page.locator("#the-answer")).to_have_count(1)


def test_enter_in_the_model_picker_adds_only_the_highlighted_model(page, server_url):
    page.goto(f"{server_url}/calculator")
    wait_for_app(page)
    box = page.get_by_label(re.compile(r"^Catalog models")).and_(page.locator("input"))
    box.click()
    box.fill("mistral 7")
    expect(page.get_by_role("option", name=re.compile("Mistral 7B v0.1"))).to_be_visible()
    box.press("Enter")
    page.wait_for_function("() => location.search.includes('Mistral-7B')")
    wait_for_app(page)
    assert parse_qs(urlsplit(page.url).query)["model"] == ["meta-llama/Llama-3.1-8B", "mistralai/Mistral-7B-v0.1"]


@pytest.mark.parametrize("width", [1280, 1400])
def test_the_fit_table_and_hardware_chips_are_not_cut_off_on_a_laptop(browser, server_url, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    pg = context.new_page()
    try:
        pg.goto(f"{server_url}/calculator?model=meta-llama/Llama-3.1-70B&model=meta-llama/Llama-3.1-8B")
        expect(pg.get_by_role("heading", name=re.compile("Does it fit"))).to_be_visible(timeout=60_000)
        wait_for_app(pg)
        clipped = pg.evaluate("""() => [...document.querySelectorAll('[data-testid="stTable"]')]
            .filter(t => t.scrollWidth > t.clientWidth + 1).length""")
        assert clipped == 0, f"{clipped} table(s) scroll sideways at {width} px"
        chips = pg.locator("[data-testid='stMultiSelect'] [data-tag]")
        expect(chips.filter(has_text="NVIDIA H100 SXM 80GB")).to_be_visible()
        truncated = pg.evaluate("""() => [...document.querySelectorAll('[data-testid="stMultiSelect"] [data-tag] span[title]')]
            .filter(s => s.scrollWidth > s.clientWidth + 1).map(s => s.textContent)""")
        assert truncated == [], truncated
    finally:
        context.close()


def test_a_focused_table_shows_a_focus_ring(page, server_url):
    # the default view's tables are plain HTML (st.table); a training mode still draws interactive grids
    page.goto(f"{server_url}/calculator?mode=lora")
    wait_for_app(page)
    grid = page.locator("[data-testid='stDataFrame']").first
    expect(grid).to_be_visible(timeout=60_000)
    # focus the grid's cell area and wait for the ring: a rerun may redraw the grid and drop focus, so focus
    # again on each poll until the condition holds (a busy machine only makes this take longer)
    page.wait_for_function(
        """() => {
            const grid = document.querySelector('[data-testid="stDataFrame"]');
            if (!grid) return false;
            const target = grid.querySelector('[tabindex]');
            if (target && !grid.contains(document.activeElement)) target.focus();
            const s = getComputedStyle(grid);
            return s.outlineStyle === 'solid' && s.outlineWidth !== '0px';
        }""",
        polling=250,
        timeout=60_000,
    )
    style = grid.evaluate("e => getComputedStyle(e).outlineStyle + ' ' + getComputedStyle(e).outlineWidth")
    assert style.startswith("solid") and not style.endswith(" 0px"), style
