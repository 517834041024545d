"""The compare page's p= list in a link: one bad entry keeps the good ones and is named (browser review)."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.app.test_calculator_page import shown

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "compare.py")


def _open(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params.update(query)
    return at.run()


def test_an_unknown_precision_in_p_keeps_the_good_ones_and_names_the_bad_one():
    at = _open(p="ZZZ,fp16")
    assert not at.exception
    assert at.multiselect(key="cmp_precisions").value == ["fp16"]
    assert any("p=ZZZ (kept fp16)" in shown(w.value) for w in at.warning)


def test_p_all_picks_every_precision():
    from core.compare.common.settings import PRECISIONS

    at = _open(p="all")
    assert not at.warning and at.multiselect(key="cmp_precisions").value == list(PRECISIONS)


def test_a_demo_flag_that_is_not_yes_or_no_is_named():
    at = _open(demo="maybe")
    assert any("demo='maybe' (use demo=1)" in shown(w.value) for w in at.warning)
