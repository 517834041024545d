"""The child side of core.jobs: limit and confine this process, then run one target function.

Started by core.jobs.run_job as `python -I -B -c <bootstrap> <spec.json>` (isolated mode: the job directory,
which holds uploaded files, is never on sys.path). Order matters and is the point of this module:
resource limits, network guard and filesystem confinement are in place BEFORE the target module is
imported, so nothing a model triggers runs unconfined. Everything crosses the process boundary as JSON
files (spec in, progress lines and result out); nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import resource
import sys
import traceback
from pathlib import Path

from core.jobs.atomic_files import write_json_atomic

RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.jsonl"
MEMORY_MARKERS = ("MemoryError", "bad_alloc", "Failed to allocate memory", "Cannot allocate memory",
                  "can't allocate memory", "out of memory", "DefaultCPUAllocator")


def _set_limits(limits: dict) -> None:
    """Soft and hard limits together, so the target cannot raise them again."""
    memory = int(limits["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    file_bytes = int(limits["file_bytes"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    cpu_s = cpu_seconds(float(limits["timeout_s"]), int(limits.get("threads", 1)))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))  # SIGXCPU at the soft limit, SIGKILL at the hard
    _volunteer_for_the_oom_killer()


def cpu_seconds(timeout_s: float, threads: int) -> int:
    """CPU time matching the wall-clock limit: the job's threads busy for the whole of it, plus a second.

    The kernel enforces this one even if the parent is gone, so a job cannot spin on for ever.
    """
    return max(1, math.ceil(timeout_s * max(1, threads)) + 1)


def _volunteer_for_the_oom_killer() -> None:
    """If the host (container, cgroup) runs out of memory, the kernel should kill this job, never the app.

    Raising one's own oom_score_adj needs no privilege; where /proc is not writable the rlimits still apply.
    """
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("1000")


def _write_json_atomic(path: Path, data: dict) -> None:
    """The parent may look at any moment: it sees no file or the whole of it (core.jobs.atomic_files)."""
    write_json_atomic(path, data)


class _Progress:
    """The `progress(stage, fraction)` callable the target receives; one JSON line per call."""

    def __init__(self, path: Path) -> None:
        self._handle = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives for the job

    def __call__(self, stage: str, fraction: float | None = None) -> None:
        value = None if fraction is None else float(fraction)
        self._handle.write(json.dumps({"stage": str(stage)[:200], "fraction": value}) + "\n")


def _error(code: str, message: str, **extra: str) -> dict:
    return {"ok": False, "error": {"code": code, "message": message, **extra}}


def _looks_like_memory(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return isinstance(exc, MemoryError) or any(marker in text for marker in MEMORY_MARKERS)


# Exception types of onnx / onnxruntime (by module, so this module imports neither): the model is malformed or
# uses an operator in a way the runtime refuses. Their messages may hold paths, so only the type is shown.
_RUNTIME_MODULES = ("onnxruntime", "onnx")


def map_library_error(exc: BaseException) -> tuple[str, str] | None:
    """(code, one sentence) for library failures a user can act on; None for anything else (a bug: job_failed)."""
    kind = type(exc).__name__
    module = type(exc).__module__ or ""
    if kind == "PackageNotFoundError":  # importlib.metadata: e.g. a bitsandbytes quantization_config
        package = str(exc.args[0] if exc.args else "a package")[:60]
        return ("missing_dependency", f"The model needs the Python package {package!r}, which this server does not "
                                      "install; upload an unquantized model.")
    if module.split(".")[0] in _RUNTIME_MODULES:
        return ("invalid_onnx", f"ONNX Runtime could not load or run the model ({kind[:40]}): it is malformed or uses "
                                "an operator in a way the runtime does not support.")
    return None


def main(argv: list[str]) -> int:
    from core.jobs import sandbox  # light: ctypes, socket, json

    if len(argv) > 1:  # first of all: never outlive the parent (its pid comes after the spec path)
        sandbox.die_with_parent(int(argv[1]))
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    run_dir, job_dir = Path(spec["run_dir"]), Path(spec["job_dir"])
    _set_limits(spec["limits"])

    result_path = run_dir / RESULT_FILE
    sandbox.install_network_guard(run_dir / sandbox.NETWORK_LOG)
    try:
        confined = sandbox.apply_landlock(job_dir, [Path(p) for p in spec["read_dirs"]]) if spec["limits"].get(
            "confine", True) else 0
    except OSError:  # the kernel offered Landlock but refused to apply it: fail closed, do not run unconfined
        traceback.print_exc(file=sys.stderr)
        _write_json_atomic(result_path, _error("sandbox_unavailable", "The job sandbox could not be set up on this "
                                                                      "server, so the job was not run."))
        return 0
    _write_json_atomic(run_dir / "sandbox.json", {"landlock_abi": confined})

    try:
        import importlib

        module_name, _, function_name = spec["target"].partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        result = function(spec["payload"], job_dir, _Progress(run_dir / PROGRESS_FILE))
        if not isinstance(result, dict):
            raise TypeError(f"{spec['target']} returned {type(result).__name__}, not a dict")
        _write_json_atomic(result_path, {"ok": True, "result": result})
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a JSON error for the parent
        from core.errors import QuantLensError

        if isinstance(exc, QuantLensError) and exc.code.startswith("model_failed") and _looks_like_memory(exc):
            outcome = _error("resource_limit_memory", "")  # onnxruntime's allocation failure, wrapped by the pipeline
        elif isinstance(exc, QuantLensError):
            outcome = _error(exc.code, exc.message)
        elif _looks_like_memory(exc):
            outcome = _error("resource_limit_memory", "")
        elif type(exc).__name__ == "PanicException":  # a Rust library (tokenizers, safetensors) gave up
            outcome = _error("model_crashed_runtime", "The model's native code failed on this input (a panic); it "
                                                      "cannot be processed.")
        elif isinstance(exc, OSError) and exc.errno == errno.EFBIG:  # RLIMIT_FSIZE (Python ignores SIGXFSZ)
            outcome = _error("resource_limit_disk", "")
        elif (mapped := map_library_error(exc)) is not None:
            traceback.print_exc(file=sys.stderr)  # the details stay in the server log
            outcome = _error(*mapped)
        else:
            traceback.print_exc(file=sys.stderr)
            outcome = _error("job_failed", "", type=type(exc).__name__)
        del exc
        _write_json_atomic(result_path, outcome)
    return 0


if __name__ == "__main__":  # pragma: no cover - started through core.jobs' bootstrap
    sys.exit(main(sys.argv[1:]))
