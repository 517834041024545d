"""Which file a launch command loads so that it runs at the verdict's format, not the 16-bit checkpoint.

"AWQ fits" is only true of an AWQ checkpoint: `vllm serve Qwen/Qwen3-30B-A3B` downloads the BF16 weights (~61 GB).
So per runtime and format this module names what to load:

- llama.cpp / Ollama: the GGUF type (`-hf repo:TYPE`): the verdict's own type for a GGUF format, F16/BF16/F32 for
  16/32-bit, and for an ideal INT8/INT4/INT3/INT2 the GGUF type that stands for it (Q8_0, Q4_K_M, Q3_K_M, Q2_K);
- vLLM / transformers: a published quantized checkpoint of a catalog model when one is known (QUANTIZED_REPOS,
  each checked on the Hub, publisher in the table), a repo whose name already says the format, else a placeholder
  `<org>/<name>-AWQ` with a note; FP8 without a published FP8 repo is vLLM's on-the-fly `--quantization fp8`;
  INT4/NF4 are bitsandbytes (`--quantization bitsandbytes` in vLLM, in-flight 4-bit; BitsAndBytesConfig in
  transformers); INT8 is a W8A8 checkpoint in vLLM (its in-flight bitsandbytes is 4-bit only) and
  `load_in_8bit=True` in transformers.

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.sizing.precisions import get_precision

# (catalog id, format) -> a published checkpoint in that format. Publishers: the model's own org (Qwen), or
# hugging-quants (AWQ/GPTQ INT4 of Llama 3.1 Instruct, huggingface.co/hugging-quants). The Llama ones are of the
# Instruct model: the same architecture and size as the base id the catalog lists.
QUANTIZED_REPOS: dict[tuple[str, str], str] = {
    ("meta-llama/Llama-3.1-8B", "AWQ-INT4"): "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",
    ("meta-llama/Llama-3.1-8B", "GPTQ-INT4"): "hugging-quants/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4",
    ("meta-llama/Llama-3.1-70B", "AWQ-INT4"): "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
    ("meta-llama/Llama-3.1-70B", "GPTQ-INT4"): "hugging-quants/Meta-Llama-3.1-70B-Instruct-GPTQ-INT4",
    ("Qwen/Qwen3-8B", "AWQ-INT4"): "Qwen/Qwen3-8B-AWQ",
    ("Qwen/Qwen3-8B", "FP8-SCALED"): "Qwen/Qwen3-8B-FP8",
    ("Qwen/Qwen3-32B", "AWQ-INT4"): "Qwen/Qwen3-32B-AWQ",
    ("Qwen/Qwen3-32B", "FP8-SCALED"): "Qwen/Qwen3-32B-FP8",
    ("Qwen/Qwen3-30B-A3B", "GPTQ-INT4"): "Qwen/Qwen3-30B-A3B-GPTQ-Int4",
    ("Qwen/Qwen3-30B-A3B", "FP8-SCALED"): "Qwen/Qwen3-30B-A3B-FP8",
    ("Qwen/Qwen3-235B-A22B", "GPTQ-INT4"): "Qwen/Qwen3-235B-A22B-GPTQ-Int4",
    ("Qwen/Qwen3-235B-A22B", "FP8-SCALED"): "Qwen/Qwen3-235B-A22B-FP8",
    ("Qwen/Qwen2.5-7B", "AWQ-INT4"): "Qwen/Qwen2.5-7B-Instruct-AWQ",
    ("Qwen/Qwen2.5-14B", "AWQ-INT4"): "Qwen/Qwen2.5-14B-Instruct-AWQ",
    ("Qwen/Qwen2.5-32B", "AWQ-INT4"): "Qwen/Qwen2.5-32B-Instruct-AWQ",
    ("Qwen/Qwen2.5-72B", "AWQ-INT4"): "Qwen/Qwen2.5-72B-Instruct-AWQ",
}

_IDEAL_GGUF = {"fp32": "F32", "fp16": "F16", "bf16": "BF16", "fp8": "Q8_0", "int8": "Q8_0", "int4": "Q4_K_M",
               "int3": "Q3_K_M", "int2": "Q2_K"}
_NAME_SAYS = {"AWQ-INT4": ("awq",), "GPTQ-INT4": ("gptq",), "FP8-SCALED": ("fp8",), "int8": ("w8a8", "int8")}
_WORDS = {"AWQ-INT4": "an AWQ 4-bit", "GPTQ-INT4": "a GPTQ 4-bit", "int8": "an INT8 W8A8 (compressed-tensors)",
          "FP8-SCALED": "an FP8"}
_SUFFIX = {"AWQ-INT4": "-AWQ", "GPTQ-INT4": "-GPTQ-Int4", "int8": "-quantized.w8a8", "FP8-SCALED": "-FP8"}


def gguf_type(precision: str) -> tuple[str, str]:
    """The GGUF type llama.cpp/Ollama load for a verdict's format, and a note saying which and why."""
    p = get_precision(precision)
    if p.gguf_ftype:
        return p.gguf_ftype, f"GGUF type {p.gguf_ftype}: the verdict's format."
    if p.name in _IDEAL_GGUF:
        t = _IDEAL_GGUF[p.name]
        why = "a 16/32-bit GGUF of the same size" if t in ("F16", "BF16", "F32") else f"llama.cpp's {t} stands for it"
        return t, f"GGUF type {t} for the verdict's {p.label} ({why})."
    return "Q4_K_M", f"GGUF type Q4_K_M: llama.cpp cannot load {p.label}; Q4_K_M is its 4-bit equivalent."


