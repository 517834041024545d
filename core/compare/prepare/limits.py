"""Refuse, before any export, a model whose FP32 ONNX file would not fit in one file.

Why up front: protobuf cannot serialise a message over 2 GB, and ORT's own tools (shape inference inside the
FP16 converter, the quantizers' in-memory passes) serialise the whole model. Found late, that surfaces as
"Failed to serialize proto" after minutes of export; found here it is one sentence that states the limit.
The FP32 size is read from the safetensors headers (never the weights) and, for a model whose input embedding
and output head share one table, counts that table twice: the exported graph stores it for the Gather and
again, transposed, for the head's MatMul (Qwen2.5-0.5B: 494M weights, a 2.5 GB FP32 ONNX file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.compare.common.onnx_io import MAX_SINGLE_FILE_BYTES
from core.errors import QuantLensError

FLOAT_DTYPES = ("F32", "F16", "BF16", "F64", "F8_E5M2", "F8_E4M3")


@dataclass(frozen=True)
class Fp32Estimate:
    weights: int  # floating-point weights stored in the folder
    duplicated: int  # weights the export stores twice (a tied embedding / output head)

    @property
    def onnx_bytes(self) -> int:
        return 4 * (self.weights + self.duplicated)


def estimate_fp32_onnx(model_dir: Path, config: dict) -> Fp32Estimate:
    """Weights from the safetensors headers (the sizing engine's count from config.json when there are none)."""
    from core.gate.safetensors_header import read_header

    weights = 0
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        weights += sum(t.elements for t in read_header(path).tensors if t.dtype in FLOAT_DTYPES)
    duplicated = 0
    try:
        from core.sizing.architecture import architecture_from_config, parameter_count

        arch = architecture_from_config(config)
        if not weights:
            weights = parameter_count(arch)
        if arch.tie_word_embeddings and not arch.is_encoder:
            duplicated = arch.vocab_size * arch.hidden_size
    except (QuantLensError, KeyError, ValueError, TypeError):
        pass
    return Fp32Estimate(weights, duplicated)


def check_fits_single_file(model_dir: Path, config: dict, limit_bytes: int = MAX_SINGLE_FILE_BYTES) -> Fp32Estimate:
    """The estimate, or `model_too_large` naming the size, the limit and the largest model that fits."""
    estimate = estimate_fp32_onnx(model_dir, config)
    if estimate.onnx_bytes > limit_bytes:
        tied = " (its tied embedding table stored twice)" if estimate.duplicated else ""
        raise QuantLensError(
            "model_too_large",
            f"This model's FP32 ONNX file would be about {estimate.onnx_bytes / 1e9:.2f} GB "
            f"({(estimate.weights + estimate.duplicated) / 1e6:,.0f}M weights x 4 bytes{tied}), over the "
            f"{limit_bytes / 1e9:.1f} GB one ONNX file can hold here (protobuf's 2 GB limit); "
            f"models up to about {limit_bytes / 4e6:,.0f}M exported weights fit.")
    return estimate
