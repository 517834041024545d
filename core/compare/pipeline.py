"""Quantize one model to each requested precision and compare every variant against a reference.

One verb, `compare_model`, turns (model, options, inputs) into a ComparisonReport: plain data that the CLI
prints, the page draws and the job runner ships back as JSON. `run_comparison_job` is the same call in the
shape the worker process expects (core.jobs runs it in a child with limits; see the team contract).

Order of work: FP32 ONNX (exported from a HF folder, or the uploaded .onnx re-saved under a fixed name) ->
each precision's file -> each file loaded and run on the same inputs -> quality against the reference
(FP16 by default: what you would deploy without quantizing) -> sizing prediction next to the measured size.
FP32 is always built and measured, because sizes and speed-ups are reported relative to it.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.compare.quantize import Fp16Config, Int4Config, Int8DynamicConfig, Int8StaticConfig
from core.errors import QuantLensError

Progress = Callable[[str, float | None], None]

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "int8-static", "int4")
DEFAULT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "int4")
LABELS = {
    "fp32": "FP32", "fp16": "FP16", "int8": "INT8 dynamic", "int8-static": "INT8 static (QDQ)", "int4": "INT4 weight-only",
}
FILE_NAMES = {p: f"model_{p.replace('-', '_')}.onnx" for p in PRECISIONS}
BITS = {"fp32": 32, "fp16": 16, "int8": 8, "int8-static": 8, "int4": 4}
REPORT_NAME = "report.json"
SCHEMA_VERSION = 1
MAX_CONTINUATION_PROMPTS = 3
INTERLEAVE_MAX_BYTES = 1536 * 2**20  # all variants loaded at once below this, timed turn by turn
# The three numbers that summarise quality for each task: (column title, quality key, format).
QUALITY_HEADLINES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "feature-extraction": (("cosine", "cosine_similarity_mean", "{:.4f}"), ("worst cos", "cosine_similarity_min", "{:.4f}"),
                           ("NN kept", "neighbour_top1_agreement", "{:.0%}")),
    "text-classification": (("labels kept", "top1_agreement", "{:.0%}"), ("max p shift", "probability_shift_max", "{:.3f}"),
                            ("cosine", "cosine_similarity_mean", "{:.4f}")),
    "text-generation": (("top-1 kept", "top1_agreement", "{:.0%}"), ("KL mean", "kl_divergence_mean", "{:.4f}"),
                        ("cosine", "cosine_similarity_mean", "{:.4f}")),
    "other": (("max abs err", "max_abs_error", "{:.3g}"), ("mean rel err", "mean_rel_error", "{:.2%}"),
              ("cosine", "cosine_similarity_mean", "{:.4f}")),
}


def quality_headlines(task: str) -> tuple[tuple[str, str, str], ...]:
    return QUALITY_HEADLINES.get(task, QUALITY_HEADLINES["other"])


@dataclass(frozen=True)
class CompareOptions:
    """Everything that decides a comparison's result. Hashable data: the page keys its cache on it."""

    precisions: tuple[str, ...] = DEFAULT_PRECISIONS
    reference: str = "fp16"
    fp16: Fp16Config = field(default_factory=Fp16Config)
    int8: Int8DynamicConfig = field(default_factory=Int8DynamicConfig)
    int8_static: Int8StaticConfig = field(default_factory=Int8StaticConfig)
    int4: Int4Config = field(default_factory=Int4Config)
    runs: int = 20
    warmup: int = 3
    threads: int = 2
    latency_seq_len: int = 128
    max_new_tokens: int = 8

    def __post_init__(self) -> None:
        precisions = tuple(dict.fromkeys(p.strip().lower() for p in self.precisions))
        unknown = [p for p in precisions if p not in PRECISIONS]
        if unknown:
            raise QuantLensError("unknown_precision", f"Unknown precision {unknown[0]!r}; choose from {', '.join(PRECISIONS)}.")
        if not precisions:
            raise QuantLensError("unknown_precision", f"Choose at least one precision from {', '.join(PRECISIONS)}.")
        reference = self.reference.strip().lower()
        if reference not in ("fp32", "fp16"):
            raise QuantLensError("bad_option", f"The reference must be fp32 or fp16 (got {self.reference!r}).")
        for name, low, high in (("runs", 1, 10_000), ("warmup", 0, 1000), ("threads", 1, 64),
                                ("latency_seq_len", 1, 8192), ("max_new_tokens", 0, 64)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise QuantLensError("bad_option", f"{name} must be an integer from {low} to {high} (got {value!r}).")
        # fp32 is the base of every ratio and the reference must be built too: add both, in a stable order.
        wanted = set(precisions) | {"fp32", reference}
        object.__setattr__(self, "precisions", tuple(p for p in PRECISIONS if p in wanted))
        object.__setattr__(self, "reference", reference)

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
    allowed = {f.name: f for f in fields(cls)}
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise QuantLensError("bad_option", f"Unknown option {label}.{unknown[0]}.")
    for key, item in value.items():
        default = getattr(cls(), key)
        if isinstance(default, bool) and not isinstance(item, bool):
            raise QuantLensError("bad_option", f"Option {label}.{key} must be true or false.")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and (
                isinstance(item, bool) or not isinstance(item, (int, float))):
            raise QuantLensError("bad_option", f"Option {label}.{key} must be a number.")
        if isinstance(default, str) and not isinstance(item, str):
            raise QuantLensError("bad_option", f"Option {label}.{key} must be a string.")
    return cls(**value)


@dataclass
class VariantResult:
    precision: str
    label: str
    file_name: str
    size_bytes: int
    size_ratio_vs_fp32: float  # fp32 bytes / this variant's bytes (how many times smaller)
    predicted_size_bytes: int | None  # file size predicted from the FP32 graph and the stored format (see below)
    load_ms: float
    peak_memory_bytes: int
    memory_method: str
    latency_ms_p50: float
    latency_ms_p95: float
    speedup_vs_fp32: float  # fp32 p50 / this p50
    quantize_seconds: float
    is_reference: bool
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    quality: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    # parameters x bits (the calculator's ideal figure); predicted_size_bytes models the stored format
    predicted_ideal_bytes: int | None = None


@dataclass
class ComparisonReport:
    model: dict[str, Any]
    reference: str
    inputs: dict[str, Any]
    results: list[VariantResult]
    options: dict[str, Any]
    environment: dict[str, Any]
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComparisonReport:
        results = [VariantResult(**r) for r in data["results"]]
        return cls(**{**data, "results": results})

    def result(self, precision: str) -> VariantResult:
        for r in self.results:
            if r.precision == precision:
                return r
        raise KeyError(precision)


# ----------------------------------------------------------------------------------------------------------
# Model preparation
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    fp32_path: Path
    task: str
    name: str
    source_kind: str
    model_dir: Path | None
    config: dict
    architecture: str | None
    export_seconds: float


def _prepare(source: Path | str, out_dir: Path, name: str | None) -> _Prepared:
    from core.compare import export
    from core.compare.quantize import load_model_checked, save_model_fixed

    if str(source) == "demo":
        from core.compare.demo import DEMO_NAME, demo_model_dir

        exported = export.export_hf_folder(demo_model_dir(), out_dir)
        return _Prepared(exported.onnx_path, exported.task, DEMO_NAME, "demo", exported.model_dir, exported.config,
                         exported.architecture, exported.seconds)
    path = Path(source)
    if path.is_dir():
        exported = export.export_hf_folder(path, out_dir)
        return _Prepared(exported.onnx_path, exported.task, name or exported.architecture or "Hugging Face model",
                         "hf_folder", exported.model_dir, exported.config, exported.architecture, exported.seconds)
    if path.is_file():
        started = time.perf_counter()
        try:
            model = load_model_checked(path)
        except QuantLensError:
            raise
        except Exception as exc:  # onnx's protobuf parser: DecodeError and friends
            raise QuantLensError("invalid_onnx", f"The file is not a readable ONNX model ({exc.__class__.__name__}).") from None
        target = out_dir / FILE_NAMES["fp32"]
        save_model_fixed(model, target)
        return _Prepared(target, export.TASK_OTHER, name or "uploaded ONNX model", "onnx", None, {}, None,
                         time.perf_counter() - started)
    raise QuantLensError("file_not_found", f"Model {path.name} does not exist.")


def _count_onnx_parameters(path: Path) -> int:
    """Elements of all floating-point initializers: the weights, counted the way the sizing engine counts."""
    import onnx

    from core.compare.quantize import load_model_checked

    model = load_model_checked(path)
    total = 0
    for tensor in model.graph.initializer:
        if tensor.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                                onnx.TensorProto.DOUBLE):
            count = 1
            for d in tensor.dims:
                count *= d
            total += count
    return total


