"""Image and audio classifiers compared on their real task: images/WAVs in, label agreement and top-5 out.

HF folders here are built from tiny configs with random weights (saved with safetensors): they prove the
plumbing (task from `architectures`, the model's own processor, label names from id2label), not quality.
"""

from __future__ import annotations

import json
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.compare.inputs.media_inputs import (
    default_audio,
    default_images,
    load_image,
    load_wav,
    media_files,
    read_preprocessor_config,
)
from core.compare.inputs.media_tasks import (
    TASK_AUDIO_CLASSIFICATION,
    TASK_IMAGE_CLASSIFICATION,
    TASK_TOKEN_CLASSIFICATION,
    modality_task,
)
from core.compare.judge.verdict import quality_loss
from core.compare.measure.label_quality import label_quality
from core.errors import QuantLensError


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000, channels: int = 1) -> Path:
    data = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def write_png(path: Path, seed: int = 0, size: int = 40) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB").save(path, format="PNG")
    return path


@pytest.mark.parametrize("architectures, preprocessor, task", [
    (["ViTForImageClassification"], {}, TASK_IMAGE_CLASSIFICATION),
    (["ASTForAudioClassification"], {}, TASK_AUDIO_CLASSIFICATION),
    (["Wav2Vec2ForSequenceClassification"], {"sampling_rate": 16000}, TASK_AUDIO_CLASSIFICATION),
    (["BertForTokenClassification"], {}, TASK_TOKEN_CLASSIFICATION),
    (["BertForSequenceClassification"], {}, None),  # text classification stays with the text tasks
    (["ViTModel"], {}, None),
])
def test_the_task_comes_from_the_config_architectures(tmp_path, architectures, preprocessor, task):
    if preprocessor:
        (tmp_path / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    assert modality_task({"architectures": architectures}, tmp_path) == task


def test_a_preprocessor_config_asking_for_custom_code_is_refused(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"auto_map": {"AutoImageProcessor": "x.Y"}}))
    with pytest.raises(QuantLensError) as err:
        read_preprocessor_config(tmp_path)
    assert err.value.code == "remote_code_forbidden"


def test_a_stereo_16_bit_wav_is_read_as_mono_floats_with_its_rate(tmp_path):
    t = np.arange(800) / 8000
    left, right = np.sin(2 * np.pi * 440 * t) * 0.5, np.zeros_like(t)
    stereo = np.stack([left, right], axis=1).ravel()
    samples, rate = load_wav(write_wav(tmp_path / "a.wav", stereo, channels=2))
    assert rate == 8000 and samples.shape == (800,) and samples.dtype == np.float32
    np.testing.assert_allclose(samples, left / 2, atol=1e-3)


def test_files_that_are_not_what_their_name_says_are_refused_with_a_sentence(tmp_path):
    fake_png = tmp_path / "photo.png"
    fake_png.write_bytes(b"GIF89a not really a png")
    with pytest.raises(QuantLensError, match="not a readable PNG or JPEG") as err:
        load_image(fake_png)
    assert err.value.code == "bad_inputs"
    fake_wav = tmp_path / "clip.wav"
    fake_wav.write_bytes(b"RIFF....WAVEnope")
    with pytest.raises(QuantLensError, match="not a readable PCM WAV"):
        load_wav(fake_wav)
    with pytest.raises(QuantLensError, match="neither an image"):
        media_files([tmp_path / "photo.png", _touch(tmp_path / "notes.txt")])


def _touch(path: Path) -> Path:
    path.write_text("x")
    return path


def test_a_zip_of_inputs_yields_only_its_images_and_wavs_under_names_chosen_here(tmp_path):
    png = write_png(tmp_path / "cat.png")
    wav = write_wav(tmp_path / "beep.wav", np.zeros(100))
    archive = tmp_path / "inputs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(png, "../../escape/cat.png")
        zf.write(wav, "sounds/beep.wav")
        zf.writestr("readme.txt", "ignored")
    files = media_files([archive])
    assert [f.name for f in files] == ["000.png", "001.wav"]
    assert all(f.parent == tmp_path / "inputs.zip.files" for f in files)
    assert not (tmp_path.parent / "escape").exists()


def test_the_default_sets_are_made_locally_and_are_the_same_every_time():
    images = default_images(3)
    assert [img.size for img in images] == [(256, 256)] * 3
    assert np.array_equal(np.asarray(images[0]), np.asarray(default_images(3)[0]))
    clips = default_audio(16000, count=4)
    assert all(c.shape == (16000,) and np.abs(c).max() <= 1 for c in clips)


def test_label_quality_reports_agreement_top5_overlap_and_the_label_names():
    names = {i: f"label_{i}" for i in range(10)}
    ref = [np.arange(10, dtype=np.float32)[None, :], np.array([[5, 4, 3, 2, 1, 0, 0, 0, 0, 0]], np.float32)]
    var = [np.arange(10, dtype=np.float32)[None, :] + 0.01,
           np.array([[4, 5, 3, 2, 0, 1, 0, 0, 0, 0]], np.float32)]  # top-1 flips, top-5 shares 4 of 5
    metrics, samples = label_quality(TASK_IMAGE_CLASSIFICATION, ref, var, ["a.png", "b.png"], names)
    assert metrics["top1_agreement"] == 0.5
    assert metrics["top5_overlap"] == pytest.approx((1.0 + 0.8) / 2)
    worst = samples[0]
    assert worst["input"] == "b.png" and not worst["label_kept"]
    assert worst["reference"].startswith("label_0 (") and worst["variant"].startswith("label_1 (")
    assert worst["reference_top5"][:2] == ["label_0", "label_1"]
    assert quality_loss(metrics) == "labels kept 50%"


