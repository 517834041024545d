"""Vision, audio and token-labelling models compared on their real task, with their own label names.

Why: the config's `architectures` names the head the model was trained with (ViTForImageClassification: 1,000
ImageNet labels). Exporting it as feature extraction compares `last_hidden_state`, which says nothing about
whether a quantized variant still picks the same label. So the task comes from `architectures` (and, for
audio models that reuse *ForSequenceClassification, from the processor's sampling rate), the export keeps the
head, the inputs are images or audio prepared by the model's processor, and quality is label agreement,
top-5 overlap and the probability shift, shown with the names from `id2label` (measured by
core.compare.measure.label_quality; this module names the task and builds its inputs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.compare.inputs import media_inputs
from core.errors import QuantLensError

if TYPE_CHECKING:
    from core.compare.inputs.feeds import Feeds

TASK_IMAGE_CLASSIFICATION = "image-classification"
TASK_AUDIO_CLASSIFICATION = "audio-classification"
TASK_TOKEN_CLASSIFICATION = "token-classification"
MEDIA_TASKS = (TASK_IMAGE_CLASSIFICATION, TASK_AUDIO_CLASSIFICATION)
LABEL_TASKS = (TASK_IMAGE_CLASSIFICATION, TASK_AUDIO_CLASSIFICATION, TASK_TOKEN_CLASSIFICATION)


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


def media_feeds(model_dir: Path, task: str, inputs, specs) -> Feeds:
    """Feeds for an image/audio classifier: the user's files ({"files": [...]}) or the default set, processed."""
    from core.compare.inputs.feeds import Feeds

    if isinstance(inputs, list) and inputs:
        raise QuantLensError("bad_inputs", "This model takes images or audio, not text: give PNG/JPEG or WAV files "
                                           "(or a folder or .zip of them).")
    files = media_inputs.media_files(inputs["files"]) if isinstance(inputs, dict) and inputs.get("files") else None
    processor = load_processor(model_dir, task)
    per_input, labels = [], []
    if task == TASK_IMAGE_CLASSIFICATION:
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
                 "files" if files else "default " + ("images" if task == TASK_IMAGE_CLASSIFICATION else "audio"))


