"""The "Memory against context" chart is readable at 1400 and 390 px (browser review): the plot keeps its own
height whatever the legend holds, legends sit outside the plot, and the cards' labels do not overlap.

Every wait is for a condition (Playwright's expect / wait_for_function), never a fixed time.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import assert_no_exception, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Geometry of the last chart on the page (memory against context), relative to the chart: the plot frame (the
# largest background rectangle), every legend's box and every text mark's box (the cards' labels).
GEOMETRY = """() => {
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  const ch = charts[charts.length - 1];
  const box = e => { const b = e.getBoundingClientRect(); return {x: b.x, y: b.y, w: b.width, h: b.height}; };
  const frames = [...ch.querySelectorAll('path.background')].map(box).filter(b => b.w > 0 && b.h > 0);
  const legends = [...ch.querySelectorAll('g.role-legend')].map(box);
  frames.sort((a, b) => b.w * b.h - a.w * a.h);
  const plot = frames.find(f => !legends.some(l => f.y >= l.y - 1 && f.y + f.h <= l.y + l.h + 1));
  const labels = [...ch.querySelectorAll('g.role-mark text')].map(t => ({text: t.textContent, ...box(t)}));
  return {plot, legends, labels};
}"""


def _overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


@pytest.mark.parametrize("width", [1400, 390])
@pytest.mark.parametrize("query", ["", "?model=meta-llama/Llama-3.1-8B&model=Qwen/Qwen3-30B-A3B&ctx=32k"],
                         ids=["defaults", "two-models"])
def test_memory_against_context_keeps_a_tall_plot_with_legends_and_card_labels_apart(browser, server_url, width, query):
    context = browser.new_context(viewport={"width": width, "height": 1000 if width > 400 else 844},
                                  is_mobile=width < 400)
    pg = context.new_page()
    pg.set_default_timeout(90_000)
    try:
        pg.goto(f"{server_url}/calculator{query}")
        wait_for_app(pg, 120_000)
        pg.wait_for_function("() => document.querySelectorAll('[data-testid=\"stVegaLiteChart\"] g.role-legend')"
                             ".length >= 2")
        pg.locator("[data-testid='stVegaLiteChart']").last.scroll_into_view_if_needed()
        pg.wait_for_function(f"() => {{ const g = ({GEOMETRY})(); return g.plot && g.labels.length >= 4; }}")
        g = pg.evaluate(GEOMETRY)
        assert g["plot"]["h"] >= 250, g["plot"]  # was ~10 px with seven precisions in the legend
        for legend in g["legends"]:
            assert not _overlap(legend, g["plot"]), (legend, g["plot"])
            assert legend["x"] + legend["w"] <= width + 1, legend  # on screen, not pushed off the right edge
        labels = g["labels"]
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                assert not _overlap(a, b), (a, b)
        assert_no_exception(pg)
    finally:
        context.close()


def test_on_a_390_px_phone_what_quantizing_costs_fits_and_the_fit_matrix_wraps_inside_its_own_box(browser, server_url):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    pg = context.new_page()
    pg.set_default_timeout(90_000)
    try:
        pg.goto(f"{server_url}/calculator")
        wait_for_app(pg, 120_000)
        quality = pg.locator("[data-testid='stTable']").filter(has_text="What it is")
        quality.scroll_into_view_if_needed()
        widths = pg.evaluate("""() => [...document.querySelectorAll('[data-testid="stTableStyledTable"]')].map(t => ({
            head: t.querySelector('th') ? [...t.querySelectorAll('th')].map(h => h.textContent).join('|') : '',
            width: t.getBoundingClientRect().width}))""")
        costs = next(w for w in widths if "What it is" in w["head"])
        assert costs["width"] <= 390 - 16, costs  # no Source column pushing it off the screen
        matrix = next(w for w in widths if "GGUF Q4_K_M" in w["head"] and "Hardware" in w["head"]
                      and "Fits" not in w["head"])
        assert matrix["width"] <= 2 * 390, matrix  # cells wrap; the rest scrolls inside the table's own box
        assert pg.evaluate("() => document.documentElement.scrollWidth") <= 390 + 1
        assert_no_exception(pg)
    finally:
        context.close()
