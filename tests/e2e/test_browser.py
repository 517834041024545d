"""QuantLens in a real browser: Debian's Chromium, driven by Playwright, against a real `streamlit run app.py`.

Each test is what a visitor does: open a link, change an input, run the demo, upload a model. Screenshots of each
page are saved to test-artifacts/screenshots/ (the README's screenshot is made from them).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import assert_no_exception, save_screenshot, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PARAMS_LABEL = "Parameter counts, separated by spaces (7B 70B, 1.5e9, 350M)"


def query(pg) -> dict[str, list[str]]:
    return parse_qs(urlsplit(pg.url).query)


TABLES = "[data-testid='stDataFrame'], [data-testid='stTable']"


def grid_cells(pg, index: int) -> list[str]:
    """Text of a table's cells (st.table's HTML table, or the accessible <table> a dataframe keeps beside its canvas)."""
    return pg.locator(TABLES).nth(index).locator("td").all_text_contents()


def memory_table_cells(pg, containing: tuple[str, ...] = (), timeout_s: float = 90.0) -> list[str]:
    """Cells of the calculator's memory table, waiting (rendering is incremental) until they hold `containing`."""
    deadline = time.monotonic() + timeout_s
    cells: list[str] = []
    while time.monotonic() < deadline:
        frames = pg.locator(TABLES)
        for i in range(frames.count()):
            if "Total GB" in frames.nth(i).locator("th").all_text_contents():
                cells = grid_cells(pg, i)
                if cells and all(c in cells for c in containing):
                    return cells
        pg.wait_for_timeout(250)
    raise AssertionError(f"the memory table never showed {containing}; last seen: {cells[:40]}")


def test_home_page_tells_the_story_and_links_to_both_tools(page, server_url):
    page.goto(server_url)
    wait_for_app(page)
    expect(page.get_by_role("heading", name="QuantLens")).to_be_visible()
    expect(page.get_by_text("does not fit a 24 GB card").first).to_be_visible()
    expect(page.get_by_text("Open the calculator")).to_be_visible()
    expect(page.get_by_text("See the demo results")).to_be_visible()
    assert_no_exception(page)
    save_screenshot(page, "home")


