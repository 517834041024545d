"""Make an uploaded ONNX file quantizable: opset 13+, constants folded into initializers, shapes inferred.

Why: published models (PaddleOCR's, exported from Paddle) keep their weights behind Constant/Identity nodes, so
ORT's quantizers fail with "Expected conv2d_394.w_0 to be an initializer"; graphs at opset < 13 cannot hold the
per-channel QDQ nodes (DequantizeLinear gets its `axis` at 13) that convolutional models need. ORT's own answer
is `quant_pre_process` (shape inference + its basic graph optimisations, which fold constants and fuse
BatchNorm into Conv), which is what runs here, on every uploaded .onnx before any precision is built.

The result is numerically the same model (basic optimisations only rewrite, never approximate) and it is the
FP32 variant QuantLens measures and offers for download: ORT would apply the same rewrites when loading it.
If a step fails (an op that shape inference does not know, an operator set the converter cannot lift), the
model is kept as it was and a note says which step was skipped, so the comparison still runs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from core.compare.common.onnx_io import load_model_checked, quiet_ort_logging, save_model_fixed, short_error

MIN_QDQ_OPSET = 13  # per-channel DequantizeLinear (the `axis` attribute) needs opset 13


@dataclass(frozen=True)
class PreprocessResult:
    """What pre-processing did to the file at `path` (rewritten in place), in sentences for the report."""

    path: Path
    applied: bool
    opset_before: int
    opset_after: int
    notes: tuple[str, ...] = field(default=())


def _default_opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def preprocess_for_quantization(path: Path) -> PreprocessResult:
    """Rewrite the FP32 file at `path` through opset upgrade and ORT's quant_pre_process; keep it if that fails."""
    import onnx

    quiet_ort_logging()
    path = Path(path)
    model = load_model_checked(path)
    before = _default_opset(model)
    notes: list[str] = []
    if 0 < before < MIN_QDQ_OPSET:
        try:
            from onnx import version_converter

            model = version_converter.convert_version(model, MIN_QDQ_OPSET)
            notes.append(f"Operator set upgraded from {before} to {MIN_QDQ_OPSET} (per-channel INT8 needs it).")
        except Exception as exc:  # the converter raises plain RuntimeError/ValueError/onnx errors per op
            notes.append(f"Operator set {before} kept (the upgrade to {MIN_QDQ_OPSET} failed: {short_error(exc)}); "
                         "INT8 falls back to per-tensor scales.")
    with tempfile.TemporaryDirectory(prefix="quantlens-pre-") as tmp:
        staged, out = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save_model(model, str(staged))
        error = _quant_pre_process(staged, out)
        if error is None:
            try:
                model = load_model_checked(out)
                _check_loads(out)
                notes.append("Pre-processed with ONNX Runtime's quant_pre_process (constants folded into weights, "
                             "BatchNorm fused, shapes inferred); numerically the same model.")
            except Exception as exc:  # a rewrite ORT itself cannot load: keep the model before it
                error = short_error(exc)
                model = load_model_checked(staged)
        if error is not None:
            notes.append(f"ONNX Runtime's quant_pre_process was skipped ({error}); the model is quantized as uploaded.")
    save_model_fixed(model, path)
    return PreprocessResult(path, error is None, before, _default_opset(model), tuple(notes))


def _quant_pre_process(src: Path, dst: Path) -> str | None:
    """ORT's pre-processing; symbolic shape inference (for transformers) first, plain ONNX inference if it fails.

    Run from inside `dst`'s folder: when symbolic inference gives up, ORT saves "sym_shape_infer_temp.onnx" and
    its external data into the *current directory* (measured on PaddleOCR's det/rec: 3 MB per call).
    """
    import contextlib

    from onnxruntime.quantization.shape_inference import quant_pre_process

    error = None
    with contextlib.chdir(Path(dst).parent):
        for skip_symbolic in (False, True):
            try:
                quant_pre_process(str(src), str(dst), skip_symbolic_shape=skip_symbolic)
                return None
            except Exception as exc:  # SymbolicShapeInference raises bare Exception / AssertionError
                error = short_error(exc)
    return error


def _check_loads(path: Path) -> None:
    import onnxruntime as ort

    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
