"""Predicted vs measured: read the memory lines a runtime prints at load time and set them beside the estimate.

Nobody publishes predicted-vs-measured per component; every runtime prints what it allocated, though:

- llama.cpp (default log level; `-lv 4` adds per-layer lines we skip): `load_tensors: CUDA0 model buffer size =
  4403.49 MiB` (also `CPU_Mapped`, and older `llm_load_tensors: CUDA0 buffer size =`), `llama_kv_cache...: CUDA0 KV
  buffer size = 1024.00 MiB` or `KV self size = ...` / `llama_kv_cache: size = ...`, `compute buffer size`,
  `output buffer size`; a draft model's (speculative decoding) lines follow a "draft" line; a multimodal
  projector's follow a `clip`/`mtmd` line;
- Ollama: the same llama.cpp lines from its runner, plus its own estimate line (`memory.weights.total="4.3 GiB"
  memory.required.kv="1.0 GiB" memory.graph.full="560.0 MiB" projector.weights=...`);
- vLLM: `Loading model weights took 14.9888 GB` / `Model loading took 14.99 GiB`, `Available KV cache memory:
  6.51 GiB`, `GPU KV cache size: 42,656 tokens`, `Maximum concurrency for 32,768 tokens per request: 1.30x`,
  `# GPU blocks: 1952` (older versions; x 16 tokens).

The log is hostile input: it is capped in size and line length, only numbers matched by fixed patterns are kept
(never any of its text), and what travels in a link is those numbers (`to_link` / `from_link`), never the log.
vLLM's "GB" in "Loading model weights took" is torch's GiB (bytes / 2^30), and is read as such.
Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.errors import QuantLensError
from core.units import GIB, MIB

MAX_LOG_BYTES = 4 * 1024 * 1024
MAX_LINE_CHARS = 4000
COMPONENTS = ("weights", "kv_cache", "compute", "output", "mmproj", "draft_weights", "draft_kv_cache",
              "vllm_kv_pool")
FACTS = ("n_ctx", "n_seq_max", "kv_tokens", "max_model_len", "max_concurrency_x100", "n_gpu_layers", "n_layers",
         "flash_attn")
_UNITS = {"kib": 1024, "mib": MIB, "gib": GIB, "kb": 1000, "mb": 10**6, "gb": GIB, "b": 1}  # vLLM's "GB" is GiB

_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_LLAMA_WEIGHTS = re.compile(r"(?:load_tensors|llm_load_tensors):\s+(\S+)\s+(?:model\s+)?buffer size\s*=\s*" + _NUM
                            + r"\s*(MiB|GiB|KiB)", re.I)
_LLAMA_KV_BUF = re.compile(r"llama_kv_cache\w*:\s+(\S+)\s+KV buffer size\s*=\s*" + _NUM + r"\s*(MiB|GiB|KiB)", re.I)
_LLAMA_KV_TOTAL = re.compile(r"(?:KV self size|llama_kv_cache\w*: size)\s*=\s*" + _NUM + r"\s*(MiB|GiB|KiB)", re.I)
_LLAMA_COMPUTE = re.compile(r"(\S+)\s+compute buffer size\s*=\s*" + _NUM + r"\s*(MiB|GiB|KiB)", re.I)
_LLAMA_OUTPUT = re.compile(r"(\S+)\s+output buffer size\s*=\s*" + _NUM + r"\s*(MiB|GiB|KiB)", re.I)
_LLAMA_N_CTX = re.compile(r"\bn_ctx\s*=\s*([0-9]{1,9})\b")
_LLAMA_N_SEQ = re.compile(r"\bn_seq_max\s*=\s*([0-9]{1,6})\b")
_LLAMA_OFFLOADED = re.compile(r"offloaded\s+([0-9]{1,4})/([0-9]{1,4})\s+layers to GPU", re.I)
_CLIP_SIZE = re.compile(r"(?:clip|mtmd|mmproj)\w*[^=\n]{0,80}?(?:model size|buffer size)\s*[:=]\s*" + _NUM
                        + r"\s*(MiB|GiB|KiB)", re.I)
_OLLAMA_PAIR = re.compile(r"\b(memory\.weights\.total|memory\.required\.kv|memory\.graph\.full|projector\.weights)"
                          r"=\"?" + _NUM + r"\s*(B|KiB|MiB|GiB)\"?", re.I)
_VLLM_WEIGHTS = re.compile(r"(?:Loading model weights took|Model loading took)\s+" + _NUM + r"\s*(GB|GiB|MiB)", re.I)
_VLLM_KV_MEM = re.compile(r"Available KV cache memory:\s*" + _NUM + r"\s*(GiB|GB|MiB)", re.I)
_VLLM_KV_TOKENS = re.compile(r"GPU KV cache size:\s*([0-9][0-9,]{0,14})\s+tokens", re.I)
_VLLM_CONCURRENCY = re.compile(r"Maximum concurrency for\s+([0-9][0-9,]{0,12})\s+tokens per request:\s*" + _NUM
                               + r"\s*x", re.I)
_VLLM_BLOCKS = re.compile(r"(?:^|#\s*|\]\s*)GPU blocks:\s*([0-9]{1,9})", re.I)
_VLLM_PROFILE_KV = re.compile(r"kv_cache_size=" + _NUM + r"\s*(GiB|GB|MiB)", re.I)
_LLAMA_FLASH = re.compile(r"\bflash_attn\s*=\s*(0|1|false|true|auto|enabled|disabled)\b", re.I)
# the format the log loaded: llama.cpp/Ollama `print_info: file type = Q4_K - Medium` (older `model ftype`), vLLM's
# engine config `dtype=torch.bfloat16, ... quantization=awq`; read from at most the first MAX_LINE_CHARS of a line
_LLAMA_FTYPE = re.compile(r"(?:\bfile type|\bmodel ftype)\s*[=:]\s*([A-Za-z0-9_ .\-]{1,40})", re.I)
_VLLM_QUANT = re.compile(r"\bquantization=['\"]?([A-Za-z0-9_\-]{1,30})")
_VLLM_DTYPE = re.compile(r"(?<![A-Za-z_])dtype=(?:torch\.)?['\"]?(bfloat16|float16|half|float32|float|auto)\b")
_LLAMA_KV_TYPE = re.compile(r"\bK \((f16|bf16|f32|q8_0|q5_1|q5_0|q4_1|q4_0|iq4_nl)\):", re.I)
_VLLM_KV_DTYPE = re.compile(r"\bkv_cache_dtype=['\"]?(fp8(?:_e4m3|_e5m2)?)\b")
_KV_NAMES = {"f16": "fp16", "f32": "fp32", "fp8_e4m3": "fp8", "fp8_e5m2": "fp8"}
_VLLM_QUANT_NAMES = {"awq": "AWQ-INT4", "awq_marlin": "AWQ-INT4", "gptq": "GPTQ-INT4", "gptq_marlin": "GPTQ-INT4",
                     "fp8": "FP8-SCALED", "gguf": None, "bitsandbytes": None, "compressed-tensors": None}
_VLLM_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}


@dataclass
class ParsedLog:
    """Numbers read from a load log: component bytes (summed over devices) and facts (context, tokens, ...)."""

    runtime: str  # "llama.cpp", "ollama" or "vllm"
    components: dict[str, int] = field(default_factory=dict)
    facts: dict[str, int] = field(default_factory=dict)
    lines_matched: int = 0
    precision: str | None = None  # the weight format the log names (a core.sizing.precisions name), if any
    precision_source: str = ""  # fixed words saying which line named it (never the log's text)
    kv_precision: str | None = None  # the KV cache type the log names (llama.cpp `K (q8_0):`, vLLM kv_cache_dtype)

    def to_link(self) -> str:
        """Compact `rt.weights.4913160192.kv_cache.1073741824...precision.q4_k_m` text for a shareable link
        (numbers, and the format the log named as a catalog precision name)."""
        parts = [self.runtime] + [f"{k}.{v}" for k, v in self.components.items()] + \
                [f"{k}.{v}" for k, v in self.facts.items()]
        if self.precision:
            parts.append(f"precision.{self.precision.lower()}")
        if self.kv_precision:
            parts.append(f"kv.{self.kv_precision}")
        return ".".join(parts)


def llama_ftype_precision(text: str) -> str | None:
    """llama.cpp's file type words (llama_model_ftype_name: "Q4_K - Medium", "IQ4_XS - 4.25 bpw", "BF16", "all F32",
    older "mostly Q8_0", "(guessed)") -> the precision name; None for a type the catalog lacks."""
    from core.sizing.precisions import get_precision

    words = re.sub(r"\(guessed\)|\bmostly\b|\ball\b", " ", text, flags=re.I).split()
    if not words:
        return None
    head = words[0].upper()
    size = {"SMALL": "_S", "MEDIUM": "_M", "LARGE": "_L"}.get(words[2].upper(), "") \
        if len(words) >= 3 and words[1] == "-" else ""
    if head == "Q2_K":
        size = "_S" if size == "_S" else ""
    elif head == "IQ3_S" and len(words) > 1 and words[1].lower() == "mix":
        head = "IQ3_M"
    elif head == "MXFP4":
        head = "MXFP4_MOE"
    name = {"F32": "GGUF-F32", "F16": "GGUF-F16", "BF16": "GGUF-BF16"}.get(head, head + size)
    try:
        return get_precision(name).name
    except QuantLensError:
        return None


@dataclass(frozen=True)
class PrecisionChoice:
    """The format a reconcile compares at, and why: the one the log names, else the caller's fallback."""

    name: str
    from_log: bool
    words: str  # for captions: "the format the log names in llama.cpp's file type line" / "the log names no ..."


