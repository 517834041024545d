"""What a comparison can be asked to do: the precisions, and each technique's settings as declared data.

Every knob is declared once, as a dataclass field with its default, its bounds and its help text (the
optimum-onnx `configuration.py` / Olive pass-config pattern). The dataclasses validate themselves when built, so
a bad INT4 block size is refused where the user typed it (CLI flag, page widget, JSON payload), not in the
worker after FP16 and INT8 have already run. The CLI's flags and the page's widgets read their defaults, choices
and help from here (`spec`, `default`).
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from core.errors import QuantLensError

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "int8-static", "int4")
DEFAULT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "int4")
LABELS = {
    "fp32": "FP32", "fp16": "FP16", "int8": "INT8 dynamic", "int8-static": "INT8 static (QDQ)", "int4": "INT4 weight-only",
}
FILE_NAMES = {p: f"model_{p.replace('-', '_')}.onnx" for p in PRECISIONS}
BITS = {"fp32": 32, "fp16": 16, "int8": 8, "int8-static": 8, "int4": 4}
# Measured on the bundled all-MiniLM-L6-v2 (`python -m core compare demo`, cosine vs FP16: per-channel 0.9938 with
# ORT's encoder fusion; per-tensor 0.965) and quoted by the settings' help and the pages: one source for the figure.
MINILM_INT8_COSINE = {"per_channel": 0.994, "per_tensor": 0.965}


@dataclass(frozen=True)
class SettingSpec:
    """One setting's declaration: what it means and which values are allowed."""

    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    power_of_two: bool = False


def setting(default: Any, help: str, *, low: float | None = None, high: float | None = None,  # noqa: A002
            choices: tuple[Any, ...] | None = None, power_of_two: bool = False) -> Any:
    """A dataclass field carrying its SettingSpec, so bounds and help live next to the default."""
    return field(default=default, metadata={"spec": SettingSpec(help, low, high, choices, power_of_two)})


def spec(cls: type, name: str) -> SettingSpec:
    """The declaration of `cls.name` (for CLI help and page widgets)."""
    for f in fields(cls):
        if f.name == name:
            return f.metadata["spec"]
    raise KeyError(f"{cls.__name__}.{name}")


def default(cls: type, name: str) -> Any:
    """The declared default of `cls.name`."""
    for f in fields(cls):
        if f.name == name:
            return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    raise KeyError(f"{cls.__name__}.{name}")


def _validate(obj: Any, label: str) -> None:
    """Check every declared field of `obj` against its SettingSpec; one sentence naming the setting if not."""
    for f in fields(obj):
        s = f.metadata.get("spec")
        if s is None:
            continue
        value = getattr(obj, f.name)
        name = f"{label}.{f.name}" if label else f.name
        kind = type(f.default)
        if kind is bool:
            if not isinstance(value, bool):
                raise QuantLensError("bad_option", f"Option {name} must be true or false (got {value!r}).")
            continue
        if kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float)):
                word = "an integer" if kind is int else "a number"
                raise QuantLensError("bad_option", f"Option {name} must be {word} (got {value!r}).")
            if value != value or value in (float("inf"), float("-inf")):
                raise QuantLensError("bad_option", f"Option {name} must be a finite number (got {value!r}).")
        if kind is str and not isinstance(value, str):
            raise QuantLensError("bad_option", f"Option {name} must be a string (got {value!r}).")
        if s.choices is not None and value not in s.choices:
            raise QuantLensError("bad_option", f"Option {name} must be one of {', '.join(map(str, s.choices))} "
                                               f"(got {value!r}).")
        if (s.low is not None and value < s.low) or (s.high is not None and value > s.high):
            raise QuantLensError("bad_option", f"Option {name} must be from {s.low:g} to {s.high:g} (got {value!r}).")
        if s.power_of_two and (value < 1 or int(value) & (int(value) - 1)):
            raise QuantLensError("bad_option", f"Option {name} must be a power of two, at least {s.low:g} "
                                               f"(got {value!r}).")


@dataclass(frozen=True)
class Fp16Config:
    keep_io_types: bool = setting(True, "Inputs and outputs stay float32, so callers feed and read the same arrays.")

    def __post_init__(self) -> None:
        _validate(self, "fp16")


@dataclass(frozen=True)
class Int8DynamicConfig:
    per_channel: bool = setting(True, f"One scale per output channel: MiniLM keeps cosine "
                                      f"{MINILM_INT8_COSINE['per_channel']} vs {MINILM_INT8_COSINE['per_tensor']} "
                                      "per-tensor, at the same speed.")
    reduce_range: bool = setting(False, "7-bit weights, only for CPUs without VNNI that saturate; costs accuracy.")
    quantize_embeddings: bool = setting(True, "Embedding tables (Gather on a constant) to int8: a 4x smaller file; "
                                              "off keeps them float.")
    fuse_transformer_ops: bool = setting(True, "ORT's transformer optimizer first, for BERT-like encoders "
                                               "(attention runs as one quantized QAttention op).")
    method: str = setting("auto", "auto: dynamic for transformer MatMul models; for convolutional models static QDQ "
                                  "per-channel calibrated on your inputs (dynamic ConvInteger runs CNNs ~5x slower), "
                                  "measured against the alternatives. dynamic/static force one.",
                          choices=("auto", "dynamic", "static"))

    def __post_init__(self) -> None:
        _validate(self, "int8")