def parameter_count(config: dict, fp32_path: Path) -> tuple[int, str]:
    """Parameters from config.json through the sizing engine when it knows the architecture, else from the graph."""
    if config:
        try:
            from core.sizing.architecture import architecture_from_config
            from core.sizing.architecture import parameter_count as arch_count

            return int(arch_count(architecture_from_config(config))), "config.json (core.architecture)"
        except (ImportError, QuantLensError, KeyError, ValueError, TypeError):
            pass
    return _count_onnx_parameters(fp32_path), "ONNX initializers"



def variant_label(precision: str, settings: dict) -> str:
    """The name a user sees: INT4 with some layers stored at 8 bits says so, rather than passing for pure 4-bit."""
    if precision == "int4" and settings.get("eight_bit_layers"):
        return "INT4 weight-only (mixed 4/8-bit)"
    return LABELS[precision]

def predicted_bytes(parameters: int, precision: str) -> int:
    """The sizing engine's weights-only estimate: parameters x bits per weight (core.precisions when present)."""
    bits: float = BITS[precision]
    try:
        from core.sizing.precisions import get_precision

        bits = float(get_precision(precision.split("-")[0]).bits_per_weight)
    except (ImportError, QuantLensError, AttributeError):
        pass
    return int(round(parameters * bits / 8))


