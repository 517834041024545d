"""PNG/JPEG/WAV files as inputs of an uploaded ONNX image or audio model, prepared the way the model says.

Why: a user with a detector or an OCR model has pictures, not an .npz; refusing them ("this model takes text or
arrays") left only random arrays to judge a detector by. An ONNX file carries no processor, so the preparation is
read from the model where it can be and is otherwise explicit and visible:
- image input: the first float input of rank 4 with 1/3/4 channels first (NCHW) or last (NHWC); its size from
  the declared dims, else the metadata (ultralytics' `imgsz`), else the first usual size the model runs; pixels
  scaled to 0-1 (ultralytics and most detectors), -1-1, 0-255 or ImageNet mean/std;
- audio input: the first float input of rank 1-3 whose last dim is the samples; the sampling rate from the
  metadata (`sample_rate`/`sampling_rate`), else 16 kHz; clips padded or cut to a fixed declared length.
Every choice can be set (`--image-size`, `--image-layout`, `--image-scale`, `--sample-rate`; the page's input
options) and the report says which was used (`inputs.source`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.compare.inputs import media_inputs
from core.errors import QuantLensError

if TYPE_CHECKING:
    from core.compare.inputs.feeds import Feeds
    from core.compare.inputs.user_data import InputSpec

SCALES = {  # name -> (mean, std) applied to pixels in 0-1
    "0-1": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "-1-1": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "0-255": ((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's ImageNet statistics
}
DEFAULT_RATE = 16000


@dataclass(frozen=True)
class MediaPrep:
    image_size: tuple[int, int] | None = None  # (height, width); None: from the model
    image_layout: str = "auto"  # auto | nchw | nhwc
    image_scale: str = "auto"  # auto (0-1) | 0-1 | -1-1 | 0-255 | imagenet
    sample_rate: int = 0  # 0: from the model's metadata, else 16 kHz


def _metadata(model_path: Path) -> dict[str, str]:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _image_spec(specs: list[InputSpec], layout: str) -> tuple[InputSpec, str] | None:
    from core.compare.inputs.image_arrays import image_layout

    for spec in specs:
        found = image_layout(spec)
        if found:
            return spec, (found if layout == "auto" else layout)
    return None


def _audio_spec(specs: list[InputSpec]) -> InputSpec | None:
    for spec in specs:
        last = spec.shape[-1] if spec.shape else None
        if spec.dtype.startswith("float") and 1 <= len(spec.shape) <= 3 and (not isinstance(last, int) or last >= 4000):
            return spec
    return None


def _image_size(spec: InputSpec, layout: str, prep: MediaPrep, meta: dict[str, str]) -> tuple[int, int] | None:
    if prep.image_size:
        return prep.image_size
    h, w = (spec.shape[2], spec.shape[3]) if layout == "nchw" else (spec.shape[1], spec.shape[2])
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        return h, w
    imgsz = meta.get("imgsz", "").strip("[]() ")
    if imgsz:
        try:
            values = [int(v) for v in imgsz.replace(",", " ").split()]
            return (values[0], values[-1])
        except ValueError:
            pass
    return None


def _pixels(image, size: tuple[int, int], channels: int, scale: str):
    import numpy as np

    img = image.convert("L" if channels == 1 else "RGB").resize((size[1], size[0]))
    x = np.asarray(img, dtype=np.float32) / 255.0
    if x.ndim == 2:
        x = x[..., None]
    if channels == 4:
        x = np.concatenate([x, np.ones_like(x[..., :1])], -1)
    mean, std = SCALES[scale]
    c = x.shape[-1]
    pad = [0.0] * max(0, c - 3)  # an alpha channel is passed through unscaled
    m = np.array(list(mean[: min(c, 3)]) + pad, np.float32)
    d = np.array(list(std[: min(c, 3)]) + [1.0] * len(pad), np.float32)
    return (x - m) / d


def onnx_media_feeds(model_path: Path, specs: list[InputSpec], files: list[Path], prep: MediaPrep) -> Feeds:
    """Feeds for an ONNX model from PNG/JPEG or WAV files; other inputs generated from their declared shapes."""
    import numpy as np

    from core.compare.inputs.feeds import Feeds
    from core.compare.inputs.user_data import generated_feeds

    meta = _metadata(model_path)
    images = [f for f in files if f.suffix.lower() in media_inputs.IMAGE_SUFFIXES]
    clips = [f for f in files if f.suffix.lower() in media_inputs.AUDIO_SUFFIXES]
    if images and clips:
        raise QuantLensError("bad_inputs", "Give images or WAV files, not both: a model takes one or the other.")
    rest_specs = specs
    per_input: list[dict[str, Any]] = []
    if images:
        found = _image_spec(specs, prep.image_layout)
        if found is None:
            raise QuantLensError("bad_inputs", "This model has no image input (a float input [N, C, H, W] or [N, H, W, C] "
                                               "with 1, 3 or 4 channels): give an .npz of its input arrays instead.")
        spec, layout = found
        channels = spec.shape[1] if layout == "nchw" else spec.shape[3]
        channels = channels if isinstance(channels, int) and channels in (1, 3, 4) else 3
        scale = "0-1" if prep.image_scale == "auto" else prep.image_scale
        size = _image_size(spec, layout, prep, meta) or _probe_size(model_path, specs, spec, layout, channels, scale,
                                                                     images[0])
        rest_specs = [s for s in specs if s.name != spec.name]
        for path in images:
            x = _pixels(media_inputs.load_image(path), size, channels, scale)[None]
            per_input.append({spec.name: np.ascontiguousarray(x.transpose(0, 3, 1, 2) if layout == "nchw" else x)
                              .astype(spec.dtype)})
        how = f"{len(images)} image(s) at {size[0]}x{size[1]}, {layout.upper()}, {channels} channel(s), scaled {scale}"
    elif clips:
        spec = _audio_spec(specs)
        if spec is None:
            raise QuantLensError("bad_inputs", "This model has no raw-audio input (a float input whose last dim is the "
                                               "samples): give an .npz of its input arrays instead.")
        rate = prep.sample_rate or int(meta.get("sample_rate") or meta.get("sampling_rate") or DEFAULT_RATE)
        length = spec.shape[-1] if isinstance(spec.shape[-1], int) and spec.shape[-1] > 0 else None
        rest_specs = [s for s in specs if s.name != spec.name]
        for path in clips:
            samples = media_inputs.resample(*media_inputs.load_wav(path), rate)
            if length:
                samples = np.pad(samples, (0, max(0, length - len(samples))))[:length]
            shape = [1] * (len(spec.shape) - 1) + [len(samples)]
            per_input.append({spec.name: samples.reshape(shape).astype(spec.dtype)})
        how = f"{len(clips)} WAV file(s) at {rate} Hz" + (f", padded or cut to {length} samples" if length else "")
    else:
        raise QuantLensError("no_inputs", "No PNG, JPEG or WAV file was found in the inputs.")
    if rest_specs:
        for feed, extra in zip(per_input, generated_feeds(rest_specs, len(per_input)), strict=True):
            feed.update(extra)
    shape = {k: v.shape for k, v in per_input[0].items()}
    calibration = [f for f in per_input if {k: v.shape for k, v in f.items()} == shape]
    labels = [f.name for f in images or clips]
    return Feeds(per_input, labels, [None] * len(per_input), per_input[0], calibration, f"files ({how})")


def _probe_size(model_path: Path, specs, spec, layout: str, channels: int, scale: str, first: Path):
    """The first usual size (core.compare.inputs.image_arrays.CANDIDATE_SIZES) the FP32 model runs on the first image."""
    import numpy as np
    import onnxruntime as ort

    from core.compare.inputs.image_arrays import CANDIDATE_SIZES
    from core.compare.inputs.user_data import generated_feeds

    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    image = media_inputs.load_image(first)
    rest = generated_feeds([s for s in specs if s.name != spec.name], 1)[0]
    for size in CANDIDATE_SIZES:
        x = _pixels(image, size, channels, scale)[None]
        x = x.transpose(0, 3, 1, 2) if layout == "nchw" else x
        try:
            session.run(None, rest | {spec.name: np.ascontiguousarray(x).astype(spec.dtype)})
        except Exception:  # noqa: BLE001 - onnxruntime's own error types: this size does not fit, try the next
            continue
        return size
    raise QuantLensError("bad_inputs", "The model ran on none of the usual image sizes; set one with --image-size "
                                       "(page: Input options).")
