"""Images and audio as model inputs: the user's PNG/JPEG/WAV files, or a small default set made here.

Why: an image or audio classifier compared on random tensors (or on `last_hidden_state`) says nothing about its
labels. Inputs are prepared exactly as the model expects them by the model's own processor
(`preprocessor_config.json`, loaded by transformers' processor classes with local_files_only and no remote
code; the JSON is read first and refused if it asks for custom code), so resize/rescale/normalize for
ViT-style image processors and feature extraction for audio are the model's, not ours.

Files are decoded here without running anything from them: images by Pillow (PNG/JPEG only, size-capped
against decompression bombs), WAV by the standard library's `wave` (PCM 8/16/32-bit) and numpy.
"""

from __future__ import annotations

import json
import wave
import zipfile
from pathlib import Path
from typing import Any

from core.errors import QuantLensError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
AUDIO_SUFFIXES = (".wav",)
MAX_MEDIA_FILES = 32
MAX_MEDIA_FILE_BYTES = 16 * 2**20
MAX_IMAGE_PIXELS = 40_000_000
MAX_AUDIO_SECONDS = 30.0
DEFAULT_MEDIA_COUNT = 8
DEFAULT_AUDIO_SECONDS = 1.0


def read_preprocessor_config(model_dir: Path) -> dict:
    """preprocessor_config.json as JSON (never code); {} when the folder has none."""
    path = Path(model_dir) / "preprocessor_config.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QuantLensError("invalid_config", f"preprocessor_config.json is not valid JSON ({exc.__class__.__name__}).") from None
    if not isinstance(data, dict):
        raise QuantLensError("invalid_config", "preprocessor_config.json must hold a JSON object.")
    if "auto_map" in data:
        raise QuantLensError("remote_code_forbidden", "preprocessor_config.json asks for custom code (auto_map); "
                                                      "QuantLens never runs it.")
    return data


