"""Generated inputs for an uploaded ONNX model that takes images: a size it accepts, and image-like pixels.

Why: a CNN declares its height and width as symbolic (PaddleOCR: ['?', 3, '?', '?']). The generic generator
(core.compare.inputs.user_data.generated_feeds) makes every symbolic dim 8, and an 8x8 image either fails in a stride-32
backbone or says nothing about the model; white noise, too, calibrates static INT8 on activations no real
image produces. So for an image-shaped input (rank 4, 1/3/4 channels first or last) the sizes are probed on
the FP32 model itself, largest usual size first, and the pixels are smooth shapes and gradients scaled to
[-1, 1] (the range most image models are normalised to).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.compare.inputs.user_data import DEFAULT_GENERATED_SAMPLES, InputSpec, generated_feeds

# (height, width) tried in order: ImageNet-style classifiers, detectors, text-line recognisers, small nets
CANDIDATE_SIZES: tuple[tuple[int, int], ...] = ((224, 224), (320, 320), (48, 320), (64, 64), (32, 32), (28, 28))
CHANNELS = (1, 3, 4)


def image_layout(spec: InputSpec) -> str | None:
    """'nchw' or 'nhwc' when `spec` looks like a batch of images, else None."""
    if not spec.dtype.startswith("float") or len(spec.shape) != 4:
        return None
    if spec.shape[1] in CHANNELS:
        return "nchw"
    if spec.shape[3] in CHANNELS:
        return "nhwc"
    return None


def _spatial_axes(layout: str) -> tuple[int, int]:
    return (2, 3) if layout == "nchw" else (1, 2)


def needs_probe(specs: list[InputSpec]) -> bool:
    for spec in specs:
        layout = image_layout(spec)
        if layout and any(not (isinstance(spec.shape[a], int) and spec.shape[a] > 0) for a in _spatial_axes(layout)):
            return True
    return False


WORDS = ("total", "invoice", "date", "QuantLens", "the", "quick", "brown", "fox", "2024", "page", "model", "No. 17",
         "price", "EUR", "label", "open", "street", "station", "menu", "coffee")


def _text_lines(img, rng, height: int, width: int) -> None:
    """Lines of printed words (Pillow's built-in font) in dark ink on a light page, written into `img` in [-1, 1].

    Why: OCR detectors and recognisers answer to text; on plain shapes a detector's map is ~0 everywhere
    (PaddleOCR's detector: max 0.0000), and comparing variants on it measures nothing. Measured on PaddleOCR
    det: 12-18% of pixels above 0.3 on these pages, whether normalised to [-1, 1] or ImageNet statistics.
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    paper = int(rng.integers(215, 250))
    page = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(page)
    size = int(np.clip(height // 8, 8, 40))
    font = ImageFont.load_default(size=size)
    y = int(rng.integers(0, max(1, size // 2)))
    while y < height - size // 2:
        words = " ".join(str(w) for w in rng.choice(WORDS, int(rng.integers(2, 6))))
        draw.text((int(rng.integers(0, max(1, width // 6))), y), words, fill=int(rng.integers(0, 60)), font=font)
        y += int(size * rng.uniform(1.4, 2.2))
    img[:] = (np.asarray(page, np.float32)[..., None] / 127.5 - 1.0)


def synthetic_images(count: int, height: int, width: int, channels: int, seed: int = 0):
    """`count` images (N, H, W, C) in [-1, 1]: a gradient, a few filled rectangles and discs, a little noise;
    every other image is instead rows of text-like strokes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    images = []
    for k in range(count):
        base = rng.uniform(-1, 1, channels).astype(np.float32)
        slope = rng.uniform(-1, 1, (2, channels)).astype(np.float32)
        img = base + (yy[..., None] / max(height, 1)) * slope[0] + (xx[..., None] / max(width, 1)) * slope[1]
        for _ in range(int(rng.integers(2, 6))):
            colour = rng.uniform(-1, 1, channels).astype(np.float32)
            cy, cx = rng.integers(0, height), rng.integers(0, width)
            r = max(2, int(rng.integers(2, max(3, min(height, width) // 3))))
            if rng.random() < 0.5:
                mask = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r * 2)
            else:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            img[mask] = colour
        if (seed + k) % 2 == 1:
            _text_lines(img, rng, height, width)
        img += rng.normal(0, 0.05, img.shape).astype(np.float32)
        images.append(np.clip(img, -1, 1))
    return np.stack(images).astype(np.float32)


def _concrete(spec: InputSpec, size: tuple[int, int]) -> InputSpec:
    layout = image_layout(spec)
    if layout is None:
        return spec
    shape = list(spec.shape)
    shape[0] = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else 1
    for axis, value in zip(_spatial_axes(layout), size, strict=True):
        if not (isinstance(shape[axis], int) and shape[axis] > 0):
            shape[axis] = value
    return InputSpec(spec.name, spec.dtype, tuple(shape))


def probed_generated_feeds(model_path: Path, specs: list[InputSpec],
                           count: int = DEFAULT_GENERATED_SAMPLES) -> list[dict[str, Any]]:
    """Generated feeds; image inputs at the first candidate size the FP32 model runs, filled with synthetic images."""
    import numpy as np

    if not needs_probe(specs):
        return generated_feeds(specs, count)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4  # a size that does not fit is expected while probing: no error lines
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    for size in CANDIDATE_SIZES:
        concrete = [_concrete(s, size) for s in specs]
        feeds = generated_feeds(concrete, count)
        for spec in concrete:
            layout = image_layout(spec)
            if layout is None:
                continue
            n, h, w, c = ((spec.shape[0], spec.shape[2], spec.shape[3], spec.shape[1]) if layout == "nchw"
                          else spec.shape)
            for i, feed in enumerate(feeds):
                images = synthetic_images(n, h, w, c, seed=i).astype(spec.dtype)
                feed[spec.name] = np.ascontiguousarray(images.transpose(0, 3, 1, 2) if layout == "nchw" else images)
        try:
            session.run(None, feeds[0])
        except Exception:  # onnxruntime's own error types: this size does not fit the model, try the next
            continue
        return feeds
    return generated_feeds(specs, count)