def predicted_stored_bytes(fp32_path: Path, precision: str, settings: dict[str, Any]) -> int:
    """The file size this precision's stored format should give, predicted from the FP32 graph and settings.

    Parameters x bits (predicted_bytes) is the calculator's ideal; real files also hold a scale (and zero
    point) per block or channel, the layers a technique leaves in float (LayerNorm, biases, small or
    unquantized tables), INT4 layers stored at 8 bits, and the graph itself. This walks the FP32
    initializers and applies the format each technique writes, so the prediction can be checked against
    the measured file: a gap means the model of the format (or the quantizer) changed.
    """
    import math

    import onnx

    from core.compare.quantize import load_model_checked

    model = load_model_checked(fp32_path)
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE)
    inits = {t.name: t for t in model.graph.initializer}
    elem_bytes = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.BFLOAT16: 2,
                  onnx.TensorProto.DOUBLE: 8}
    matmul_weights: dict[str, str] = {}  # initializer -> consuming MatMul/Gemm node name
    gather_tables: set[str] = set()
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in inits \
                and len(inits[node.input[1]].dims) == 2:
            matmul_weights[node.input[1]] = node.name if node.op_type == "MatMul" else f"{node.name or node.output[0]}_MatMul"
        elif node.op_type == "Gather" and node.input and node.input[0] in inits:
            gather_tables.add(node.input[0])
    eight_bit = set(settings.get("eight_bit_layers") or ())
    if precision == "int4" and settings.get("quantize_embeddings", True):
        from core.compare.quantize import embedding_gathers

        large = set(embedding_gathers(model, float(settings.get("embedding_min_share", 0.0)))[0])
        int4_tables = {n.input[0] for n in model.graph.node if n.name in large}
    else:
        int4_tables = set()
    total = 0
    weight_bytes = 0
    for name, tensor in inits.items():
        count = math.prod(tensor.dims) if tensor.dims else 1
        stored = tensor.data_type in floats
        own = count * elem_bytes.get(tensor.data_type, 4) if stored else len(tensor.raw_data) or count * 8
        weight_bytes += own
        if not stored:
            total += own
            continue
        if precision == "fp32":
            total += count * 4
        elif precision == "fp16":
            total += count * 2
        elif precision in ("int8", "int8-static") and (name in matmul_weights or (
                name in gather_tables and settings.get("quantize_embeddings", True))):
            channels = tensor.dims[-1] if name in matmul_weights and settings.get("per_channel", True) else 1
            total += count + channels * 5  # int8 values + a float scale and an 8-bit zero point per channel
        elif precision == "int4" and name in matmul_weights:
            k, n = tensor.dims
            block = int(settings.get("block_size", 128))
            blocks = math.ceil(k / block)
            bits = 8 if matmul_weights[name] in eight_bit else 4
            zero_points = 0 if settings.get("symmetric") else n * math.ceil(blocks * bits / 8)
            total += n * blocks * block * bits // 8 + n * blocks * 4 + zero_points
        elif precision == "int4" and name in int4_tables and len(tensor.dims) == 2:
            rows, cols = tensor.dims
            block = int(settings.get("embedding_block_size", 64))
            while block >= 16 and cols % block:
                block //= 2
            if block < 16:
                total += count * 4
                continue
            blocks = cols // block
            total += rows * cols // 2 + rows * blocks * (4 + 1)  # nibbles + a float scale and uint8 zero point
        else:
            total += count * 4  # left in float by the technique (LayerNorm, biases, small tables)
    graph_bytes = max(0, Path(fp32_path).stat().st_size - weight_bytes)
    return int(total + graph_bytes)


