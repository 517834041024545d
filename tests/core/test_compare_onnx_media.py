"""Specification: an uploaded ONNX image or audio model takes PNG/JPEG/WAV files, prepared from what the model
declares (shape, layout, metadata) or from explicit options, and the report says how. Models are built locally with
torch (random weights: plumbing)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from core.compare.common.settings import parse_size
from core.compare.inputs.onnx_media import MediaPrep, onnx_media_feeds
from core.compare.inputs.user_data import InputSpec
from core.errors import QuantLensError
from tests.core.test_compare_judgment import build_tiny_yolo


def _png(path: Path, size=(80, 100), seed=0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8), "RGB").save(path)
    return path


def _wav(path: Path, rate=8000, seconds=0.5) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2").tobytes())
    return path


def test_images_are_resized_to_the_models_declared_size_in_its_layout_and_scaled_0_1(tmp_path):
    model = build_tiny_yolo(tmp_path / "yolo.onnx")
    specs = [InputSpec("images", "float32", (1, 3, 64, 64))]
    feeds = onnx_media_feeds(model, specs, [_png(tmp_path / "a.png"), _png(tmp_path / "b.png", seed=1)], MediaPrep())
    x = feeds.per_input[0]["images"]
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    assert feeds.labels == ["a.png", "b.png"] and "64x64, NCHW" in feeds.source and "scaled 0-1" in feeds.source
    nhwc = onnx_media_feeds(model, [InputSpec("images", "float32", (1, "h", "w", 3))], [tmp_path / "a.png"],
                            MediaPrep(image_size=(32, 48), image_scale="imagenet"))
    assert nhwc.per_input[0]["images"].shape == (1, 32, 48, 3) and nhwc.per_input[0]["images"].min() < 0


def test_wav_files_are_resampled_and_fitted_to_the_declared_length(tmp_path):
    specs = [InputSpec("audio", "float32", (1, 16000))]
    model = build_tiny_yolo(tmp_path / "yolo.onnx")  # only its metadata is read for audio
    feeds = onnx_media_feeds(model, specs, [_wav(tmp_path / "tone.wav")], MediaPrep())
    assert feeds.per_input[0]["audio"].shape == (1, 16000) and "16000 Hz" in feeds.source


def test_bad_image_options_are_refused_with_a_clear_message():
    assert parse_size("48x320") == (48, 320) and parse_size("320") == (320, 320) and parse_size("") is None
    with pytest.raises(QuantLensError) as caught:
        parse_size("big")
    assert caught.value.code == "bad_option"
    from core.compare.common.settings import CompareOptions

    with pytest.raises(QuantLensError):
        CompareOptions(image_layout="chw")


@pytest.mark.slow
def test_a_detector_uploaded_as_onnx_is_compared_on_the_users_pictures(tmp_path):
    from core.compare.common.settings import CompareOptions
    from core.compare.pipeline import compare_model

    model = build_tiny_yolo(tmp_path / "yolo.onnx")
    files = [str(_png(tmp_path / f"street{i}.png", seed=i)) for i in range(4)]
    report = compare_model(model, CompareOptions(precisions=("int8",), reference="fp32", runs=3, warmup=1),
                           tmp_path / "out", inputs={"files": files})
    assert report.inputs["source"].startswith("files (4 image(s) at 64x64")
    assert report.inputs["items"][0] == "street0.png"
    assert report.model["output_kind"] == "detection-boxes"
