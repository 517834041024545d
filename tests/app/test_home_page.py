"""The home page a visitor lands on (Streamlit AppTest)."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def test_home_page_shows_the_seed_memory_table_from_the_engine():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.columns) == ["FP16", "INT8", "INT4"]
    assert table.loc["7B parameters"].tolist() == [14.0, 7.0, 3.5]
    assert table.loc["70B parameters"].tolist() == [140.0, 70.0, 35.0]


def test_home_page_says_70b_at_int4_does_not_fit_a_24gb_card():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert any("does not fit a 24 GB card" in w.value for w in at.warning)


def test_home_page_explains_the_terms_people_confuse():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    text = " ".join(m.value for m in at.markdown)
    for term in ("PTQ vs QAT", "Quantization vs distillation", "GGUF vs AWQ vs GPTQ"):
        assert term in text


def test_app_router_starts_on_the_home_page_without_heavy_imports():
    """The router and home page must not import torch/onnxruntime: first load stays fast."""
    import subprocess
    import sys

    code = (
        "import sys; from streamlit.testing.v1 import AppTest; "
        f"at = AppTest.from_file({str(ROOT / 'app.py')!r}, default_timeout=30).run(); "
        "assert not at.exception, at.exception; assert at.title[0].value == 'QuantLens'; "
        "heavy = [m for m in ('torch', 'onnxruntime', 'transformers', 'optimum') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
