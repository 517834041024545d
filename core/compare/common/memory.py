"""Memory of a comparison: hand freed memory back between steps, and what a job memory limit accepts.

Why a budget up front: a model too large for the job's limit used to run for minutes and end as a crash
(SIGSEGV under RLIMIT_AS). Checking the upload's parameter count against the limit before any work says at once
which limit stops it and the flag (CLI) or variable (server) that raises it.

The per-parameter cost is a measured envelope, not a derivation. The job's limit is RLIMIT_AS (address space,
which counts torch's and onnxruntime's reservations, not only what they touch), so the envelope is fitted to the
largest address-space peak (VmPeak) of any step's process, each step being its own forked child
(step_process): export (torch + optimum: the model, the exporter's graph and the serialized proto at once) and
the INT8 quantizer (ORT's transformer optimizer and quantize_dynamic) are the largest. Measured on 2 cores with
`python -m core compare MODEL --memory-gib G --runs 5` (report.json: environment.memory_mib):

- all-MiniLM-L6-v2 (demo, 22.7M): export 1524 MiB address space (965 MiB resident), INT8 905, FP16 729.
- BERT-base shape, random weights (109.5M, hidden 768, 12 layers): export 2985 MiB (2347 resident), INT8 2936
  (2687), INT4 2434, FP16 2377; the comparison process itself 1752 (1538, all four sessions loaded).

A line through both gives about 1.12 GiB + 17.6 bytes/parameter; BASE_BYTES and BYTES_PER_PARAMETER are that,
rounded up: 3 GiB accepts up to 110M parameters, 6 GiB about 290M (extrapolated: not measured above 110M;
causal LMs export with their KV cache and were not re-measured).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc

from core.errors import QuantLensError

GIB = 2**30
BASE_BYTES = int(1.15 * GIB)  # python + torch + transformers + optimum imported in the export child: 1158 MiB
BYTES_PER_PARAMETER = 18
CLI_FLAG = "--memory-gib"
SERVER_VARIABLE = "QUANTLENS_JOB_MEMORY_GB"


def release_memory() -> None:
    """Collect garbage and hand glibc's freed arenas back to the OS (a failed step may leave large buffers)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def estimated_peak_bytes(parameters: int) -> int:
    """The job's expected peak resident memory for a model of `parameters` weights."""
    return BASE_BYTES + BYTES_PER_PARAMETER * max(0, int(parameters))


def largest_parameters(memory_bytes: int) -> int:
    """The largest model (in parameters) a job memory limit of `memory_bytes` accepts."""
    return max(0, (int(memory_bytes) - BASE_BYTES) // BYTES_PER_PARAMETER)


def how_to_raise() -> str:
    return f"raise it with {CLI_FLAG} on the command line or {SERVER_VARIABLE} on a server"


def check_fits(parameters: int, memory_bytes: int, what: str = "This model") -> None:
    """Refuse before any work when the model's estimated peak exceeds the job's memory limit."""
    if parameters <= 0:
        return
    need = estimated_peak_bytes(parameters)
    if need > memory_bytes:
        raise QuantLensError(
            "model_too_large_for_memory",
            f"{what} has {parameters / 1e6:,.0f}M parameters and needs about {need / GIB:.1f} GiB to compare, more "
            f"than the job's {memory_bytes / GIB:.1f} GiB memory limit (which accepts up to "
            f"{largest_parameters(memory_bytes) / 1e6:,.0f}M parameters); {how_to_raise()}.")


def upload_parameters(source) -> int:
    """Parameters of a validated upload, read without loading it: config.json through the sizing engine, else
    the weight files' bytes (4 per FP32 weight, 2 for a folder whose config says float16/bfloat16)."""
    import json
    from pathlib import Path

    path = Path(source)
    if str(source) == "demo" or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size // 4
    config: dict = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((path / "config.json").read_text(encoding="utf-8"))
        config = loaded if isinstance(loaded, dict) else {}
    if config:
        with contextlib.suppress(QuantLensError, KeyError, ValueError, TypeError, ImportError):
            from core.sizing.architecture import architecture_from_config, parameter_count

            return int(parameter_count(architecture_from_config(config)))
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    per_weight = 2 if dtype in ("float16", "bfloat16") else 4
    return sum(f.stat().st_size for f in path.glob("*.safetensors") if f.is_file()) // per_weight