@dataclass(frozen=True)
class Int8StaticConfig:
    calibration: str = setting("minmax", "How activation ranges are read from the calibration inputs.",
                               choices=("minmax", "percentile", "entropy"))
    percentile: float = setting(99.999, "Percentile of |activation| kept when calibration is 'percentile'.",
                                low=50.0, high=100.0)
    outlier_ratio: float = setting(10.0, "A MatMul stays in float when max|x| > this many times p99(|x|) of its "
                                         "input: one static 8-bit scale cannot cover such outliers.",
                                   low=1.0, high=1e6)
    per_channel: bool = setting(True, "One weight scale per output channel.")
    quantize_embeddings: bool = setting(True, "Embedding tables stored as int8 + scale.")

    def __post_init__(self) -> None:
        _validate(self, "int8_static")


@dataclass(frozen=True)
class Int4Config:
    """Defaults chosen on MiniLM (cosine vs FP32, x smaller, speed vs plain ORT accuracy_level=4):

    plain RTN block 128: 0.957, 7.1x, same speed; block 32: 0.975 but ~10% slower, block 64 ~15% slower
    (smaller blocks leave ORT's fast int8-compute path); block 128 + calibrated clipping + the most-damaged
    third of the layers at 8 bits + only the word-embedding table at 4 bits: 0.980, 6.2x, 0.98-1.0x the
    plain speed (paired, no thread spinning). Calibration uses the user's own inputs.
    """

    block_size: int = setting(128, "Weights per scale (a power of two, at least 16): smaller is more accurate and "
                                   "larger.", low=16, high=4096, power_of_two=True)
    symmetric: bool = setting(False, "No zero points (symmetric 4-bit).")
    algorithm: str = setting("rtn", "RTN (round to nearest, with calibrated clipping) or HQQ.", choices=("rtn", "hqq"))
    accuracy_level: int = setting(4, "MatMulNBits compute type: 4 = int8 (fastest on CPU), 0 = default, 1 = fp32, "
                                     "2 = fp16, 3 = bf16.", choices=(0, 1, 2, 3, 4))
    quantize_embeddings: bool = setting(True, "Store the large embedding tables at 4 bits; off keeps them FP32 "
                                              "(MiniLM's INT4 file is then only 1.7x smaller).")
    embedding_block_size: int = setting(64, "Values per scale in 4-bit embedding rows (power of two, at least 16).",
                                        low=16, high=4096, power_of_two=True)
    clip_search: bool = setting(True, "Per block, the clipping range that minimises activation-weighted error on "
                                      "your inputs (RTN only).")
    eight_bit_fraction: float = setting(1 / 3, "Share of MatMul layers, those most damaged by 4 bits, stored at "
                                               "8 bits (0 = all 4-bit).", low=0.0, high=1.0)
    embedding_min_share: float = setting(0.02, "Tables under this share of the float weights (positions, token "
                                               "types) stay float: quantizing them saves little and costs speed.",
                                         low=0.0, high=1.0)

    def __post_init__(self) -> None:
        _validate(self, "int4")