def choose_precision(parsed: ParsedLog, fallback: str | None = None) -> PrecisionChoice:
    """One rule for the page and the CLI: the format the log names whenever it names one; else `fallback` (the
    page's first precision, the CLI's --precision default), else bf16 for vLLM and Q4_K_M for a GGUF runtime."""
    from core.sizing.precisions import get_precision

    if parsed.precision:
        return PrecisionChoice(parsed.precision, True, "the format the log names"
                               + (f" in {parsed.precision_source}" if parsed.precision_source else ""))
    name = fallback or ("bf16" if parsed.runtime == "vllm" else "Q4_K_M")
    return PrecisionChoice(get_precision(name).name, False,
                           f"the log names no format: compared at {get_precision(name).label}"
                           + (" (the first precision chosen)" if fallback else " (the default)"))


def _bytes(value: str, unit: str) -> int:
    return round(float(value) * _UNITS[unit.lower()])


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def parse_log(text: str | bytes) -> ParsedLog:
    """Read a llama.cpp, Ollama or vLLM load log. Refuses a log that is too large or holds no memory line."""
    if isinstance(text, bytes):
        if len(text) > MAX_LOG_BYTES:
            raise QuantLensError("log_too_large", f"The log is larger than {MAX_LOG_BYTES // (1024 * 1024)} MiB; "
                                                  "paste only the start-up part.")
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise QuantLensError("log_unreadable", "The log must be text.")
    if len(text) > MAX_LOG_BYTES:
        raise QuantLensError("log_too_large", f"The log is larger than {MAX_LOG_BYTES // (1024 * 1024)} MiB; "
                                              "paste only the start-up part.")
    comp: dict[str, int] = {}
    facts: dict[str, int] = {}
    kv_buffers = 0
    kv_total = 0
    ollama_est: dict[str, int] = {}
    section = "main"  # "draft" after a draft-model line, "mmproj" after a clip/mtmd line
    vllm = ollama = False
    matched = 0
    precision: str | None = None
    precision_source = ""
    vllm_dtype: str | None = None
    kv_type: str | None = None

    def add(key: str, n: int) -> None:
        comp[key] = comp.get(key, 0) + n

    for raw in text.splitlines():
        head = raw[:MAX_LINE_CHARS]  # vLLM's engine config line can be long; its dtype/quantization come early
        if precision is None and (m := _LLAMA_FTYPE.search(head)):
            precision = llama_ftype_precision(m.group(1))
            precision_source = "llama.cpp's file type line" if precision else ""
        if "quantization=" in head and (m := _VLLM_QUANT.search(head)) and m.group(1).lower() != "none":
            if precision is None and (q := _VLLM_QUANT_NAMES.get(m.group(1).lower())):
                precision, precision_source = q, "vLLM's quantization setting"
        elif vllm_dtype is None and "quantization=" in head and (m := _VLLM_DTYPE.search(head)):
            vllm_dtype = _VLLM_DTYPES.get(m.group(1).lower())
        if kv_type is None and section == "main" and (m := _LLAMA_KV_TYPE.search(head) or _VLLM_KV_DTYPE.search(head)):
            kv_type = _KV_NAMES.get(m.group(1).lower(), m.group(1).lower())
        if len(raw) > MAX_LINE_CHARS:
            continue
        line = raw.strip()
        low = line.lower()
        if "source=server.go" in low or "ollama" in low:
            ollama = True
        if "draft" in low and ("model" in low or "load" in low):
            section = "draft"
        elif re.search(r"\b(clip|mtmd|mmproj)", low) and "buffer" not in low and "size" not in low:
            section = "mmproj"
        if m := _OLLAMA_PAIR.findall(line):
            ollama = True
            for key, value, unit in m:
                ollama_est[key.lower()] = _bytes(value, unit)
            matched += 1
            continue
        if m := _CLIP_SIZE.search(line):
            add("mmproj", _bytes(m.group(1), m.group(2)))
            matched += 1
            continue
        if m := _LLAMA_WEIGHTS.search(line):
            add("draft_weights" if section == "draft" else "mmproj" if section == "mmproj" else "weights",
                _bytes(m.group(2), m.group(3)))
            matched += 1
        elif m := _LLAMA_KV_BUF.search(line):
            n = _bytes(m.group(2), m.group(3))
            if section == "draft":
                add("draft_kv_cache", n)
            else:
                kv_buffers += n
            matched += 1
        elif m := _LLAMA_KV_TOTAL.search(line):
            if section != "draft":
                kv_total = max(kv_total, _bytes(m.group(1), m.group(2)))
            matched += 1
        elif m := _LLAMA_COMPUTE.search(line):
            if section == "main":
                add("compute", _bytes(m.group(2), m.group(3)))
            matched += 1
        elif m := _LLAMA_OUTPUT.search(line):
            if section == "main":
                add("output", _bytes(m.group(2), m.group(3)))
            matched += 1
        elif m := _VLLM_WEIGHTS.search(line):
            vllm = True
            comp["weights"] = _bytes(m.group(1), m.group(2))
            matched += 1
        elif m := _VLLM_KV_MEM.search(line):
            vllm = True
            comp["vllm_kv_pool"] = _bytes(m.group(1), m.group(2))
            matched += 1
        elif m := _VLLM_KV_TOKENS.search(line):
            vllm = True
            facts["kv_tokens"] = _int(m.group(1))
            matched += 1
        elif m := _VLLM_CONCURRENCY.search(line):
            vllm = True
            facts["max_model_len"] = _int(m.group(1))
            facts["max_concurrency_x100"] = round(float(m.group(2)) * 100)
            matched += 1
        elif m := _VLLM_BLOCKS.search(line):
            vllm = True
            facts.setdefault("kv_tokens", int(m.group(1)) * 16)
            matched += 1
        if m := _VLLM_PROFILE_KV.search(line):
            vllm = True
            comp["vllm_kv_pool"] = _bytes(m.group(1), m.group(2))
        if section == "main":
            if (m := _LLAMA_N_CTX.search(line)) and "n_ctx" not in facts and "train" not in low:
                facts["n_ctx"] = int(m.group(1))
            if (m := _LLAMA_N_SEQ.search(line)) and "n_seq_max" not in facts:
                facts["n_seq_max"] = int(m.group(1))
            if (m := _LLAMA_FLASH.search(line)) and "flash_attn" not in facts:
                facts["flash_attn"] = 0 if m.group(1).lower() in ("0", "false", "disabled") else 1
            if m := _LLAMA_OFFLOADED.search(line):
                facts["n_gpu_layers"], facts["n_layers"] = int(m.group(1)), int(m.group(2))
    if kv_buffers or kv_total:
        comp["kv_cache"] = kv_buffers or kv_total
    if ollama and not comp:  # only Ollama's own estimate line: use it
        mapping = {"memory.weights.total": "weights", "memory.required.kv": "kv_cache",
                   "memory.graph.full": "compute", "projector.weights": "mmproj"}
        for key, value in ollama_est.items():
            if value:
                comp[mapping[key]] = value
    if not comp and not facts.get("kv_tokens"):
        raise QuantLensError("log_no_memory_lines", "No memory lines found: paste the start-up part of a llama.cpp "
                                                    "(buffer size lines), Ollama or vLLM log.")
    runtime = "vllm" if vllm and not comp.get("compute") else "ollama" if ollama else "llama.cpp"
    if precision is None and vllm_dtype and runtime == "vllm":
        precision, precision_source = vllm_dtype, "vLLM's dtype setting (no quantization)"
    return ParsedLog(runtime, comp, facts, matched, precision, precision_source, kv_type)


