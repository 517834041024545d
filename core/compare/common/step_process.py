"""Run one heavy step of a comparison (export, one quantizer) in a forked child, so its memory ends with it.

Why: the exporter (torch + the traced model) and each quantizer (ORT's copies of the graph) leave hundreds of
MB to GBs in the process after they return: glibc keeps freed arenas and torch keeps its caches, so a
DistilBERT-sized comparison used to peak while INT8 quantized on top of what export had left. A forked child
hands everything back to the OS when it exits, and the comparison process never imports torch at all.

Also why: a quantizer that crashes (SIGSEGV in native code) or hits the memory limit now ends that precision
only; the comparison goes on and reports the others (variant_status). The child inherits the job's
confinement (Landlock, rlimits, network guard) because it is a fork, not a new program; it returns its
result as JSON through a pipe, never as a pickle.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from collections.abc import Callable
from typing import Any

from core.errors import QuantLensError

# A crash of a child whose resident peak reached this share of the address-space limit is taken as the memory
# limit: under RLIMIT_AS native code that does not check malloc's result crashes instead of raising.
NEAR_LIMIT_SHARE = 0.5


class StepCrashed(Exception):
    """The child died of a signal (a native crash or a kill): `signal_name`, and whether memory was the cause."""

    def __init__(self, signal_name: str, memory: bool) -> None:
        super().__init__(f"{'ran out of memory' if memory else 'crashed'} ({signal_name})")
        self.signal_name = signal_name
        self.memory = memory


def isolation_available(uses_torch: bool = False) -> bool:
    """Linux fork; for a step that runs torch, only while torch is not yet loaded in this process.

    torch's OpenMP pool is not fork-safe: a child that runs torch after its parent did hangs in libgomp
    (measured: a second export in one test process). The job worker exports first, in a child, before anything
    loads torch; a process that already has (tests, `--in-process`) exports in-process as before. Quantizers
    never run torch, so they always get their own process.
    """
    fork = hasattr(os, "fork") and sys.platform.startswith("linux")
    return fork and not (uses_torch and "torch" in sys.modules)


def memory_use() -> dict[str, int]:
    """This process's resident peak (VmHWM) and address-space peak (VmPeak) in bytes, from /proc (Linux)."""
    found: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmPeak", "VmRSS", "VmSize"):
                    found[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return found


# Each finished child's peaks, in the order they ran: the pipeline reports them (environment.memory_mib).
STEP_MEMORY: list[tuple[str, dict[str, int]]] = []


def _record_memory(fn: Callable, args: tuple, use: dict[str, int]) -> None:
    if use:
        name = getattr(fn, "__name__", "step").strip("_").removesuffix("_child")
        if args and isinstance(args[0], str) and name == "quantize":
            name = f"quantize_{args[0]}"
        STEP_MEMORY.append((name, use))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def run_isolated(fn: Callable[..., dict], *args: Any, uses_torch: bool = False) -> dict:
    """`fn(*args)` in a forked child; returns its JSON-able dict or raises what it raised (as QuantLensError,
    MemoryError, RuntimeError naming the original type) or StepCrashed when it died of a signal."""
    if not isolation_available(uses_torch):
        return fn(*args)
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's stack
        status = 0
        try:
            os.close(read_end)
            try:
                outcome = {"ok": True, "value": fn(*args)}
            except QuantLensError as exc:
                outcome = {"ok": False, "code": exc.code, "message": exc.message}
            except MemoryError:
                outcome = {"ok": False, "memory": True, "message": "MemoryError"}
            except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as data
                outcome = {"ok": False, "type": type(exc).__name__, "message": " ".join(str(exc).split())[:2000]}
            outcome["memory_use"] = memory_use()
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(json.dumps(outcome, default=_json_default).encode())
        except BaseException:  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status, usage = os.wait4(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        peak = usage.ru_maxrss * 1024
        near = limit != resource.RLIM_INFINITY and peak >= NEAR_LIMIT_SHARE * limit
        raise StepCrashed(name, sig == signal.SIGKILL or near)
    try:
        outcome = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RuntimeError(f"the step's process ended without a result (exit status {os.WEXITSTATUS(status)})") from None
    _record_memory(fn, args, outcome.get("memory_use") or {})
    if outcome.get("ok"):
        return outcome["value"]
    if outcome.get("memory"):
        raise MemoryError("the step ran out of memory")
    if "code" in outcome:
        raise QuantLensError(str(outcome["code"]), str(outcome["message"]))
    error = RuntimeError(outcome.get("message", ""))
    error.original_type = outcome.get("type", "Exception")  # type: ignore[attr-defined]
    raise error