def test_token_labels_are_compared_token_by_token():
    names = {0: "O", 1: "PER", 2: "LOC"}
    ref = [np.array([[[3, 0, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0]]], np.float32)]
    var = [np.array([[[3, 0, 0], [0, 3, 0], [3, 0, 0], [3, 0, 0]]], np.float32)]
    metrics, samples = label_quality(TASK_TOKEN_CLASSIFICATION, ref, var, ["Ann lives in Oslo"], names)
    assert metrics["top1_agreement"] == 0.75
    assert samples[0]["reference"] == "O PER LOC O" and samples[0]["variant"] == "O PER O O"


def test_a_label_flip_between_tied_labels_is_not_counted_as_damage():
    assert quality_loss({"top1_agreement": 0.5, "probability_shift_max": 0.001, "cosine_similarity_mean": 0.9999}) is None
    assert quality_loss({"top1_agreement": 0.5, "probability_shift_max": 0.2, "cosine_similarity_mean": 0.9999})


def build_tiny_vit(path: Path) -> Path:
    """ViTForImageClassification, 4 layers of width 64 on 32x32 images, 10 named labels, random weights."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                       intermediate_size=128, num_labels=10, id2label={i: f"class_{i}" for i in range(10)},
                       label2id={f"class_{i}": i for i in range(10)})
    ViTForImageClassification(config).save_pretrained(path, safe_serialization=True)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def build_tiny_wav2vec2_classifier(path: Path) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(0)
    labels = ["yes", "no", "up", "down"]
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(32, 32), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=4, num_labels=4, id2label=dict(enumerate(labels)),
                            label2id={n: i for i, n in enumerate(labels)},
                            architectures=["Wav2Vec2ForSequenceClassification"])
    Wav2Vec2ForSequenceClassification(config).save_pretrained(path, safe_serialization=True)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=False).save_pretrained(path)
    return path


@pytest.mark.slow
def test_a_vit_classifier_is_compared_on_images_by_its_labels_not_its_hidden_states(tmp_path):
    from core.compare.common.settings import CompareOptions
    from core.compare.pipeline import compare_model

    model_dir = build_tiny_vit(tmp_path / "vit")
    options = CompareOptions(precisions=("fp32", "int8"), reference="fp32", runs=3, warmup=1)
    report = compare_model(model_dir, options, tmp_path / "out")
    assert report.model["task"] == TASK_IMAGE_CLASSIFICATION
    assert report.model["outputs"] == ["logits"]
    assert report.inputs["source"] == "default images" and report.inputs["count"] == 8
    int8 = report.result("int8")
    assert int8.settings["method_used"] == "dynamic"  # a ViT is a transformer: its patch Conv is <10% of weights
    assert {"top1_agreement", "top5_overlap", "probability_shift_max"} <= set(int8.quality)
    assert int8.samples[0]["reference"].startswith("class_")
    assert int8.verdict

    pngs = [write_png(tmp_path / f"img{i}.png", seed=i) for i in range(3)]
    archive = tmp_path / "mine.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in pngs:
            zf.write(p, p.name)
    mine = compare_model(model_dir, options, tmp_path / "out2", inputs={"files": [archive]})
    assert mine.inputs["source"] == "files" and mine.inputs["count"] == 3


@pytest.mark.slow
def test_an_audio_classifier_runs_on_the_users_wav_files_resampled_by_its_feature_extractor(tmp_path):
    from core.compare.common.settings import CompareOptions
    from core.compare.pipeline import compare_model

    model_dir = build_tiny_wav2vec2_classifier(tmp_path / "w2v")
    t = np.arange(8000) / 8000
    wavs = [write_wav(tmp_path / f"tone{i}.wav", 0.4 * np.sin(2 * np.pi * (300 + 200 * i) * t)) for i in range(2)]
    options = CompareOptions(precisions=("fp32", "int8"), reference="fp32", runs=3, warmup=1)
    report = compare_model(model_dir, options, tmp_path / "out", inputs={"files": wavs})
    assert report.model["task"] == TASK_AUDIO_CLASSIFICATION
    assert report.model["inputs"][0]["shape"] == [1, 16000]  # 1 s at 8 kHz, resampled to the model's 16 kHz
    assert report.inputs["items"] == ["tone0.wav", "tone1.wav"]
    assert report.result("int8").samples[0]["reference"].split(" ")[0] in {"yes", "no", "up", "down"}
    with pytest.raises(QuantLensError, match="audio model: give WAV files"):
        compare_model(model_dir, options, tmp_path / "out3", inputs={"files": [write_png(tmp_path / "x.png")]})


@pytest.mark.slow
def test_a_token_tagger_is_compared_token_by_token_with_its_tag_names(tmp_path):
    import torch
    from transformers import BertConfig, BertForTokenClassification

    from core.compare.common.settings import CompareOptions
    from core.compare.pipeline import compare_model
    from tests.core.conftest import _copy_tokenizer

    torch.manual_seed(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128, num_labels=5,
                        id2label=dict(enumerate(tags)), label2id={t: i for i, t in enumerate(tags)})
    BertForTokenClassification(config).save_pretrained(tmp_path / "ner", safe_serialization=True)
    _copy_tokenizer(tmp_path / "ner")
    options = CompareOptions(precisions=("fp32", "int8"), reference="fp32", runs=3, warmup=1)
    report = compare_model(tmp_path / "ner", options, tmp_path / "out", inputs=["Ann lives in Oslo.", "Bob met Eve."])
    assert report.model["task"] == TASK_TOKEN_CLASSIFICATION
    int8 = report.result("int8")
    assert 0.0 <= int8.quality["top1_agreement"] <= 1.0 and "top5_overlap" in int8.quality
    assert set(int8.samples[0]["reference"].split()) <= set(tags)
