"""The terms people confuse, written once: the home page and the calculator both read them from here.

Standard library only (plain strings), so any page or the command line can show the same words.
"""

from __future__ import annotations

GLOSSARY: tuple[tuple[str, str, str], ...] = (
    ("gb_gib", "GB or GiB?",
     "A **GB** is 10^9 bytes; a **GiB** is 2^30 = 1,073,741,824 bytes, 7.4% more. Model files and the 7B = 14 GB "
     "rule use GB; GPU memory (\"24 GB\" cards) and most tools' readouts are GiB. A 24 GiB card holds 25.8 GB."),
    ("ptq_qat", "PTQ vs QAT",
     "**Post-training quantization (PTQ)** rounds a finished model's weights to fewer bits (GGUF, AWQ, GPTQ, ONNX "
     "Runtime's INT8/INT4), sometimes with a little calibration data: minutes to hours. **Quantization-aware "
     "training (QAT)** simulates low precision during (re)training so the model learns to live with it: better at 4 "
     "bits and below, but it costs a training run."),
    ("quant_distill", "Quantization vs distillation",
     "**Quantization** keeps the same network and stores its numbers in fewer bits. **Distillation** trains a "
     "*different, smaller* network to imitate a big one (e.g. DeepSeek-R1-Distill-Llama-8B): fewer parameters, new "
     "weights, a training run. They combine: a distilled 8B model can then be quantized."),
    ("formats", "GGUF vs AWQ vs GPTQ (vs bitsandbytes)",
     "**GGUF** is llama.cpp's file format; its K-quants mix types per tensor (Q4_K_M keeps the output layer and half "
     "the attn_v/ffn_down layers at 6 bits) and run on CPUs, Macs and GPUs. **AWQ** and **GPTQ** are 4-bit GPU "
     "formats (vLLM, transformers) with a 16-bit scale per group of 128 weights, using calibration data to protect "
     "the weights that matter. **bitsandbytes NF4** quantizes on load (4.127 bits with double quantization) and is "
     "what QLoRA uses."),
)


def term(key: str) -> tuple[str, str]:
    """(title, markdown) of one entry."""
    for k, title, text in GLOSSARY:
        if k == key:
            return title, text
    raise KeyError(key)