# ----------------------------------------------------------------------------------------------------------
# Inputs -> feeds
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Feeds:
    per_input: list[dict]  # one feed per text/sample (batch 1)
    labels: list[str]  # what the user sees for each input
    masks: list[Any]
    latency: dict  # one batch-1 feed of the latency sequence length
    calibration: list[dict]  # equal-shape feeds for static calibration
    source: str
    tokenizer: Any = None


def _load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise QuantLensError("no_tokenizer", "The model folder has no usable tokenizer (tokenizer.json, or vocab "
                                             f"files with tokenizer_config.json): {str(exc)[:120]}") from None


def _max_positions(config: dict) -> int:
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return min(value, 4096)
    return 512


def _text_feeds(texts: list[str], specs, tokenizer, config: dict, latency_len: int) -> _Feeds:
    import numpy as np

    max_len = _max_positions(config)
    names = {s.name for s in specs}
    supported = {"input_ids", "attention_mask", "token_type_ids", "position_ids"}
    unsupported = sorted(names - supported)
    if unsupported:
        raise QuantLensError("unsupported_input", f"The model has inputs QuantLens cannot build from text: {', '.join(unsupported)}.")

    def complete(ids: np.ndarray, mask: np.ndarray) -> dict:
        feed = {"input_ids": ids.astype(np.int64)}
        if "attention_mask" in names:
            feed["attention_mask"] = mask.astype(np.int64)
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        if "position_ids" in names:
            feed["position_ids"] = np.arange(ids.shape[1], dtype=np.int64)[None, :]
        return feed

    per_input, masks = [], []
    for text in texts:
        ids = np.asarray(tokenizer(text, truncation=True, max_length=max_len)["input_ids"], dtype=np.int64)[None, :]
        if ids.shape[1] == 0:
            ids = np.zeros((1, 1), np.int64)
        mask = np.ones_like(ids)
        per_input.append(complete(ids, mask))
        masks.append(mask)
    seq = max(1, min(latency_len, max_len))
    flat = np.concatenate([f["input_ids"][0] for f in per_input])
    latency_ids = np.resize(flat, seq)[None, :]  # the users' tokens, repeated to the latency length
    latency = complete(latency_ids, np.ones_like(latency_ids))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(f["input_ids"].shape[1] for f in per_input)
    calibration = []
    for f in per_input:
        n = f["input_ids"].shape[1]
        ids = np.full((1, width), pad_id, np.int64)
        ids[0, :n] = f["input_ids"][0]
        mask = np.zeros((1, width), np.int64)
        mask[0, :n] = 1
        calibration.append(complete(ids, mask))
    return _Feeds(per_input, list(texts), masks, latency, calibration, "texts", tokenizer)


def _array_feeds(feeds: list[dict], source: str) -> _Feeds:
    labels = [f"sample {i + 1}" for i in range(len(feeds))]
    return _Feeds(feeds, labels, [None] * len(feeds), feeds[0], feeds, source)


