"""Whether a precision was made, made but changed nothing, or failed, and why, in one sentence.

One precision failing must not throw away the others (an INT8 that fails on a scikit-learn graph says so and
FP32/FP16 are still shown), and a precision whose quantizer left every weight as it was (weights inside If
subgraphs, a CNN without MatMul for INT4, attribute-held coefficients of ai.onnx.ml operators) is reported as
"unchanged" rather than as a variant that is a few per cent faster or smaller by noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.compare.common.settings import LABELS
from core.errors import QuantLensError

STATUS_OK = "ok"
STATUS_UNCHANGED = "unchanged"

STAGE_QUANTIZE = "quantize"
STAGE_RUN = "run"

MEMORY_MARKERS = ("MemoryError", "bad_alloc", "Failed to allocate memory", "Cannot allocate memory",
                  "std::bad_alloc", "out of memory")


@dataclass(frozen=True)
class VariantFailure:
    """A precision that could not be made or run: which step failed and the reason a user can act on."""

    precision: str
    label: str
    stage: str  # "quantize" or "run"
    code: str
    message: str


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text[:limit] + "..." if len(text) > limit else text


def explain_failure(precision: str, stage: str, exc: BaseException) -> VariantFailure:
    """Map what a quantizer or onnxruntime raised to a stable code and one sentence naming the cause."""
    label = LABELS.get(precision, precision)
    text = str(exc)
    kind = getattr(exc, "original_type", type(exc).__name__)  # step_process keeps the child's exception type
    from core.compare.common.step_process import StepCrashed

    if isinstance(exc, StepCrashed):
        if exc.memory:
            from core.compare.common.memory import how_to_raise

            return VariantFailure(precision, label, stage, "resource_limit_memory",
                                  f"{label} ran out of memory while {_doing(stage)} ({exc.signal_name}); "
                                  f"{how_to_raise()}. The other precisions are shown.")
        return VariantFailure(precision, label, stage, "quantize_crashed",
                              f"{label} crashed the runtime while {_doing(stage)} ({exc.signal_name}); the other "
                              "precisions are shown.")
    if isinstance(exc, QuantLensError):
        code, message = exc.code, exc.message
        if "ai.onnx domain" in message or "ai.onnx.ml" in message:
            code, message = _non_neural(label)
        return VariantFailure(precision, label, stage, code, message)
    if isinstance(exc, MemoryError) or any(m in text for m in MEMORY_MARKERS):
        return VariantFailure(precision, label, stage, "resource_limit_memory",
                              f"{label} ran out of memory while {_doing(stage)}; the other precisions are shown.")
    if kind == "EncodeError" or "exceeds maximum protobuf size" in text or "2GiB" in text \
            or "2GB" in text:
        return VariantFailure(precision, label, stage, "model_too_large_single_file",
                              f"{label} could not be written: the graph is larger than ONNX's 2 GB single-file limit.")
    if "ai.onnx domain" in text:
        code, message = _non_neural(label)
        return VariantFailure(precision, label, stage, code, message)
    verb = "quantization failed" if stage == STAGE_QUANTIZE else "failed to run in onnxruntime"
    return VariantFailure(precision, label, stage, "quantize_failed" if stage == STAGE_QUANTIZE else "model_failed_runtime",
                          f"{label} {verb}: {kind}: {_short(text) or 'no message'}")


def _non_neural(label: str) -> tuple[str, str]:
    return ("unsupported_operators",
            f"{label} cannot be made: the model is built from non-neural ai.onnx.ml operators (e.g. a scikit-learn "
            "LinearClassifier or TreeEnsemble), which ONNX Runtime's quantizer does not handle.")


def _doing(stage: str) -> str:
    return "being quantized" if stage == STAGE_QUANTIZE else "being loaded and run"


_LOW_PRECISION_TYPES = {
    "fp16": ("FLOAT16", "BFLOAT16"),
    "int8": ("INT8", "UINT8", "INT4", "UINT4"),
    "int8-static": ("INT8", "UINT8", "INT4", "UINT4"),
    "int4": ("INT4", "UINT4", "INT8", "UINT8"),
}


def low_precision_elements(path: Path, precision: str) -> int:
    """Elements stored in `precision`'s target types anywhere in the file (initializers, Constants, subgraphs)."""
    import math

    import onnx

    from core.compare.common.onnx_io import iter_tensors, load_model_checked

    wanted = {getattr(onnx.TensorProto, name) for name in _LOW_PRECISION_TYPES.get(precision, ()) if
              hasattr(onnx.TensorProto, name)}
    model = load_model_checked(path)
    return sum(math.prod(t.dims) if t.dims else 1 for t in iter_tensors(model) if t.data_type in wanted)