def from_link(text: str) -> ParsedLog:
    """The numbers a link carries (see ParsedLog.to_link); anything else is refused with `log_link_invalid`."""
    if not isinstance(text, str) or len(text) > 800 or not text:
        raise QuantLensError("log_link_invalid", "The measured numbers in the link are not readable.")
    for runtime in ("llama.cpp", "ollama", "vllm"):
        if text == runtime or text.startswith(runtime + "."):
            rest = text[len(runtime) + 1:].split(".") if text != runtime else []
            break
    else:
        raise QuantLensError("log_link_invalid", "The measured numbers in the link name no known runtime.")
    if len(rest) % 2 or len(rest) > 40:
        raise QuantLensError("log_link_invalid", "The measured numbers in the link are not readable.")
    parsed = ParsedLog(runtime)
    for key, value in zip(rest[::2], rest[1::2], strict=True):
        if key == "kv" and parsed.kv_precision is None:
            from core.sizing.kv_cache import KV_PRECISIONS

            if value not in KV_PRECISIONS:
                raise QuantLensError("log_link_invalid", "The link names an unknown KV cache type.")
            parsed.kv_precision = value
            continue
        if key == "precision" and parsed.precision is None:
            from core.sizing.precisions import get_precision

            if not re.fullmatch(r"[a-z0-9_\-]{1,24}", value):
                raise QuantLensError("log_link_invalid", "The format in the link is not readable.")
            try:
                parsed.precision = get_precision(value).name
            except QuantLensError:
                raise QuantLensError("log_link_invalid", "The link names an unknown format.") from None
            parsed.precision_source = ""  # the link keeps the format, not which line named it
            continue
        if not value.isascii() or not value.isdecimal() or len(value) > 16:
            raise QuantLensError("log_link_invalid", "The measured numbers in the link are not readable.")
        if key in COMPONENTS:
            parsed.components[key] = int(value)
        elif key in FACTS:
            parsed.facts[key] = int(value)
        else:
            raise QuantLensError("log_link_invalid", "The measured numbers in the link name an unknown part.")
    return parsed