@dataclass(frozen=True)
class Checkpoint:
    """What vLLM or transformers loads for one format: the repo (or a placeholder), extra flags, and why."""

    repo: str
    vllm_flags: tuple[str, ...] = ()
    transformers_kwargs: str = ""  # appended to from_pretrained(...)
    note: str = ""
    placeholder: bool = False


def _named_for(repo: str | None, fmt: str) -> bool:
    return bool(repo) and any(w in repo.lower() for w in _NAME_SAYS.get(fmt, ()))


def checkpoint(repo: str | None, precision: str, catalog_id: str | None = None,
               repo_precision: str | None = None, runtime: str = "vllm") -> Checkpoint:
    """The checkpoint that realises `precision` starting from `repo` (a 16-bit checkpoint unless `repo_precision`
    or its name says otherwise). `repo` must already be a safe Hub id (or None)."""
    p = get_precision(precision)
    base = repo or "<org>/<repo>"
    fmt = {"awq": "AWQ-INT4", "gptq": "GPTQ-INT4", "fp8": "FP8-SCALED"}.get(p.family) or \
        ("FP8-SCALED" if p.name == "fp8" else p.name)
    stored = get_precision(repo_precision).name if repo_precision else None
    if fmt in ("fp16", "bf16"):
        return Checkpoint(base)
    if fmt == "fp32":
        return Checkpoint(base, ("--dtype float32",), ", torch_dtype='float32'")
    if fmt in ("int4", "NF4"):
        return Checkpoint(base, ("--quantization bitsandbytes",),
                          ", quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4')",
                          "bitsandbytes quantizes the 16-bit weights to 4-bit NF4 while loading.")
    if fmt not in _SUFFIX:
        return Checkpoint(base)
    if stored == fmt or (stored is None and _named_for(repo, fmt)):
        return Checkpoint(base, note=f"{base} is stored in that format: vLLM and transformers read it from its config.")
    known = QUANTIZED_REPOS.get((catalog_id or repo or "", fmt))
    if known:
        return Checkpoint(known, note=f"{known} is a published {_WORDS[fmt][_WORDS[fmt].index(' ') + 1:]} "
                                      "checkpoint of this model; the format is read from its config.")
    if fmt == "FP8-SCALED":
        return Checkpoint(base, ("--quantization fp8",), ", quantization_config=FineGrainedFP8Config()",
                          "FP8 weights are made from the 16-bit checkpoint while loading (vLLM --quantization fp8; "
                          "transformers FineGrainedFP8Config, on a GPU with FP8 support).")
    if fmt == "int8" and runtime == "transformers":
        return Checkpoint(base, (), ", quantization_config=BitsAndBytesConfig(load_in_8bit=True)",
                          "bitsandbytes quantizes the 16-bit weights to 8-bit while loading (LLM.int8).")
    if fmt == "int8":
        return Checkpoint(_placeholder(repo, fmt), (), ", quantization_config=BitsAndBytesConfig(load_in_8bit=True)",
                          f"vLLM serves INT8 from an INT8 W8A8 (compressed-tensors) checkpoint: replace "
                          f"{_placeholder(repo, fmt)} with one (its in-flight bitsandbytes is 4-bit only).", True)
    other = next((QUANTIZED_REPOS[(catalog_id or repo or "", f)] for f in ("GPTQ-INT4", "AWQ-INT4")
                  if f != fmt and (catalog_id or repo or "", f) in QUANTIZED_REPOS), None)
    hint = f" ({other} is a published checkpoint of the other 4-bit format, about the same size.)" if other else ""
    return Checkpoint(_placeholder(repo, fmt), note=f"Serve {_WORDS[fmt]} checkpoint of this model: replace "
                                                    f"{_placeholder(repo, fmt)} with one (the format is read from "
                                                    f"its config).{hint}", placeholder=True)


def _placeholder(repo: str | None, fmt: str) -> str:
    name = repo.split("/", 1)[1] if repo else "<repo>"
    return f"<org>/{name}{_SUFFIX[fmt]}"
