"""The precision registry: ideal bit widths and the real storage formats people actually download.

Why two kinds: "INT4 = 0.5 byte per parameter" is the clean theory (and what the seed table uses:
7B -> 3.5 GB), but no real 4-bit file is that small. Real formats carry block scales (GGUF), group
scales and zeros (AWQ/GPTQ), double-quantized absmax (bitsandbytes NF4), and keep some tensors at
higher precision (embeddings, output layer, norms). The calculator shows both side by side so the
gap is visible.

Settings are data: adding a format means adding an entry here (and, for a new kind of layout, a
branch in `core.sizing.weights_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from core.errors import QuantLensError

PPL_SOURCE_LLAMA3 = (
    "llama.cpp tools/quantize/quantize.cpp (QUANT_OPTIONS): perplexity increase over FP16 on Llama-3-8B, wikitext-2"
)
PPL_SOURCE_MISTRAL = "llama.cpp tools/quantize/quantize.cpp (QUANT_OPTIONS): perplexity change on Mistral-7B"


@dataclass(frozen=True)
class Precision:
    """One way to store weights.

    family: "ideal" (every parameter at exactly `bits`), "gguf" (llama.cpp file type, sized per tensor),
    "awq" / "gptq" (4-bit linear layers with group-128 scales), "bnb" (bitsandbytes NF4), "fp8"
    (8-bit linear layers with a per-tensor scale).
    bits_per_weight: exact bits for ideal types; for real formats the bits of the main quantized type
    (the whole-model average is larger and depends on the model: see core.sizing.gguf and core.sizing.weights).
    """

    name: str
    label: str
    family: str
    bits_per_weight: Fraction
    description: str
    ppl_delta: float | None = None
    ppl_source: str | None = None
    gguf_ftype: str | None = None

    @property
    def is_ideal(self) -> bool:
        return self.family == "ideal"


def _ideal(name: str, label: str, bits: int, description: str) -> Precision:
    return Precision(name, label, "ideal", Fraction(bits), description)


def _gguf(ftype: str, bits: str, description: str, ppl: float | None = None, source: str | None = None) -> Precision:
    name = f"GGUF-{ftype}" if ftype in ("F32", "F16", "BF16") else ftype
    return Precision(
        name=name,
        label=f"GGUF {ftype}",
        family="gguf",
        bits_per_weight=Fraction(bits),
        description=description,
        ppl_delta=ppl,
        ppl_source=source if ppl is not None else None,
        gguf_ftype=ftype,
    )


_L3 = PPL_SOURCE_LLAMA3
# Group-128 AWQ/GPTQ: 4 bits + one 16-bit scale and one 4-bit zero per 128 weights = 4 + 20/128 bits.
AWQ_BITS = Fraction(4) + Fraction(16 + 4, 128)
NF4_BITS = Fraction("4.127")  # QLoRA paper (arXiv 2305.14314): NF4 with double quantization, blocksize 64

PRECISIONS: tuple[Precision, ...] = (
    _ideal("fp32", "FP32", 32, "Full single precision: 4 bytes per parameter. Training master weights."),
    _ideal("fp16", "FP16", 16, "Half precision: 2 bytes per parameter. The usual inference baseline."),
    _ideal("bf16", "BF16", 16, "bfloat16: 2 bytes, FP32's range with less precision; what most checkpoints ship in."),
    _ideal("fp8", "FP8", 8, "8-bit float (E4M3): 1 byte per parameter, ideal (no scales counted)."),
    _ideal("int8", "INT8", 8, "8-bit integer: 1 byte per parameter, ideal (no scales counted)."),
    _ideal("int4", "INT4", 4, "4-bit integer: exactly 0.5 byte per parameter, ideal (no scales counted)."),
    _ideal("int3", "INT3", 3, "3-bit integer: 0.375 byte per parameter, ideal."),
    _ideal("int2", "INT2", 2, "2-bit integer: 0.25 byte per parameter, ideal; quality usually collapses here."),
    _gguf("F32", "32", "GGUF with every tensor in FP32."),
    _gguf("F16", "16", "GGUF with 2-D tensors in FP16 (norms stay FP32).", 0.0020, PPL_SOURCE_MISTRAL),
    _gguf("BF16", "16", "GGUF with 2-D tensors in BF16 (norms stay FP32).", -0.0050, PPL_SOURCE_MISTRAL),
    _gguf("Q8_0", "8.5", "8-bit blocks of 32 with an FP16 scale. Practically lossless.", 0.0026, _L3),
    _gguf("Q6_K", "6.5625", "6-bit K-quant super-blocks of 256.", 0.0217, _L3),
    _gguf("Q5_K_M", "5.5", "5-bit K-quant; attn_v/ffn_down at Q6_K on half the layers.", 0.0569, _L3),
    _gguf("Q5_K_S", "5.5", "5-bit K-quant, output layer at Q6_K.", 0.1049, _L3),
    _gguf("Q5_1", "6", "Legacy 5-bit blocks of 32 with scale and minimum.", 0.1062, _L3),
    _gguf("Q5_0", "5.5", "Legacy 5-bit blocks of 32 with a scale.", 0.1316, _L3),
    _gguf("Q4_K_M", "4.5", "4-bit K-quant; attn_v/ffn_down at Q6_K on half the layers. The popular default.", 0.1754, _L3),
    _gguf("Q4_K_S", "4.5", "4-bit K-quant; first layers' attn_v/ffn_down at Q5_K.", 0.2689, _L3),
    _gguf("Q4_1", "5", "Legacy 4-bit blocks of 32 with scale and minimum.", 0.4511, _L3),
    _gguf("Q4_0", "4.5", "Legacy 4-bit blocks of 32 with a scale.", 0.4685, _L3),
    _gguf("IQ4_NL", "4.5", "4-bit non-linear (lookup-table) blocks of 32."),
    _gguf("IQ4_XS", "4.25", "4-bit non-linear super-blocks of 256."),
    _gguf("MXFP4_MOE", "4.25", "OCP MXFP4 for MoE expert tensors, Q8_0 elsewhere (gpt-oss style)."),
    _gguf("Q3_K_L", "3.4375", "3-bit K-quant; attn_v, attn_output, ffn_down at Q5_K.", 0.5562, _L3),
    _gguf("Q3_K_M", "3.4375", "3-bit K-quant; attn_v/attn_output/ffn_down at Q4_K-Q5_K.", 0.6569, _L3),
    _gguf("Q3_K_S", "3.4375", "3-bit K-quant, output layer at Q6_K.", 1.6321, _L3),
    _gguf("IQ3_M", "3.4375", "3-bit i-quant mix (IQ3_S with Q4_K attention/ffn_down)."),
    _gguf("IQ3_S", "3.4375", "3-bit i-quant (lattice codebook)."),
    _gguf("IQ3_XS", "3.4375", "3-bit i-quant mix around 3.3 bpw."),
    _gguf("IQ3_XXS", "3.0625", "3-bit i-quant, smallest; an importance matrix is recommended."),
    _gguf("Q2_K", "2.625", "2-bit K-quant; attn_v at Q4_K (GQA), ffn_down/attn_output at Q3_K.", 3.5199, _L3),
    _gguf("Q2_K_S", "2.625", "2-bit K-quant, smaller mix; needs an importance matrix.", 3.1836, _L3),
    _gguf("IQ2_M", "2.5625", "2-bit i-quant mix; needs an importance matrix."),
    _gguf("IQ2_S", "2.3125", "2-bit i-quant; needs an importance matrix."),
    _gguf("IQ2_XS", "2.3125", "2-bit i-quant; needs an importance matrix."),
    _gguf("IQ2_XXS", "2.0625", "2-bit i-quant, smallest; needs an importance matrix."),
    _gguf("IQ1_M", "1.75", "1.75-bit i-quant; needs an importance matrix. Large quality loss."),
    _gguf("IQ1_S", "1.5625", "1.56-bit i-quant; needs an importance matrix. Large quality loss."),
    _gguf("TQ2_0", "2.0625", "Ternary 2-bit packing, for models trained ternary (BitNet b1.58)."),
    _gguf("TQ1_0", "1.6875", "Ternary 1.69-bit packing, for models trained ternary (BitNet b1.58)."),
    Precision(
        "AWQ-INT4", "AWQ 4-bit g128", "awq", AWQ_BITS,
        "Activation-aware 4-bit weights, group size 128 (FP16 scale + 4-bit zero per group); embeddings and "
        "output layer stay 16-bit.",
    ),
    Precision(
        "GPTQ-INT4", "GPTQ 4-bit g128", "gptq", AWQ_BITS,
        "GPTQ 4-bit weights, group size 128 (FP16 scale + 4-bit zero per group, plus an int32 g_idx per input "
        "column); embeddings and output layer stay 16-bit.",
    ),
    Precision(
        "NF4", "bitsandbytes NF4", "bnb", NF4_BITS,
        "bitsandbytes 4-bit NormalFloat with double quantization (4.127 bits, QLoRA paper); embeddings and "
        "lm_head stay 16-bit.",
    ),
    Precision(
        "FP8-SCALED", "FP8 (per-tensor scale)", "fp8", Fraction(8),
        "FP8 E4M3 linear weights with one FP32 scale per tensor (vLLM/llm-compressor style); embeddings and "
        "lm_head stay 16-bit.",
    ),
)

_BY_NAME: dict[str, Precision] = {p.name.lower(): p for p in PRECISIONS}
# llama-quantize's own aliases, and common spellings.
_ALIASES = {"q4_k": "q4_k_m", "q5_k": "q5_k_m", "q3_k": "q3_k_m", "awq": "awq-int4", "gptq": "gptq-int4",
            "bnb-nf4": "nf4", "float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float32": "fp32",
            "mxfp4": "mxfp4_moe"}
IDEAL_NAMES: tuple[str, ...] = tuple(p.name for p in PRECISIONS if p.is_ideal)
REAL_NAMES: tuple[str, ...] = tuple(p.name for p in PRECISIONS if not p.is_ideal)
DEFAULT_NAMES: tuple[str, ...] = ("fp16", "int8", "int4", "Q8_0", "Q4_K_M", "AWQ-INT4", "NF4")


def get_precision(name: str) -> Precision:
    """Look a precision up by name, case-insensitively ("q4_k_m", "GGUF-Q4_K_M" and "Q4_K_M" all work)."""
    if not isinstance(name, str) or not name.strip():
        raise QuantLensError("unknown_precision", "Precision name is empty.")
    key = name.strip().lower()
    if key.startswith("gguf-") and key not in _BY_NAME:
        key = key[5:]
    key = _ALIASES.get(key, key)
    found = _BY_NAME.get(key)
    if found is None:
        import difflib

        close = difflib.get_close_matches(key, list(_BY_NAME), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(_BY_NAME[c].name for c in close)}?" if close else ""
        raise QuantLensError(
            "unknown_precision", f"Unknown precision {name.strip()[:40]!r}.{hint} Use `all` or one of: {', '.join(p.name for p in PRECISIONS)}."
        )
    return found


def parse_precision_list(text: str) -> tuple[Precision, ...]:
    """`"fp16,int4,Q4_K_M"` or `"all"` (or `"ideal"` / `"real"`) -> precisions, in the given order, no duplicates."""
    if not isinstance(text, str) or not text.strip():
        raise QuantLensError("unknown_precision", "Give at least one precision, e.g. fp16,int8,int4 or all.")
    key = text.strip().lower()
    if key == "all":
        return PRECISIONS
    if key == "ideal":
        return tuple(p for p in PRECISIONS if p.is_ideal)
    if key == "real":
        return tuple(p for p in PRECISIONS if not p.is_ideal)
    out: list[Precision] = []
    for part in text.split(","):
        if part.strip():
            p = get_precision(part)
            if p not in out:
                out.append(p)
    if not out:
        raise QuantLensError("unknown_precision", "Give at least one precision, e.g. fp16,int8,int4 or all.")
    return tuple(out)