@dataclass(frozen=True)
class ComponentGap:
    component: str  # in words: "Weights", "KV cache", ...
    predicted_bytes: int | None
    measured_bytes: int
    gap_bytes: int | None  # measured - predicted
    gap_percent: float | None
    note: str = ""
    unit: str = "bytes"  # "bytes" or "tokens"


LABELS = {"weights": "Weights", "kv_cache": "KV cache", "compute": "Compute buffers", "output": "Output buffer",
          "mmproj": "Multimodal projector (mmproj)", "draft_weights": "Draft model weights",
          "draft_kv_cache": "Draft model KV cache", "vllm_kv_pool": "vLLM KV cache pool"}


def reconcile(parsed: ParsedLog, predicted: dict[str, int]) -> list[ComponentGap]:
    """One row per measured component: the prediction beside it (None when nothing predicts it) and the gap."""
    rows = []
    for key, measured in parsed.components.items():
        p = predicted.get(key)
        gap = None if p is None else measured - p
        pct = None if not p else 100 * (measured - p) / p
        rows.append(ComponentGap(LABELS.get(key, key), p, measured, gap, pct,
                                 "" if p is not None else "not predicted by this estimate"))
    if "kv_tokens" in parsed.facts and "kv_tokens" in predicted:
        p, measured = predicted["kv_tokens"], parsed.facts["kv_tokens"]
        rows.append(ComponentGap("vLLM KV cache tokens", p, measured, measured - p,
                                 100 * (measured - p) / p if p else None, "", "tokens"))
    return rows


