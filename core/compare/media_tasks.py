"""Vision, audio and token-labelling models compared on their real task, with their own label names.

Why: the config's `architectures` names the head the model was trained with (ViTForImageClassification: 1,000
ImageNet labels). Exporting it as feature extraction compares `last_hidden_state`, which says nothing about
whether a quantized variant still picks the same label. So the task comes from `architectures` (and, for
audio models that reuse *ForSequenceClassification, from the processor's sampling rate), the export keeps the
head, the inputs are images or audio prepared by the model's processor, and quality is label agreement,
top-5 overlap and the probability shift, shown with the names from `id2label`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.compare import media_inputs
from core.errors import QuantLensError

if TYPE_CHECKING:
    from core.compare.feeds import Feeds
    from core.compare.prepare import PreparedModel

TASK_IMAGE_CLASSIFICATION = "image-classification"
TASK_AUDIO_CLASSIFICATION = "audio-classification"
TASK_TOKEN_CLASSIFICATION = "token-classification"
MEDIA_TASKS = (TASK_IMAGE_CLASSIFICATION, TASK_AUDIO_CLASSIFICATION)
LABEL_TASKS = (TASK_IMAGE_CLASSIFICATION, TASK_AUDIO_CLASSIFICATION, TASK_TOKEN_CLASSIFICATION)
TOP_K = 5


def modality_task(config: dict, model_dir: Path | None = None) -> str | None:
    """The task for a vision/audio/token-labelling head named in `architectures`, else None (text tasks decide)."""
    names = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    if any(a.endswith("ForImageClassification") or a.endswith("ForImageClassificationWithTeacher") for a in names):
        return TASK_IMAGE_CLASSIFICATION
    if any(a.endswith("ForAudioClassification") for a in names):
        return TASK_AUDIO_CLASSIFICATION
    if any(a.endswith("ForTokenClassification") for a in names):
        return TASK_TOKEN_CLASSIFICATION
    audio_config = model_dir is not None and "sampling_rate" in media_inputs.read_preprocessor_config(model_dir)
    if audio_config and any(a.endswith("ForSequenceClassification") for a in names):
        return TASK_AUDIO_CLASSIFICATION  # Wav2Vec2/HuBERT/WavLM classifiers: audio in, labels out
    return None


def auto_class(task: str):
    import transformers

    return {
        TASK_IMAGE_CLASSIFICATION: transformers.AutoModelForImageClassification,
        TASK_AUDIO_CLASSIFICATION: transformers.AutoModelForAudioClassification,
        TASK_TOKEN_CLASSIFICATION: transformers.AutoModelForTokenClassification,
    }[task]


def load_processor(model_dir: Path, task: str):
    """The model's own image processor / feature extractor, from its preprocessor_config.json (no remote code)."""
    import transformers

    if not media_inputs.read_preprocessor_config(model_dir):
        raise QuantLensError("no_preprocessor", "The model folder has no preprocessor_config.json: QuantLens cannot "
                                                "know how this model wants its images or audio prepared.")
    cls = transformers.AutoImageProcessor if task == TASK_IMAGE_CLASSIFICATION else transformers.AutoFeatureExtractor
    try:
        return cls.from_pretrained(str(model_dir), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
        raise QuantLensError("no_preprocessor", f"transformers could not build the model's processor from "
                                                f"preprocessor_config.json: {' '.join(str(exc).split())[:160]}") from None


def _to_feed(processed: Any, specs) -> dict:
    import numpy as np

    feed = {}
    for spec in specs:
        if spec.name not in processed:
            raise QuantLensError("unsupported_input", f"The model's processor does not produce the input {spec.name!r}.")
        feed[spec.name] = np.asarray(processed[spec.name]).astype(spec.dtype)
    return feed


def media_feeds(prepared: PreparedModel, inputs, specs) -> Feeds:
    """Feeds for an image/audio classifier: the user's files ({"files": [...]}) or the default set, processed."""
    from core.compare.feeds import Feeds

    if isinstance(inputs, list) and inputs:
        raise QuantLensError("bad_inputs", "This model takes images or audio, not text: give PNG/JPEG or WAV files "
                                           "(or a folder or .zip of them).")
    files = media_inputs.media_files(inputs["files"]) if isinstance(inputs, dict) and inputs.get("files") else None
    processor = load_processor(prepared.model_dir, prepared.task)
    per_input, labels = [], []
    if prepared.task == TASK_IMAGE_CLASSIFICATION:
        if files and any(f.suffix.lower() not in media_inputs.IMAGE_SUFFIXES for f in files):
            raise QuantLensError("bad_inputs", "This is an image model: give PNG or JPEG files, not audio.")
        images = [media_inputs.load_image(f) for f in files] if files else media_inputs.default_images()
        labels = [f.name for f in files] if files else [f"synthetic image {i + 1}" for i in range(len(images))]
        per_input = [_to_feed(processor(images=[img], return_tensors="np"), specs) for img in images]
    else:
        if files and any(f.suffix.lower() not in media_inputs.AUDIO_SUFFIXES for f in files):
            raise QuantLensError("bad_inputs", "This is an audio model: give WAV files, not images.")
        rate = int(getattr(processor, "sampling_rate", 16000) or 16000)
        if files:
            clips = [media_inputs.resample(*media_inputs.load_wav(f), rate) for f in files]
            labels = [f.name for f in files]
        else:
            clips = media_inputs.default_audio(rate)
            labels = [f"synthetic clip {i + 1}" for i in range(len(clips))]
        per_input = [_to_feed(processor(clip, sampling_rate=rate, return_tensors="np"), specs) for clip in clips]
    shape = {k: v.shape for k, v in per_input[0].items()}
    calibration = [f for f in per_input if {k: v.shape for k, v in f.items()} == shape]
    return Feeds(per_input, labels, [None] * len(per_input), per_input[0], calibration,
                 "files" if files else "default " + ("images" if prepared.task == TASK_IMAGE_CLASSIFICATION else "audio"))


def _softmax(x):
    import numpy as np

    z = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def label_quality(task: str, ref_logits: list, var_logits: list, labels: list[str],
                  id2label: dict[int, str]) -> tuple[dict, list[dict]]:
    """Label agreement, top-5 overlap, max probability shift and logit cosine; per sample, names from id2label."""
    import numpy as np

    agree, overlap, shifts, cosines, samples = [], [], [], [], []
    for i, (r, v) in enumerate(zip(ref_logits, var_logits, strict=True)):
        r2 = np.asarray(r, np.float64).reshape(-1, np.asarray(r).shape[-1])
        v2 = np.asarray(v, np.float64).reshape(-1, np.asarray(v).shape[-1])
        pr, pv = _softmax(r2), _softmax(v2)
        k = min(TOP_K, r2.shape[-1])
        top_r, top_v = np.argsort(-pr, axis=-1)[:, :k], np.argsort(-pv, axis=-1)[:, :k]
        kept = pr.argmax(-1) == pv.argmax(-1)
        rows_overlap = [len(set(a) & set(b)) / k for a, b in zip(top_r, top_v, strict=True)]
        shift = float(np.abs(pr - pv).max())
        cos = float((r2.ravel() @ v2.ravel()) / max(np.linalg.norm(r2) * np.linalg.norm(v2), 1e-30))
        agree.append(kept)
        overlap += rows_overlap
        shifts.append(shift)
        cosines.append(cos)
        lr, lv = int(top_r[0, 0]), int(top_v[0, 0])
        sample = {"index": i, "input": labels[i], "label_kept": bool(kept.all()), "probability_shift": shift,
                  "top5_overlap": float(np.mean(rows_overlap)), "cosine_similarity": cos}
        if task == TASK_TOKEN_CLASSIFICATION:
            sample["token_labels_kept"] = float(kept.mean())
            sample["reference"] = " ".join(id2label.get(int(t), str(int(t))) for t in top_r[:, 0])
            sample["variant"] = " ".join(id2label.get(int(t), str(int(t))) for t in top_v[:, 0])
        else:
            sample["reference"] = f"{id2label.get(lr, lr)} ({pr[0, lr]:.3f})"
            sample["variant"] = f"{id2label.get(lv, lv)} ({pv[0, lv]:.3f})"
            sample["reference_top5"] = [id2label.get(int(t), str(int(t))) for t in top_r[0]]
            sample["variant_top5"] = [id2label.get(int(t), str(int(t))) for t in top_v[0]]
        samples.append(sample)
    samples.sort(key=lambda s: (s["label_kept"], s["top5_overlap"], -s["probability_shift"]))
    flat = np.concatenate(agree)
    metrics = {
        "top1_agreement": float(np.mean([a.all() for a in agree])), "label_agreement": float(flat.mean()),
        "top5_overlap": float(np.mean(overlap)),
        "probability_shift_max": float(np.max(shifts)), "probability_shift_mean": float(np.mean(shifts)),
        "cosine_similarity_mean": float(np.mean(cosines)), "cosine_similarity_min": float(np.min(cosines)),
    }
    if task == TASK_TOKEN_CLASSIFICATION:
        metrics["top1_agreement"] = float(flat.mean())  # per token: what a tagger's user sees
    return metrics, samples


def measure_label_quality(task: str, ref, var, feeds: Feeds, config: dict) -> tuple[dict, list[dict]]:
    id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items() if str(k).isdigit()}
    return label_quality(task, [o[0] for o in ref.outputs], [o[0] for o in var.outputs], feeds.labels, id2label)