def quantized_nothing(fp32_path: Path, variant_path: Path, precision: str) -> bool:
    """True when the variant stores no more low-precision weights than the FP32 file did: nothing was converted."""
    if precision not in _LOW_PRECISION_TYPES:
        return False
    return low_precision_elements(variant_path, precision) <= low_precision_elements(fp32_path, precision)


def reference_run_error(exc: BaseException, feeds) -> QuantLensError:
    """FP32 failing to run ends the comparison (everything is measured against it); say which input to give.

    Generated inputs are random values from the declared shapes; a scalar input the model checks (silero-vad's
    `sr` sample rate) or an index input out of range makes FP32 fail, so the sentence names those inputs and
    the .npz that fixes it.
    """
    if isinstance(exc, QuantLensError):
        return exc
    failure = explain_failure("fp32", STAGE_RUN, exc)
    if failure.code == "resource_limit_memory":
        return QuantLensError(failure.code, failure.message.replace("; the other precisions are shown.", "."))
    if getattr(feeds, "source", None) != "generated" or not feeds.per_input:
        return QuantLensError(failure.code, failure.message)
    first = feeds.per_input[0]
    scalars = [name for name, value in first.items() if getattr(value, "ndim", 1) == 0]
    integers = [name for name, value in first.items() if getattr(value, "dtype", None) is not None
                and value.dtype.kind in "iu" and name not in scalars]
    hint = ""
    if scalars:
        example = ", ".join(f"{n}=np.array(VALUE, dtype=np.{first[n].dtype})" for n in scalars)
        hint = (f" The scalar input(s) {', '.join(scalars)} got a made-up value ({', '.join(str(first[n]) for n in scalars)});"
                f" give the real one (e.g. a sample rate such as 16000) in an .npz: np.savez('inputs.npz', {example}, ...).")
    elif integers:
        hint = (f" The integer input(s) {', '.join(integers)} got random values in [0, 8); give real ones in an .npz.")
    return QuantLensError("model_failed_runtime",
                          f"FP32 failed to run on generated inputs: {_short(str(exc), 160)}.{hint or ' Upload an .npz of real inputs.'}")


def check_reference_runs(fp32_path: Path, feeds, threads: int) -> None:
    """Run FP32 once on the first input, so inputs it cannot take fail in seconds, not after every quantizer."""
    from core.compare.common.onnx_io import make_session

    error = None
    try:
        make_session(fp32_path, threads).run(None, feeds.per_input[0])
    except Exception as exc:  # onnxruntime's own exception types
        error = reference_run_error(exc, feeds)
    if error is not None:  # raised out here: a traceback through the session's frame would keep its threads alive,
        raise error  # and later steps fork (step_process), which must not happen while ORT threads run


def unchanged_reason(fp32_path: Path) -> str:
    """Why a quantizer may have converted nothing: the ops that hold this model's weights, in words."""
    from core.compare.common.onnx_io import load_model_checked

    model = load_model_checked(fp32_path)
    ml_ops = sorted({n.op_type for n in model.graph.node if n.domain == "ai.onnx.ml"})
    if ml_ops:
        return (f" Its weights sit in non-neural ai.onnx.ml operators ({', '.join(ml_ops[:4])}), which ONNX Runtime's "
                "quantizers do not convert: keep FP32.")
    return ""