def predicted_components(model, precision: str, parsed: ParsedLog, kv_precision: str = "fp16",
                         total_memory_bytes: int | None = None, tensor_parallel: int = 1,
                         max_num_batched_tokens: int | None = None) -> dict[str, int]:
    """What the engine predicts for the log's own settings: its context (llama.cpp n_ctx, vLLM max_model_len).
    vLLM's pool needs the card's total memory; `max_num_batched_tokens` defaults to `vllm serve`'s V1 default
    (vLLM V0 without chunked prefill profiled max_model_len tokens: pass it for V0 logs)."""
    from core.sizing.engine import estimate
    from core.sizing.overhead import FIXED_OVERHEAD_BYTES

    out: dict[str, int] = {}
    if parsed.runtime == "vllm":
        ctx = parsed.facts.get("max_model_len", 0)
        kv_vllm = kv_precision if kv_precision in ("fp16", "bf16", "fp8") else "fp16"
        e = estimate(model, precision, ctx, 1, kv_vllm, "vllm")
        out["weights"] = e.weights_bytes // max(1, tensor_parallel)
        if model.architecture is not None and ctx and not model.architecture.is_encoder:
            from core.sizing.serving import kv_tokens_from_bytes, vllm_capacity

            if total_memory_bytes:
                cap = vllm_capacity(model.architecture, e.weights_bytes, total_memory_bytes, ctx,
                                    tensor_parallel=tensor_parallel, max_num_batched_tokens=max_num_batched_tokens,
                                    kv_precision=kv_vllm)
                out["vllm_kv_pool"] = cap.kv_cache_bytes_per_card
                out["kv_tokens"] = cap.gpu_kv_cache_tokens
            elif "vllm_kv_pool" in parsed.components:  # no card given: check the pool -> tokens arithmetic alone
                out["kv_tokens"] = kv_tokens_from_bytes(model.architecture, parsed.components["vllm_kv_pool"],
                                                        kv_vllm, tensor_parallel)
        return out
    ctx = parsed.facts.get("n_ctx", 0)
    e = estimate(model, precision, ctx, 1, kv_precision, "llama.cpp")
    out["weights"] = e.weights_bytes
    if model.architecture is not None and ctx:
        out["kv_cache"] = e.kv_cache_bytes
        act = max(0, e.overhead_bytes - FIXED_OVERHEAD_BYTES["llama.cpp"][1])
        if parsed.facts.get("flash_attn") == 0:  # without flash attention the KQ scores dominate the graph
            scores = min(512, ctx) * ctx * model.architecture.num_heads * 4
            act = max(act, scores)
        out["compute"] = act
    return out
