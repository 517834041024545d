"""The quantization techniques, one module each, behind one signature and one registry.

Adding a technique means adding a module and a line in TECHNIQUES (the Olive pass pattern), not editing an
if-chain in the pipeline. Every technique is ONNX Runtime's own, so what QuantLens measures is what a user gets
by running the same ORT tools, with the choices that keep accuracy where the plain defaults lose it:

- FP16: `OnnxModel.convert_float_to_float16(keep_io_types=True)` (onnxconverter-common's output fails to load in
  onnxruntime 1.32).
- INT8 (int8_auto): the method per model. Convolutional models get static QDQ per-channel (int8_conv), measured
  against the alternatives; transformer MatMul models get dynamic INT8 with per-channel weights by default (MiniLM keeps cosine 0.994 vs 0.965 per-tensor, same speed), after
  ORT's transformer fusions on BERT-like encoders.
- INT8 static (QDQ, calibrated on the user's inputs): plain MinMax on every op gives cosine 0.71-0.81 on MiniLM, so
  only MatMuls with constant weights are quantized and those whose inputs have outliers stay in float.
- INT4: weight-only, block-wise `MatMulNBitsQuantizer` (RTN or HQQ) with calibrated clipping, the layers 4 bits
  damage most stored at 8 bits, and the word-embedding table at 4 bits. MiniLM: cosine 0.980, 6.2x smaller.

Shared by the techniques: graph (graph facts and rewrites) and calibration (activations on the user's inputs).
Stage 3 of core/compare: a technique imports common/, inputs/, prepare/ and this folder only. INT8's candidate
search measures each candidate with the probe its caller hands in (core.compare.judge.candidates), since judging
comes after building.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.compare.common.settings import FILE_NAMES
from core.compare.techniques.base import ProbeFactory, QuantizedModel, Technique
from core.errors import QuantLensError

if TYPE_CHECKING:
    from core.compare.common.settings import CompareOptions
    from core.compare.inputs.feeds import Feeds


def _fp16(src: Path, dst: Path, options: CompareOptions, feeds: Feeds,
          probe: ProbeFactory | None) -> QuantizedModel:
    from core.compare.techniques.fp16 import quantize_fp16

    return quantize_fp16(src, dst, options.fp16)


def _int8_dynamic(src: Path, dst: Path, options: CompareOptions, feeds: Feeds,
                  probe: ProbeFactory | None) -> QuantizedModel:
    from core.compare.techniques.int8_auto import quantize_int8

    return quantize_int8(src, dst, options, feeds, probe)


def _int8_static(src: Path, dst: Path, options: CompareOptions, feeds: Feeds,
                 probe: ProbeFactory | None) -> QuantizedModel:
    from core.compare.techniques.int8_static import quantize_int8_static

    return quantize_int8_static(src, dst, feeds.calibration, options.int8_static)


def _int4(src: Path, dst: Path, options: CompareOptions, feeds: Feeds,
          probe: ProbeFactory | None) -> QuantizedModel:
    from core.compare.techniques.int4 import quantize_int4

    return quantize_int4(src, dst, options.int4, feeds.per_input)


TECHNIQUES: dict[str, Technique] = {"fp16": _fp16, "int8": _int8_dynamic, "int8-static": _int8_static, "int4": _int4}


def quantize(precision: str, fp32: Path, out_dir: Path, options: CompareOptions, feeds: Feeds,
             probe: ProbeFactory | None = None) -> QuantizedModel:
    """Write `precision`'s variant of the FP32 file under its fixed name in `out_dir`. `probe` lets INT8 measure
    its candidates on a convolutional model (core.compare.judge.candidates.CandidateProbe)."""
    technique = TECHNIQUES.get(precision)
    if technique is None:
        raise QuantLensError("unknown_precision", f"Unknown precision {precision!r}.")
    return technique(fp32, out_dir / FILE_NAMES[precision], options, feeds, probe)


__all__ = ["TECHNIQUES", "ProbeFactory", "QuantizedModel", "Technique", "quantize"]