def _build_feeds(prepared: _Prepared, inputs, options: CompareOptions) -> _Feeds:
    from core.compare import inputs as model_inputs
    from core.compare.evaluate import make_session

    session = make_session(prepared.fp32_path, 1)
    specs = model_inputs.input_specs(session)
    del session
    if isinstance(inputs, dict) and "npz" in inputs:
        return _array_feeds(model_inputs.feeds_from_npz(Path(inputs["npz"]), specs), "npz")
    if prepared.model_dir is None:
        if inputs:
            raise QuantLensError("no_tokenizer", "Texts need a tokenizer: upload the Hugging Face folder as a .zip, "
                                                 "or give this ONNX model an .npz of input arrays.")
        return _array_feeds(model_inputs.generated_feeds(specs), "generated")
    texts = model_inputs.clean_texts(list(inputs)) if inputs else list(model_inputs.DEFAULT_TEXTS)
    tokenizer = _load_tokenizer(prepared.model_dir)
    feeds = _text_feeds(texts, specs, tokenizer, prepared.config, options.latency_seq_len)
    feeds.source = "texts" if inputs else "default texts"
    return feeds


# ----------------------------------------------------------------------------------------------------------
# The comparison
# ----------------------------------------------------------------------------------------------------------


def _quantize(precision: str, fp32: Path, out_dir: Path, options: CompareOptions, feeds: _Feeds):
    from core.compare import quantize

    target = out_dir / FILE_NAMES[precision]
    if precision == "fp16":
        return quantize.quantize_fp16(fp32, target, options.fp16)
    if precision == "int8":
        return quantize.quantize_int8_dynamic(fp32, target, options.int8)
    if precision == "int8-static":
        return quantize.quantize_int8_static(fp32, target, feeds.calibration, options.int8_static)
    if precision == "int4":
        return quantize.quantize_int4(fp32, target, options.int4, feeds.per_input)
    raise QuantLensError("unknown_precision", f"Unknown precision {precision!r}.")


def _quality(task: str, ref, var, feeds: _Feeds, config: dict) -> tuple[dict, list[dict]]:
    from core.compare import evaluate
    from core.compare.export import TASK_CLASSIFICATION, TASK_FEATURES, TASK_GENERATION

    if task == TASK_FEATURES:
        r = evaluate.pooled_embeddings(ref.outputs, ref.output_names, feeds.masks)
        v = evaluate.pooled_embeddings(var.outputs, var.output_names, feeds.masks)
        return evaluate.embedding_quality(r, v, feeds.labels)
    if task == TASK_CLASSIFICATION:
        id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items() if str(k).isdigit()}
        return evaluate.classification_quality([o[0] for o in ref.outputs], [o[0] for o in var.outputs], feeds.labels, id2label)
    if task == TASK_GENERATION:
        metrics, samples = evaluate.causal_lm_quality([o[0] for o in ref.outputs], [o[0] for o in var.outputs],
                                                      feeds.masks, feeds.labels)
        ref_text, var_text = ref.extra.get("after") or {}, var.extra.get("after") or {}
        for sample in samples:
            i = sample["index"]
            if i in ref_text:
                sample["reference"], sample["variant"] = ref_text[i], var_text.get(i, "")
                sample["continuation_kept"] = ref_text[i] == var_text.get(i)
        if ref_text:
            kept = [ref_text[i] == var_text.get(i) for i in ref_text]
            metrics["greedy_continuation_agreement"] = sum(kept) / len(kept)
        return metrics, samples
    return evaluate.tensor_error_quality(ref.outputs, var.outputs, ref.output_names, feeds.labels)


def _continuations(feeds: _Feeds, steps: int, config: dict, max_positions: int):
    """`after` hook for causal LMs: greedy continuations of the first prompts, decoded to text."""
    from core.compare.evaluate import greedy_continuation

    tokenizer = feeds.tokenizer
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else config.get("eos_token_id")

    def run(session) -> dict[int, str]:
        texts = {}
        for i, feed in enumerate(feeds.per_input[:MAX_CONTINUATION_PROMPTS]):
            room = max(0, min(steps, max_positions - feed["input_ids"].shape[1]))
            tokens = greedy_continuation(session, feed, room, eos)
            texts[i] = tokenizer.decode(tokens) if tokenizer is not None else " ".join(map(str, tokens))
        return texts

    return run


