"""The command lines that realise a verdict: copy, paste, and the runtime starts with the settings the answer assumed.

- llama.cpp: `llama-server -hf org/repo:TYPE (the verdict's GGUF type, core.sizing.checkpoints) -c <context x slots> -np <slots> -ngl <layers> [-fa on -ctk/-ctv]`
  (llama-server shares `-c` between its `-np` slots, so each request gets `-c / -np` tokens);
- vLLM: `vllm serve org/repo --max-model-len <context> --max-num-seqs <requests> -tp <cards>
  --gpu-memory-utilization 0.9 [--quantization ...] [--kv-cache-dtype fp8]`;
- Ollama: `ollama run hf.co/org/repo:Q4_K_M` with `num_ctx` (per request; OLLAMA_NUM_PARALLEL multiplies it).

Every value that came from a user (a repo id) is shell-quoted. Standard library only.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from core.sizing.checkpoints import checkpoint, gguf_type
from core.sizing.runtimes import VLLM_GPU_MEMORY_UTILIZATION

_SAFE_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SAFE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*\.gguf$")
GGUF_PLACEHOLDER = "<org>/<repo>-GGUF"
# llama-server -ctk/-ctv names of the KV types (fp16 is its default f16 and needs no flag)
_LLAMA_KV = {"bf16": "bf16", "fp32": "f32", "q8_0": "q8_0", "q5_1": "q5_1", "q5_0": "q5_0", "q4_1": "q4_1",
             "q4_0": "q4_0", "iq4_nl": "iq4_nl"}
_QUANTIZED_KV = frozenset({"q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl"})
_OLLAMA_KV = frozenset({"q8_0", "q4_0"})
CHECKPOINT_PLACEHOLDER = "<org>/<repo>"


@dataclass(frozen=True)
class LaunchCommand:
    label: str  # "llama.cpp (llama-server)", "vLLM", "Ollama"
    command: str


@dataclass(frozen=True)
class LaunchPlan:
    """Commands for one (model, device, precision) answer, and what they assume."""

    runtime: str
    precision: str
    commands: tuple[LaunchCommand, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"runtime": self.runtime, "precision": self.precision,
                "commands": [{"label": c.label, "command": c.command} for c in self.commands],
                "notes": list(self.notes)}


def _q(text: str) -> str:
    return shlex.quote(text)


def llama_cpp_command(repo: str | None, precision: str, context: int, batch: int, kv_precision: str,
                      flags: str = "-ngl 999", gguf_file: str | None = None) -> str:
    """llama-server for a GGUF repo (`-hf repo:QUANT`) or a local file; `flags` carry -ngl / --n-cpu-moe."""
    quant = gguf_type(precision)[0]  # the verdict's format: F16 for FP16, Q8_0 for INT8, its own GGUF type
    source = f"-hf {_q(f'{repo}:{quant}')}" if repo else f"-hf {GGUF_PLACEHOLDER}:{quant}"
    if gguf_file and repo:
        source = f"-hf {_q(repo)} -hff {_q(gguf_file)}"
    parts = ["llama-server", source, f"-c {max(1, context) * max(1, batch)}"]
    if batch > 1:
        parts.append(f"-np {batch}")
    parts.append(flags)
    ggml = _LLAMA_KV.get(kv_precision)
    if ggml and kv_precision in _QUANTIZED_KV:
        parts.append(f"-fa on -ctk {ggml} -ctv {ggml}")  # a quantized V cache needs flash attention
    elif ggml:
        parts.append(f"-ctk {ggml} -ctv {ggml}")
    return " ".join(parts)


def ollama_command(repo: str | None, precision: str, context: int, batch: int, kv_precision: str) -> str:
    """Ollama pulls a Hub GGUF as hf.co/org/repo:QUANT; num_ctx is per request, OLLAMA_NUM_PARALLEL the slots."""
    quant = gguf_type(precision)[0]
    env = []
    if batch > 1:
        env.append(f"OLLAMA_NUM_PARALLEL={batch}")
    if kv_precision in _OLLAMA_KV:  # Ollama's OLLAMA_KV_CACHE_TYPE takes f16, q8_0 or q4_0
        env.append(f"OLLAMA_FLASH_ATTENTION=1 OLLAMA_KV_CACHE_TYPE={kv_precision}")
    serve = (" ".join(env) + " ollama serve") if env else "ollama serve"
    name = _q(f"hf.co/{repo}:{quant}") if repo else f"hf.co/{GGUF_PLACEHOLDER}:{quant}"
    body = f'{{"model": "{name}", "options": {{"num_ctx": {max(1, context)}}}}}' if repo else \
        f'{{"model": "hf.co/{GGUF_PLACEHOLDER}:{quant}", "options": {{"num_ctx": {max(1, context)}}}}}'
    return (f"{serve} &\nollama pull {name}\n"
            f"curl http://localhost:11434/api/generate -d '{body}'  # or in `ollama run`: /set parameter num_ctx "
            f"{max(1, context)}")


def vllm_command(repo: str | None, precision: str, context: int, batch: int, kv_precision: str,
                 tensor_parallel: int = 1, catalog_id: str | None = None, repo_precision: str | None = None) -> str:
    """vllm serve with the settings the answer assumed, on a checkpoint in the verdict's format
    (core.sizing.checkpoints): a published quantized repo, `--quantization fp8|bitsandbytes`, or a placeholder."""
    ck = checkpoint(repo, precision, catalog_id, repo_precision)
    parts = ["vllm serve", _q(ck.repo) if _SAFE_REPO.match(ck.repo) else ck.repo, f"--max-model-len {max(1, context)}",
             f"--max-num-seqs {max(1, batch)}"]
    if tensor_parallel > 1:
        parts.append(f"-tp {tensor_parallel}")
    parts.append(f"--gpu-memory-utilization {VLLM_GPU_MEMORY_UTILIZATION}")
    parts.extend(ck.vllm_flags)
    if kv_precision == "fp8":
        parts.append("--kv-cache-dtype fp8")
    return " ".join(parts)


def launch_plan(runtime: str, precision: str, context: int, batch: int, kv_precision: str, repo: str | None = None,
                cards_used: int = 1, flags: str = "-ngl 999", gguf_file: str | None = None,
                catalog_id: str | None = None, repo_precision: str | None = None) -> LaunchPlan:
    """The commands for `runtime` (llama.cpp also gets the Ollama equivalent) at the verdict's precision. A repo id
    or file name that is not a plain Hub name is left out (a placeholder instead): nothing typed reaches a shell."""
    repo = repo if repo and _SAFE_REPO.match(repo) and ".." not in repo else None
    gguf_file = gguf_file if gguf_file and _SAFE_FILE.match(gguf_file) and ".." not in gguf_file else None
    notes: list[str] = []
    if runtime == "llama.cpp":
        cmds = [LaunchCommand("llama.cpp (llama-server)",
                              llama_cpp_command(repo, precision, context, batch, kv_precision, flags, gguf_file))]
        if "--n-cpu-moe" not in flags and "--tensor-split" not in flags:
            cmds.append(LaunchCommand("Ollama", ollama_command(repo, precision, context, batch, kv_precision)))
            if kv_precision not in _OLLAMA_KV and kv_precision != "fp16":
                notes.append(f"Ollama's OLLAMA_KV_CACHE_TYPE takes f16, q8_0 or q4_0 only: its command runs with an "
                             f"f16 KV cache, not {kv_precision}.")
        if not gguf_file:
            notes.append(gguf_type(precision)[1])
        if not repo:
            notes.append(f"Replace {GGUF_PLACEHOLDER} with a GGUF repo of this model (or -m path/to/file.gguf).")
        if batch > 1:
            notes.append(f"llama-server shares -c between its {batch} slots (-np): each request gets {context:,} tokens.")
    elif runtime == "vllm":
        ck = checkpoint(repo, precision, catalog_id, repo_precision)
        cmds = [LaunchCommand("vLLM", vllm_command(repo, precision, context, batch, kv_precision, cards_used,
                                                   catalog_id, repo_precision))]
        if ck.note:
            notes.append(ck.note)
        if not repo and not ck.placeholder:
            notes.append(f"Replace {CHECKPOINT_PLACEHOLDER} with a checkpoint of this model.")
    else:
        ck = checkpoint(repo, precision, catalog_id, repo_precision, runtime="transformers")
        target = repr(ck.repo)
        dtype = "" if "torch_dtype" in ck.transformers_kwargs else ", torch_dtype='auto'"
        extra = ", FineGrainedFP8Config" if "FineGrainedFP8Config" in ck.transformers_kwargs else ""
        cmds = [LaunchCommand("transformers", f"python -c \"from transformers import AutoModelForCausalLM, "
                                              f"BitsAndBytesConfig{extra}; AutoModelForCausalLM.from_pretrained("
                                              f"{target}, device_map='auto'{dtype}{ck.transformers_kwargs})\"")]
        if ck.note:
            notes.append(ck.note)
    return LaunchPlan(runtime, precision, tuple(cmds), tuple(notes))


def plan_for_verdict(verdict: Any, cells: dict[tuple[str, str], Any], kv_precision: str, repo: str | None = None,
                     gguf_file: str | None = None, catalog_id: str | None = None,
                     repo_precision: str | None = None) -> LaunchPlan | None:
    """The launch plan that realises one verdict (core.sizing.verdict.Verdict): its precision that fits, else its
    offload plan, else its fallback format; None when it names nothing to run."""
    precision = verdict.best_precision or verdict.offload_precision or verdict.fallback_precision
    if precision is None:
        return None
    cell = cells.get((verdict.hardware_id, precision))
    cards_used = cell.cards_used if cell is not None and verdict.best_precision else 1
    flags = "-ngl 999"
    if verdict.best_precision is None and verdict.offload is not None:
        flags = verdict.offload.flags
    return launch_plan(verdict.runtime, precision, verdict.context, verdict.batch, kv_precision, repo, cards_used,
                       flags, gguf_file, catalog_id, repo_precision)