def test_a_shared_link_as_the_first_visit_to_a_fresh_server_gets_the_whole_app(browser, fresh_server_url):
    """Streamlit would serve pages/calculator.py on its own here (no navigation bar) without pages/routing.py."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    try:
        pg.goto(f"{fresh_server_url}/calculator?src=params&params=13B")
        expect(pg.get_by_role("link", name="Quantize & compare")).to_be_visible(timeout=30_000)
        expect(pg.get_by_label(PARAMS_LABEL)).to_have_value("13B")
        assert_no_exception(pg)
    finally:
        context.close()


def test_the_calculator_opens_on_a_real_model_with_its_fit_matrix(page, server_url):
    page.goto(f"{server_url}/calculator")
    wait_for_app(page)
    memory_table_cells(page, containing=("Llama 3.1 8B", "GGUF Q4_K_M"))
    expect(page.get_by_role("heading", name=re.compile("Does it fit"))).to_be_visible()
    assert query(page)["model"] == ["meta-llama/Llama-3.1-8B"]  # the default state is a link too
    assert_no_exception(page)
    save_screenshot(page, "calculator-default")


def test_calculator_input_changes_the_table_and_the_url(page, server_url):
    page.goto(f"{server_url}/calculator?src=params&params=7B&prec=fp16&prec=int4&ctx=0")
    wait_for_app(page)
    memory_table_cells(page, containing=("7B parameters", "14.00", "3.50"))  # 7B: 14 GB at FP16, 3.5 GB at INT4

    box = page.get_by_label(PARAMS_LABEL)
    box.fill("70B")
    box.press("Enter")
    page.wait_for_function("() => location.search.includes('params=70B')")
    wait_for_app(page)
    memory_table_cells(page, containing=("70B parameters", "140.00", "35.00"))
    assert query(page)["params"] == ["70B"]
    assert_no_exception(page)
    save_screenshot(page, "calculator")


def test_a_shared_calculator_link_restores_the_same_state(page, server_url):
    link = (f"{server_url}/calculator?src=params&params=13B&prec=int8&prec=Q4_K_M&ctx=8192&batch=2"
            "&kv=fp8&rt=vllm&gpu=rtx-4090")
    page.goto(link)
    wait_for_app(page)
    expect(page.get_by_label(PARAMS_LABEL)).to_have_value("13B")
    expect(page.get_by_label("Context (tokens; 0 = weights only)")).to_have_value("8192")
    expect(page.get_by_label("Batch (sequences)")).to_have_value("2")
    restored = query(page)
    assert restored["prec"] == ["int8", "Q4_K_M"]
    assert restored["kv"] == ["fp8"] and restored["rt"] == ["vllm"] and restored["gpu"] == ["rtx-4090"]
    cells = memory_table_cells(page, containing=("INT8",))
    assert "INT8" in cells and "GGUF Q4_K_M" in cells and "FP16" not in cells

    # the copy-link affordance shows this very state
    page.get_by_text("Copy link to this view").click()
    # the link's own code block (the page also shows launch commands in code blocks)
    link_code = page.locator("[data-testid='stCode']").filter(has_text="/calculator?").first
    expect(link_code).to_be_visible()
    shown = link_code.inner_text()
    assert "params=13B" in shown and "kv=fp8" in shown
    assert_no_exception(page)


def test_a_bad_value_in_a_link_is_a_warning_not_an_exception(page, server_url):
    page.goto(f"{server_url}/calculator?src=params&params=lots&ctx=-5")
    wait_for_app(page)
    expect(page.get_by_role("alert").filter(has_text="params=lots").first).to_be_visible()
    assert_no_exception(page)


def test_the_demo_link_runs_the_comparison_and_shows_results(page, server_url):
    page.goto(f"{server_url}/compare?demo=1&run=1")
    page.get_by_text("Quality on your inputs").wait_for(timeout=240_000)
    wait_for_app(page, timeout_ms=240_000)
    expect(page.get_by_role("heading", name=re.compile("Results: "))).to_be_visible()
    expect(page.get_by_role("button", name="Report (JSON)")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name=re.compile(r"INT8")).first).to_be_visible()  # the INT8 model's download
    assert_no_exception(page)
    save_screenshot(page, "compare-demo")


def _tiny_onnx(path: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _choose_upload(page, server_url) -> None:
    page.goto(f"{server_url}/compare")
    wait_for_app(page)
    page.get_by_text("Upload a model (.onnx or .zip of a HF folder)").click()
    wait_for_app(page)


def test_an_uploaded_small_onnx_model_is_quantized_and_compared(page, server_url, tmp_path):
    _choose_upload(page, server_url)
    model = _tiny_onnx(tmp_path / "tiny.onnx")
    page.locator("[data-testid='stFileUploader']").first.locator("input[type=file]").set_input_files(str(model))
    page.get_by_text("tiny.onnx").wait_for()
    wait_for_app(page)
    page.get_by_role("button", name="Run").click()
    page.get_by_text("Quality on your inputs").wait_for(timeout=180_000)
    wait_for_app(page, timeout_ms=180_000)
    assert_no_exception(page)
    save_screenshot(page, "compare-upload")


def test_a_bad_upload_shows_one_clear_error(page, server_url, tmp_path):
    _choose_upload(page, server_url)
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"this is not a model at all, just text pretending" * 20)
    page.locator("[data-testid='stFileUploader']").first.locator("input[type=file]").set_input_files(str(bogus))
    # refused on arrival (the gate runs when the file lands), before anyone presses Run
    alert = page.locator("[data-testid='stAlertContentError']").first
    alert.wait_for(timeout=60_000)
    wait_for_app(page)
    message = alert.inner_text()
    assert "model.onnx was refused" in message and "[invalid_onnx]" in message, message  # stable error code
    assert "Traceback" not in page.content()
    assert_no_exception(page)
    save_screenshot(page, "compare-bad-upload")