def compare_model(source: Path | str, options: CompareOptions | None = None, out_dir: Path | str = "quantlens-out",
                  progress: Progress | None = None, *, inputs: list[str] | dict | None = None,
                  name: str | None = None) -> ComparisonReport:
    """Build every requested precision of `source` under `out_dir` and compare them on `inputs`.

    source: "demo", a validated HF folder, or a validated single-file .onnx. inputs: texts, {"npz": path}, or
    None for defaults (texts for text models, generated arrays otherwise). Writes FILE_NAMES[p] for each
    precision and returns the report (the caller decides whether to write it; see write_report).
    """
    from core.compare import evaluate
    from core.compare.export import TASK_GENERATION

    options = options or CompareOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda message, fraction: None)
    started = time.perf_counter()
    warnings: list[str] = []

    say("Preparing the FP32 ONNX model", 0.02)
    prepared = _prepare(source, out_dir, name)
    feeds = _build_feeds(prepared, inputs, options)
    parameters, parameter_source = parameter_count(prepared.config, prepared.fp32_path)

    built: dict[str, Any] = {}
    steps = len(options.precisions) * 2
    done = 0
    for precision in options.precisions:
        if precision == "fp32":
            continue
        say(f"Quantizing: {LABELS[precision]}", 0.1 + 0.8 * done / steps)
        built[precision] = _quantize(precision, prepared.fp32_path, out_dir, options, feeds)
        done += 1

    from core.compare.quantize import model_file_bytes

    runs: dict[str, evaluate.VariantRun] = {}
    max_positions = _max_positions(prepared.config)
    paths = {p: prepared.fp32_path if p == "fp32" else built[p].path for p in options.precisions}
    interleave = sum(model_file_bytes(p) for p in paths.values()) <= INTERLEAVE_MAX_BYTES
    for precision in options.precisions:
        say(f"Running: {LABELS[precision]}", 0.1 + 0.8 * done / steps)
        after = None
        if prepared.task == TASK_GENERATION and options.max_new_tokens:
            after = _continuations(feeds, options.max_new_tokens, prepared.config, max_positions)
        try:
            runs[precision] = evaluate.run_variant(paths[precision], feeds.per_input, feeds.latency, runs=options.runs,
                                                   warmup=options.warmup, threads=options.threads, after=after,
                                                   keep_session=interleave)
        except QuantLensError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise QuantLensError("model_failed_runtime",
                                 f"{LABELS[precision]} failed to run in onnxruntime: {' '.join(str(exc).split())[:200]}") from None
        done += 1
    if interleave:
        say("Timing all variants turn by turn", 0.9)
        sessions = {p: r.extra.pop("session") for p, r in runs.items()}
        for precision, times in evaluate.time_interleaved(sessions, feeds.latency, options.runs).items():
            evaluate.set_latency(runs[precision], times)
        del sessions
    else:
        warnings.append("Variants were timed one after another (too large to hold together); on a busy machine "
                        "their latency ratios are less reliable.")

    say("Comparing outputs", 0.93)
    reference = runs[options.reference]
    fp32_run = runs["fp32"]
    fp32_bytes = model_file_bytes(prepared.fp32_path)
    results = []
    for precision in options.precisions:
        run = runs[precision]
        path = paths[precision]
        size = model_file_bytes(path)
        quality, samples = _quality(prepared.task, reference, run, feeds, prepared.config)
        q = built.get(precision)
        results.append(VariantResult(
            precision=precision, label=variant_label(precision, q.settings if q else {}), file_name=path.name,
            size_bytes=size,
            size_ratio_vs_fp32=fp32_bytes / size if size else 0.0,
            predicted_size_bytes=predicted_stored_bytes(prepared.fp32_path, precision,
                                                        q.settings if q else {}),
            predicted_ideal_bytes=predicted_bytes(parameters, precision),
            load_ms=run.load_ms, peak_memory_bytes=run.peak_memory_bytes, memory_method=run.memory_method,
            latency_ms_p50=run.latency_ms_p50, latency_ms_p95=run.latency_ms_p95,
            speedup_vs_fp32=fp32_run.latency_ms_p50 / run.latency_ms_p50 if run.latency_ms_p50 else 0.0,
            quantize_seconds=q.seconds if q else prepared.export_seconds,
            is_reference=precision == options.reference,
            settings=q.settings if q else {}, notes=list(q.notes) if q else [],
            quality=quality, samples=samples,
        ))
    if len(feeds.per_input) < 3 and prepared.task == "feature-extraction":
        warnings.append("Fewer than 3 inputs: nearest-neighbour agreement needs at least 3 texts.")
    if feeds.source == "generated":
        warnings.append("Inputs were generated from the model's declared shapes (random values); upload an .npz "
                        "of real inputs for a meaningful quality comparison.")

    import onnxruntime

    seq = feeds.latency["input_ids"].shape[1] if "input_ids" in feeds.latency else None
    report = ComparisonReport(
        model={
            "name": prepared.name, "task": prepared.task, "source": prepared.source_kind,
            "architecture": prepared.architecture, "parameters": parameters, "parameter_source": parameter_source,
            "inputs": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)} for k, v in feeds.per_input[0].items()],
            "outputs": list(reference.output_names),
        },
        reference=options.reference,
        inputs={"source": feeds.source, "count": len(feeds.per_input), "items": feeds.labels[:64],
                "latency_input": {"batch": 1, "sequence_length": seq} if seq else {"batch": 1}},
        results=results,
        options=options.to_dict(),
        environment={"latency_timing": "interleaved" if interleave else "sequential", "onnxruntime": onnxruntime.__version__, "execution_provider": "CPUExecutionProvider",
                     "intra_op_num_threads": options.threads, "cpu_count": os.cpu_count(),
                     "machine": platform.machine(), "python": platform.python_version()},
        timings={"export_seconds": prepared.export_seconds, "total_seconds": time.perf_counter() - started},
        warnings=warnings,
    )
    say("Done", 1.0)
    return report