def media_files(paths: list[Path]) -> list[Path]:
    """Expand folders and .zip archives (into a sibling folder) to the image/WAV files inside, sorted, capped."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES)
        elif path.suffix.lower() == ".zip":
            found += _unzip_media(path)
        elif path.is_file():
            found.append(path)
        else:
            raise QuantLensError("file_not_found", f"Inputs file {path.name} does not exist.")
    unknown = [p.name for p in found if p.suffix.lower() not in IMAGE_SUFFIXES + AUDIO_SUFFIXES]
    if unknown:
        raise QuantLensError("bad_inputs", f"{unknown[0]} is neither an image (PNG/JPEG) nor a WAV file.")
    if not found:
        raise QuantLensError("no_inputs", "No PNG, JPEG or WAV file was found in the inputs.")
    return found[:MAX_MEDIA_FILES]


def _unzip_media(archive: Path) -> list[Path]:
    """Extract only image/WAV members, by their base name, into `<archive>.files/` (no path from the zip is used)."""
    target = archive.parent / (archive.name + ".files")
    target.mkdir(exist_ok=True)
    out = []
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir() and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES]
            for i, member in enumerate(members[:MAX_MEDIA_FILES]):
                if member.file_size > MAX_MEDIA_FILE_BYTES:
                    raise QuantLensError("inputs_too_large", f"{Path(member.filename).name} in the zip is larger than "
                                                             f"{MAX_MEDIA_FILE_BYTES // 2**20} MiB.")
                dest = target / f"{i:03d}{Path(member.filename).suffix.lower()}"
                with zf.open(member) as src:
                    dest.write_bytes(src.read(MAX_MEDIA_FILE_BYTES + 1))
                out.append(dest)
    except zipfile.BadZipFile:
        raise QuantLensError("bad_inputs", f"{archive.name} is not a readable zip archive.") from None
    return out


def load_image(path: Path):
    """An RGB PIL image from a PNG/JPEG file; anything else (or a decompression bomb) is refused."""
    from PIL import Image

    path = Path(path)
    if path.stat().st_size > MAX_MEDIA_FILE_BYTES:
        raise QuantLensError("inputs_too_large", f"{path.name} is larger than {MAX_MEDIA_FILE_BYTES // 2**20} MiB.")
    try:
        with Image.open(path, formats=["PNG", "JPEG"]) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise QuantLensError("inputs_too_large", f"{path.name} has more than {MAX_IMAGE_PIXELS:,} pixels.")
            return img.convert("RGB")
    except QuantLensError:
        raise
    except Exception as exc:  # PIL.UnidentifiedImageError, OSError, DecompressionBombError
        raise QuantLensError("bad_inputs", f"{path.name} is not a readable PNG or JPEG image ({exc.__class__.__name__}).") from None


def load_wav(path: Path) -> tuple[Any, int]:
    """(mono float32 samples in [-1, 1], sampling rate) from a PCM WAV file."""
    import numpy as np

    path = Path(path)
    if path.stat().st_size > MAX_MEDIA_FILE_BYTES:
        raise QuantLensError("inputs_too_large", f"{path.name} is larger than {MAX_MEDIA_FILE_BYTES // 2**20} MiB.")
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate, frames = w.getsampwidth(), w.getnchannels(), w.getframerate(), w.getnframes()
            raw = w.readframes(min(frames, int(MAX_AUDIO_SECONDS * rate)))
    except (wave.Error, EOFError) as exc:
        raise QuantLensError("bad_inputs", f"{path.name} is not a readable PCM WAV file ({exc}).") from None
    kinds = {1: (np.uint8, 128.0, 128.0), 2: (np.int16, 0.0, 32768.0), 4: (np.int32, 0.0, 2147483648.0)}
    if width not in kinds or channels < 1 or rate <= 0:
        raise QuantLensError("bad_inputs", f"{path.name}: only 8, 16 or 32-bit PCM WAV files are supported.")
    dtype, offset, scale = kinds[width]
    samples = (np.frombuffer(raw, dtype=dtype).astype(np.float32) - offset) / scale
    samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels).mean(axis=1)
    if not len(samples):
        raise QuantLensError("bad_inputs", f"{path.name} holds no audio.")
    return samples.astype(np.float32), rate


def resample(samples, rate: int, target: int):
    """Linear resampling (enough for comparing variants on the same audio; no extra dependency)."""
    import numpy as np

    if rate == target:
        return samples
    n = max(1, int(round(len(samples) * target / rate)))
    return np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples).astype(np.float32)


def default_images(count: int = DEFAULT_MEDIA_COUNT, size: int = 256) -> list:
    """Synthetic RGB pictures (gradients, rectangles, discs) drawn with numpy: no download, always the same."""
    from PIL import Image

    from core.compare.inputs.image_arrays import synthetic_images

    arrays = synthetic_images(count, size, size, 3, seed=7)
    return [Image.fromarray(((a + 1) * 127.5).clip(0, 255).astype("uint8"), "RGB") for a in arrays]


def default_audio(rate: int, count: int = DEFAULT_MEDIA_COUNT, seconds: float = DEFAULT_AUDIO_SECONDS) -> list:
    """Synthetic clips: tones, chords, a chirp, noise bursts; each `seconds` long at `rate`."""
    import numpy as np

    rng = np.random.default_rng(11)
    t = np.arange(int(rate * seconds), dtype=np.float32) / rate
    clips = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            clip = np.sin(2 * np.pi * rng.uniform(110, 880) * t)
        elif kind == 1:
            clip = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(200, 1200, 3)) / 3
        elif kind == 2:
            clip = np.sin(2 * np.pi * (200 + 1800 * t / seconds) * t)
        else:
            clip = rng.normal(0, 0.3, t.shape) * (np.sin(2 * np.pi * 3 * t) > 0)
        clips.append((0.5 * clip).astype(np.float32))
    return clips
