"""Accessibility basics in a real browser: readable contrast in light and dark, keyboard use, charts with text."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import assert_no_exception, save_screenshot, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONTRAST_JS = """
() => {
  const parse = c => (c.match(/[\\d.]+/g) || []).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const bg = parse(getComputedStyle(document.querySelector('[data-testid="stApp"]')).backgroundColor);
  const texts = [...document.querySelectorAll('[data-testid="stMarkdownContainer"] p')].slice(0, 20);
  return texts.map(p => {
    const fg = parse(getComputedStyle(p).color);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    return {text: p.innerText.slice(0, 40), ratio: (a + 0.05) / (b + 0.05), bg: bg};
  });
}
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_body_text_is_readable_in_light_and_dark_themes(browser, server_url, scheme):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=scheme)
    pg = context.new_page()
    try:
        pg.goto(server_url)
        wait_for_app(pg)
        pg.get_by_text("Quantization buys memory").wait_for()
        samples = pg.evaluate(CONTRAST_JS)
        assert samples, "no body text found"
        background_is_dark = sum(samples[0]["bg"]) / 3 < 128
        assert background_is_dark == (scheme == "dark"), f"the {scheme} system setting was not followed"
        worst = min(samples, key=lambda s: s["ratio"])
        assert worst["ratio"] >= 4.5, f"contrast {worst['ratio']:.2f}:1 for {worst['text']!r} in the {scheme} theme"
        assert_no_exception(pg)
        save_screenshot(pg, f"home-{scheme}")
    finally:
        context.close()


def test_the_calculator_can_be_driven_from_the_keyboard(page, server_url):
    page.goto(f"{server_url}/calculator?src=params&params=7B&prec=fp16&ctx=0")
    wait_for_app(page)
    box = page.get_by_label("Parameter counts, separated by spaces (7B 70B, 1.5e9, 350M)")
    box.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("13B")
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.search.includes('params=13B')")
    # Tab moves focus on to the next control rather than getting stuck
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement && document.activeElement.tagName")
    assert focused in {"INPUT", "BUTTON", "TEXTAREA", "DIV", "A", "LABEL", "SPAN"}
    assert page.evaluate("() => document.activeElement !== document.body")
    assert_no_exception(page)


def test_every_chart_has_its_numbers_as_a_table_beside_it(page, server_url):
    page.goto(f"{server_url}/calculator")
    wait_for_app(page)
    # wait until both charts have rendered and at least as many tables stand beside them (rendering is incremental)
    expect(page.locator("[data-testid='stVegaLiteChart']").nth(1)).to_be_visible(timeout=60_000)
    page.wait_for_function(
        """() => document.querySelectorAll('[data-testid="stDataFrame"], [data-testid="stTable"]').length
                 >= document.querySelectorAll('[data-testid="stVegaLiteChart"]').length""",
        timeout=60_000,
    )
    charts = page.locator("[data-testid='stVegaLiteChart']").count()
    tables = page.locator("[data-testid='stDataFrame'], [data-testid='stTable']").count()
    assert charts >= 2 and tables >= charts, (charts, tables)