def write_report(report: ComparisonReport, out_dir: Path) -> Path:
    import json

    path = Path(out_dir) / REPORT_NAME
    path.write_text(json.dumps(report.to_dict(), indent=2, default=_json_default), encoding="utf-8")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json_dict(report: ComparisonReport) -> dict[str, Any]:
    """report.to_dict() with numpy scalars turned into Python numbers (what json.dumps accepts)."""
    import json

    return json.loads(json.dumps(report.to_dict(), default=_json_default))


def run_comparison_job(payload: dict, job_dir: Path, progress: Progress) -> dict:
    """Worker entry point for core.jobs (runs in the child process; payload and result are JSON).

    payload: {"source": "demo" | absolute path of the validated model inside job_dir,
              "options": CompareOptions.to_dict() (or a subset), "inputs": [texts] | {"npz": path} | None}.
    Writes the variants and report.json under job_dir/out and returns the report as a dict.
    """
    job_dir = Path(job_dir).resolve()
    source = payload.get("source")
    if source != "demo":
        if not isinstance(source, str):
            raise QuantLensError("bad_payload", "The job has no model source.")
        path = Path(source).resolve()
        if not path.is_relative_to(job_dir):
            raise QuantLensError("bad_payload", "The model must be inside the job folder.")
        source = path
    inputs = payload.get("inputs")
    if isinstance(inputs, dict):
        npz = Path(str(inputs.get("npz", ""))).resolve()
        if not npz.is_relative_to(job_dir):
            raise QuantLensError("bad_payload", "The inputs file must be inside the job folder.")
        inputs = {"npz": npz}
    elif inputs is not None and not isinstance(inputs, list):
        raise QuantLensError("bad_payload", "inputs must be a list of texts, {\"npz\": path} or null.")
    options = CompareOptions.from_dict(payload.get("options") or {})
    out_dir = job_dir / "out"
    report = compare_model(source, options, out_dir, progress, inputs=inputs, name=payload.get("name"))
    write_report(report, out_dir)
    return to_json_dict(report)
