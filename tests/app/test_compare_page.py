"""The compare page as a user meets it (Streamlit AppTest): defaults, the demo link, an upload, bad links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bench._shared.onnx_models import build_gemm_relu_onnx

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "compare.py")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_page_opens_on_the_demo_with_default_settings_and_runs_nothing():
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception
    assert at.radio(key="cmp_src").value == "demo"
    assert at.multiselect(key="cmp_precisions").value == ["fp32", "fp16", "int8", "int4"]
    assert at.radio(key="cmp_ref").value == "fp16"
    assert "Run" in [b.label for b in at.button]
    assert any("press **Run**" in i.value for i in at.info)
    assert at.query_params["src"] == "demo" and at.query_params["bs"] == "128"


def test_a_link_sets_the_options_and_bad_values_are_reset_with_a_warning():
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params.update({"p": "int8,int4", "ref": "fp32", "bs": "64", "al": "9"})
    at.run()
    assert not at.exception
    assert at.multiselect(key="cmp_precisions").value == ["int8", "int4"]
    assert at.radio(key="cmp_ref").value == "fp32" and at.selectbox(key="cmp_bs").value == 64
    assert at.selectbox(key="cmp_al").value == 4
    assert any("al='9'" in w.value for w in at.warning)


def test_link_values_are_shown_as_plain_text_never_as_markdown():
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params["p"] = "[click](javascript:alert(1))"
    at.run()
    warning = next(w.value for w in at.warning if "not valid" in w.value)
    # escaped, and a word joiner after the colon so no autolinker sees a scheme (pages/text.py)
    assert "\\[click\\]\\(javascript\\:\u2060alert\\(1\\)\\)" in warning


def test_upload_choice_without_a_file_says_what_to_do():
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    at.radio(key="cmp_src").set_value("upload").run()
    at.button[0].click().run()
    assert any("Upload a model first" in e.value for e in at.error)


@pytest.mark.slow
def test_uploaded_onnx_model_is_quantized_compared_and_offered_for_download(tmp_path):
    model = build_gemm_relu_onnx(tmp_path / "m.onnx").read_bytes()
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params.update({"src": "upload", "p": "fp32,int8,int4", "ref": "fp32", "runs": "3"})
    at.run()
    at.file_uploader(key="cmp_model_file").upload("../../evil name.onnx", model)
    at.run()
    at.button[0].click().run(timeout=240)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table["Precision"]) == ["FP32 (reference)", "INT8 dynamic", "INT4 weight-only (mixed 4/8-bit)"]
    assert "labels kept" in table.columns  # the metric guessed from its [batch, 16] Gemm output (class-logits)
    assert any("generated" in w.value for w in at.warning)
    labels = [b.label for b in at.get("download_button")]
    assert any(label.startswith("INT4 .onnx") for label in labels) and "Report (JSON)" in labels
    # a chart control reruns only its fragment: the results stay, nothing is recomputed
    key_before = at.session_state["cmp_last_key"]
    at.radio(key="cmp_chart_latency").set_value("p95 (ms)").run()
    assert at.session_state["cmp_last_key"] == key_before and len(at.session_state["cmp_results"]) == 1


@pytest.mark.parametrize("content, code", [(b"\x80\x04K\x01.", "unsafe_format_pickle"),
                                           (b"just some notes, renamed .onnx\n" * 20, "invalid_onnx")])
def test_a_rejected_upload_shows_the_gate_error_on_arrival_and_keeps_nothing(content, code):
    """Issue 11: the gate runs when the file arrives; the user sees why at once, before pressing Run."""
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params["src"] = "upload"
    at.run()
    at.file_uploader(key="cmp_model_file").upload("weights.onnx", content)
    at.run()
    assert any(f"[{code}]" in e.value.replace("\\", "") for e in at.error)
    assert "cmp_upload" not in at.session_state and not at.dataframe
    assert at.session_state["cmp_files"].get("upload") is None


@pytest.mark.slow
def test_demo_link_opens_the_demo_results_directly():
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params.update({"src": "demo", "run": "1", "runs": "3"})
    at.run(timeout=300)
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["Precision"]) == ["FP32", "FP16 (reference)", "INT8 dynamic", "INT4 weight-only (mixed 4/8-bit)"]
    assert table.loc[table["Precision"] == "INT8 dynamic", "cosine"].item() >= 0.99
    assert "Report (JSON)" in [b.label for b in at.get("download_button")]
    # the answer first: which variant to ship at the default bar, and what the cosine means
    assert any(m.value.startswith("Ship ") for m in at.success)
    assert any("nearest-neighbour rankings" in c.value or "practically the same" in c.value for c in at.caption)
    at.slider(key="cmp_bar").set_value(1.0).run(timeout=60)
    # FP16 is judged against FP32 (not against itself): at a bar of 1.0 nothing smaller passes, FP32 is kept
    assert any(m.value.startswith("Keep FP32") for m in at.success)
    # a second visitor gets the shared demo results without running anything
    again = AppTest.from_file(PAGE, default_timeout=30)
    again.query_params.update({"src": "demo", "run": "1", "runs": "3"})
    again.run(timeout=20)
    assert again.dataframe and not again.exception


def test_an_upload_is_moved_to_disk_and_the_widget_lets_go_of_its_bytes(tmp_path):
    """Threat 20: an uploaded model is spooled to this session's folder at once; the uploader is cleared so
    Streamlit drops its in-memory copy, and the page names the kept file as plain text."""
    model = build_gemm_relu_onnx(tmp_path / "m.onnx").read_bytes()
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params["src"] = "upload"
    at.run()
    at.file_uploader(key="cmp_model_file").upload("**bold** name.onnx", model)
    at.run()
    assert not at.exception
    kept = at.session_state["cmp_upload"]
    stored = Path(kept["path"])
    try:
        assert stored.read_bytes() == model and stored.name != "**bold** name.onnx"
        assert oct(stored.parent.stat().st_mode & 0o777) == "0o700"
        # the model widget is empty again (then the inputs file and the images/audio uploaders, both empty)
        assert [w.value for w in at.file_uploader] == [None, None, []]
        assert any("\\*\\*bold\\*\\* name" in c.value for c in at.caption)  # shown as text, not markdown

        # a second upload replaces the first one's folder
        at.file_uploader(key="cmp_model_file_1").upload("other.onnx", model + b"")
        at.run()
        assert not stored.exists() and Path(at.session_state["cmp_upload"]["path"]).is_file()
    finally:
        import shutil

        shutil.rmtree(Path(at.session_state["cmp_upload"]["dir"]), ignore_errors=True)
        shutil.rmtree(stored.parent, ignore_errors=True)


@pytest.mark.slow
def test_an_uploaded_causal_lm_shows_prefill_decode_perplexity_and_continuations(tmp_path):
    import zipfile

    from bench._shared.causal_lm_models import build_causal_lm_folder

    folder = build_causal_lm_folder(tmp_path / "tiny-llama", "llama")
    archive = tmp_path / "tiny-llama.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, path.name)
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params.update({"src": "upload", "p": "fp32,int4", "ref": "fp32", "runs": "2"})
    at.run()
    at.file_uploader(key="cmp_model_file").upload("tiny-llama.zip", archive.read_bytes())
    at.run()
    at.button[0].click().run(timeout=300)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "Generation" in [h.value for h in at.subheader]
    generation = next(d.value for d in at.dataframe if "Decode (tokens/s)" in d.value.columns)
    assert list(generation["Precision"]) == ["FP32", "INT4 weight-only (mixed 4/8-bit)"]
    assert (generation["Decode (tokens/s)"] > 0).all() and (generation["Perplexity"] > 1).all()
    assert (generation["KV cache (MB)"] == generation["KV predicted (MB)"]).all()
    continuations = next(d.value for d in at.dataframe if "Continuation" in d.value.columns)
    assert len(continuations) == 2


def test_upload_mode_clears_the_demo_texts_and_the_demo_note():
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert "half a minute" in " ".join(i.value for i in at.info)
    at.radio(key="cmp_src").set_value("upload").run()
    assert at.text_area(key="cmp_texts").value == ""
    assert not any("half a minute" in i.value for i in at.info)
    at.radio(key="cmp_src").set_value("demo").run()
    assert at.text_area(key="cmp_texts").value.strip()  # the demo gets its sentences back


@pytest.mark.slow
def test_an_image_classifier_upload_runs_on_the_users_images_and_shows_labels_top5_and_a_verdict(tmp_path):
    """A tiny ViT classifier (random weights) uploaded as a .zip, with two PNGs of the user's: quality is in labels."""
    import shutil

    from tests.core.test_compare_media import build_tiny_vit, write_png

    folder = build_tiny_vit(tmp_path / "vit")
    archive = shutil.make_archive(str(tmp_path / "vit"), "zip", folder)
    pngs = [(f"photo{i}.png", write_png(tmp_path / f"photo{i}.png", seed=i).read_bytes()) for i in range(2)]
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params.update({"src": "upload", "p": "fp32,int8", "ref": "fp32", "runs": "3"})
    at.run()
    at.file_uploader(key="cmp_model_file").upload("vit.zip", Path(archive).read_bytes())
    at.run()
    at.file_uploader(key="cmp_media_files").set_value([(name, data, "image/png") for name, data in pngs])
    at.run()
    assert [m.label for m in at.session_state["cmp_media"].items()] == ["photo0.png", "photo1.png"]  # on disk
    next(b for b in at.button if b.label == "Run").click().run(timeout=300)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert {"labels kept", "top-5 overlap", "Verdict"} <= set(table.columns)
    assert table.loc[table["Precision"] == "INT8 dynamic", "Verdict"].item()
    report = at.session_state["cmp_results"][at.session_state["cmp_last_key"]]["report"]
    assert report["model"]["task"] == "image-classification"
    assert report["inputs"]["items"] == ["photo0.png", "photo1.png"]


def test_switching_to_upload_while_the_first_run_is_going_keeps_the_inputs():
    """A rerun that interrupts the first run can lose widget values Streamlit never saw rendered (round two:
    the inputs box came back empty and Run said `no_inputs`); the page restores them from the link's values."""
    initial = AppTest.from_file(PAGE, default_timeout=30).run().session_state["cmp_initial"]
    at = AppTest.from_file(PAGE, default_timeout=30)
    # what the interrupted first run left: the page's own keys, none of the widget values
    at.session_state["cmp_init"] = True
    at.session_state["ql_current_page"] = "compare"  # the interrupted run had already entered this page
    at.session_state["cmp_initial"] = {**initial, "cmp_src": "upload", "cmp_precisions": ["fp32", "int8"]}
    at.run()
    assert not at.exception and not at.error
    assert at.radio(key="cmp_src").value == "upload"
    assert at.multiselect(key="cmp_precisions").value == ["fp32", "int8"]
    # upload mode leaves the demo's sentences out: an empty box means the model's own default inputs, not no_inputs
    assert at.text_area(key="cmp_texts").value == ""
