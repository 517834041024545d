"""Run the upload gate in a short-lived child process with a memory, CPU and wall-clock budget.

Why: the gate is pure Python, but pure Python can be the bomb. A 27 MB zip of four 64 MiB tokenizer files full
of `[]` made json.loads take 4.6 GB and hold the GIL for up to a minute in the server itself, freezing every
other session (threat 28, docs/threats.md). In a child, the same upload costs the server one waiting thread and
nothing else: the child gets RLIMIT_AS (its budget plus the mapped file), RLIMIT_CPU, a wall-clock limit and a
parent-death signal, and answers in one JSON line. What the child writes lands in `dest_dir` exactly as the
in-process gate would; on any failure the parent removes whatever the child left there.

The server-side cost of any upload under the size limit is therefore: streaming it to disk once, one child
process of at most `GateBudget.memory_bytes` (+ the file, mapped read-only) for at most `GateBudget.wall_s`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import QuantLensError
from core.gate.ingest import UploadLimits, ValidatedUpload, validate_model_path, validate_upload

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_BOOTSTRAP = ("import sys; sys.path.insert(0, sys.argv[1]); from core.gate.confined import child_main; "
              "sys.exit(child_main(sys.argv[2:]))")
MAX_ANSWER_BYTES = 1 << 20


@dataclass(frozen=True)
class GateBudget:
    """What checking one upload may cost the host. Real uploads need a fraction (a 90 MB model: ~60 MB, 1 s)."""

    memory_bytes: int = 1 * 2**30
    cpu_s: int = 30
    wall_s: float = 60.0


def _too_complex(what: str) -> QuantLensError:
    return QuantLensError("upload_too_complex", f"Checking the upload needed more {what} than QuantLens allows for "
                                                "one file; it is refused.")


def _run_child(request: dict, dest_dir: Path | None, budget: GateBudget, file_bytes: int) -> dict:
    before = set(os.listdir(dest_dir)) if dest_dir is not None else set()
    request = {**request, "memory_bytes": budget.memory_bytes + file_bytes, "cpu_s": budget.cpu_s}
    process = subprocess.Popen(
        [sys.executable, "-I", "-B", "-c", _BOOTSTRAP, str(PROJECT_ROOT), str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        close_fds=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
    )
    ok = False
    try:
        try:
            out, _ = process.communicate(json.dumps(request).encode(), timeout=budget.wall_s)
        except subprocess.TimeoutExpired:
            raise _too_complex("time") from None
        if process.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            raise _too_complex("CPU time" if process.returncode == -signal.SIGXCPU else "memory")
        try:
            answer = json.loads(out[:MAX_ANSWER_BYTES])
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise QuantLensError("gate_failed", f"The upload check stopped unexpectedly (status {process.returncode}); "
                                                "the upload is refused.")
        if not answer.get("ok"):
            raise QuantLensError(str(answer.get("code", "gate_failed"))[:64], str(answer.get("message", ""))[:500])
        ok = True
        return answer
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if not ok and dest_dir is not None:  # a child killed mid-extraction leaves its staging folder
            for name in set(os.listdir(dest_dir)) - before:
                target = dest_dir / name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)


def _to_upload(answer: dict) -> ValidatedUpload:
    return ValidatedUpload(kind=answer["kind"], path=Path(answer["path"]), files=tuple(answer["files"]),
                           total_bytes=int(answer["total_bytes"]), sha256=answer["sha256"])


def validate_upload_confined(src: Path, dest_dir: Path, *, limits: UploadLimits = UploadLimits(),  # noqa: B008
                             budget: GateBudget = GateBudget()) -> ValidatedUpload:  # noqa: B008
    """validate_upload in a child with a budget; same result, same errors, plus `upload_too_complex`."""
    src, dest_dir = Path(src).resolve(), Path(dest_dir).resolve()
    request = {"call": "upload", "src": str(src), "dest": str(dest_dir), "limits": asdict(limits)}
    return _to_upload(_run_child(request, dest_dir, budget, src.stat().st_size))


def validate_model_path_confined(path: Path, *, limits: UploadLimits = UploadLimits(),  # noqa: B008
                                 budget: GateBudget = GateBudget()) -> ValidatedUpload:  # noqa: B008
    """validate_model_path (a local folder or .onnx for the CLI) in a child with a budget."""
    path = Path(path).resolve()
    size = path.stat().st_size if path.is_file() else 0
    request = {"call": "path", "src": str(path), "limits": asdict(limits)}
    return _to_upload(_run_child(request, None, budget, size))


# ------------------------------------------------------------------------------------------ the child side
def child_main(argv: list[str]) -> int:
    """Entry point of the gate child: limits first, then one validation, then one JSON line on stdout."""
    from core.jobs.sandbox import die_with_parent

    die_with_parent(int(argv[0]))
    request = json.loads(sys.stdin.buffer.read(MAX_ANSWER_BYTES))
    memory, cpu = int(request["memory_bytes"]), int(request["cpu_s"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    limits = UploadLimits(**request["limits"])
    try:
        if request["call"] == "upload":
            result = validate_upload(Path(request["src"]), Path(request["dest"]), limits=limits)
        else:
            result = validate_model_path(Path(request["src"]), limits=limits)
        answer = {"ok": True, "kind": result.kind, "path": str(result.path), "files": list(result.files),
                  "total_bytes": result.total_bytes, "sha256": result.sha256}
    except QuantLensError as exc:
        answer = {"ok": False, "code": exc.code, "message": exc.message}
    except MemoryError:
        answer = {"ok": False, "code": "upload_too_complex",
                  "message": f"Checking the upload needed more than {math.ceil(memory / 2**20):,} MiB of memory; "
                             "it is refused."}
    except RecursionError:
        answer = {"ok": False, "code": "upload_too_complex", "message": "The upload nests its data too deeply to "
                                                                        "check; it is refused."}
    except OSError as exc:
        answer = {"ok": False, "code": "upload_unreadable", "message": f"The upload could not be read ({exc.strerror})."}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0