@dataclass(frozen=True)
class CompareOptions:
    """Everything that decides a comparison's result. Hashable data: the page keys its cache on it."""

    precisions: tuple[str, ...] = DEFAULT_PRECISIONS
    reference: str = setting("fp16", "Quality is measured against this variant.", choices=("fp16", "fp32"))
    fp16: Fp16Config = field(default_factory=Fp16Config)
    int8: Int8DynamicConfig = field(default_factory=Int8DynamicConfig)
    int8_static: Int8StaticConfig = field(default_factory=Int8StaticConfig)
    int4: Int4Config = field(default_factory=Int4Config)
    runs: int = setting(20, "Timed runs per variant.", low=1, high=10_000)
    warmup: int = setting(3, "Untimed runs before timing.", low=0, high=1000)
    threads: int = setting(2, "onnxruntime intra-op threads.", low=1, high=64)
    latency_seq_len: int = setting(128, "Tokens in the latency input.", low=1, high=8192)
    max_new_tokens: int = setting(8, "Greedy tokens generated per prompt for causal LMs.", low=0, high=64)
    decode_tokens: int = setting(32, "Tokens decoded one at a time through the KV cache after the latency prompt, "
                                     "to time generation (causal LMs).", low=1, high=512)
    output_kind: str = setting("auto", "What an uploaded ONNX model's first output is, so the quality metric fits: "
                                       "class-logits (top-1 kept, top-5), detection-boxes (YOLO head: matched-box "
                                       "F1), detection-map (mask IoU), ctc-sequence (decoded sequence kept), "
                                       "decision-score (decision kept), regression (shift in its own units), "
                                       "embedding (neighbours kept), tensors (cosine fallback); auto = guessed from "
                                       "the graph and the outputs (the report shows the guess).",
                               choices=("auto", "class-logits", "detection-boxes", "detection-map", "ctc-sequence",
                                        "decision-score", "regression", "embedding", "tensors"))
    image_size: str = setting("", "Images given to an uploaded ONNX model are resized to this (320 or 48x320, height "
                                  "x width); empty = the model's declared size, its metadata, or the first usual "
                                  "size it runs.")
    image_layout: str = setting("auto", "Pixel layout of an uploaded ONNX model's image input: nchw or nhwc (auto = "
                                        "from the input's shape).", choices=("auto", "nchw", "nhwc"))
    image_scale: str = setting("auto", "Pixel scaling for an uploaded ONNX model: 0-1, -1-1, 0-255 or imagenet "
                                       "(mean/std); auto = 0-1.", choices=("auto", "0-1", "-1-1", "0-255", "imagenet"))
    sample_rate: int = setting(0, "Sampling rate WAV files are resampled to for an uploaded ONNX audio model; 0 = "
                                  "from the model's metadata, else 16000.", low=0, high=192000)

    def __post_init__(self) -> None:
        precisions = tuple(dict.fromkeys(p.strip().lower() for p in self.precisions))
        unknown = [p for p in precisions if p not in PRECISIONS]
        if unknown:
            raise QuantLensError("unknown_precision", f"Unknown precision {unknown[0]!r}; choose from {', '.join(PRECISIONS)}.")
        if not precisions:
            raise QuantLensError("unknown_precision", f"Choose at least one precision from {', '.join(PRECISIONS)}.")
        reference = self.reference.strip().lower() if isinstance(self.reference, str) else self.reference
        if reference not in ("fp32", "fp16"):
            raise QuantLensError("bad_option", f"The reference must be fp32 or fp16 (got {self.reference!r}).")
        object.__setattr__(self, "reference", reference)
        for name in ("runs", "warmup", "threads", "latency_seq_len", "max_new_tokens", "decode_tokens", "sample_rate"):
            s = spec(CompareOptions, name)
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not s.low <= value <= s.high:
                raise QuantLensError("bad_option", f"{name} must be an integer from {s.low:g} to {s.high:g} "
                                                   f"(got {value!r}).")
        for name in ("image_layout", "image_scale"):
            if getattr(self, name) not in (spec(CompareOptions, name).choices or ()):
                raise QuantLensError("bad_option", f"{name} must be one of "
                                                   f"{', '.join(spec(CompareOptions, name).choices or ())}.")
        parse_size(self.image_size)
        kinds = spec(CompareOptions, "output_kind").choices or ()
        if self.output_kind not in kinds:
            raise QuantLensError("bad_option", f"output_kind must be one of {', '.join(kinds)} (got {self.output_kind!r}).")
        # fp32 is the base of every ratio and the reference must be built too: add both, in a stable order.
        wanted = set(precisions) | {"fp32", reference}
        object.__setattr__(self, "precisions", tuple(p for p in PRECISIONS if p in wanted))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["precisions"] = list(self.precisions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompareOptions:
        if not isinstance(data, dict):
            raise QuantLensError("bad_option", "Options must be a JSON object.")
        nested = {"fp16": Fp16Config, "int8": Int8DynamicConfig, "int8_static": Int8StaticConfig, "int4": Int4Config}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise QuantLensError("bad_option", f"Unknown option {unknown[0]!r}.")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in nested:
                kwargs[key] = _config_from_dict(nested[key], value, key)
            elif key == "precisions":
                if isinstance(value, str):
                    value = value.split(",")
                kwargs[key] = tuple(str(v) for v in value)
            else:
                kwargs[key] = value
        return cls(**kwargs)


def _config_from_dict(cls, value: Any, label: str):
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise QuantLensError("bad_option", f"Option {label} must be an object.")
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise QuantLensError("bad_option", f"Unknown option {label}.{unknown[0]}.")
    return cls(**value)  # each config validates its own fields (types, bounds, choices)


def parse_size(text: str) -> tuple[int, int] | None:
    """'320', '320x320' or '48x320' (height x width) -> (h, w); '' -> None."""
    text = (text or "").strip().lower()
    if not text:
        return None
    parts = text.split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise QuantLensError("bad_option", f"image size must be like 320 or 48x320 (height x width), got {text!r}.") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not all(8 <= v <= 4096 for v in values):
        raise QuantLensError("bad_option", f"image size must be 1 or 2 numbers from 8 to 4096, got {text!r}.")
    return values[0], values[1]
