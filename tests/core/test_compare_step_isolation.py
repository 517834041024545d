"""Specification: heavy steps run in a child process, so a crash or a memory blow-up ends that step only.

Checked in a fresh interpreter: a test process that has already loaded torch runs steps in-process (torch's
OpenMP pool is not fork-safe), so this must not depend on which tests ran before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import ctypes, json, os
from core.compare.common.step_process import StepCrashed, run_isolated
from core.errors import QuantLensError

def crash():
    ctypes.string_at(0)

def refuse():
    raise QuantLensError("quantize_failed", "INT8 dynamic quantization failed: no weights.")

def grow():
    raise MemoryError()

def child_pid():
    return {"pid": os.getpid()}

seen = {"parent": os.getpid(), "child": run_isolated(child_pid)["pid"]}
for name, fn in (("crash", crash), ("refuse", refuse), ("grow", grow)):
    try:
        run_isolated(fn)
        seen[name] = "returned"
    except StepCrashed as exc:
        seen[name] = ["StepCrashed", exc.signal_name, exc.memory]
    except QuantLensError as exc:
        seen[name] = ["QuantLensError", exc.code, exc.message]
    except MemoryError:
        seen[name] = ["MemoryError"]
print(json.dumps(seen))
"""


def test_a_step_runs_in_its_own_process_and_its_crash_or_error_comes_back_as_data():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["child"] != seen["parent"]
    assert seen["crash"] == ["StepCrashed", "SIGSEGV", False]  # the comparison process survives a native crash
    assert seen["refuse"] == ["QuantLensError", "quantize_failed", "INT8 dynamic quantization failed: no weights."]
    assert seen["grow"] == ["MemoryError"]


def test_a_crashed_quantizer_is_one_failed_precision_with_its_signal_named():
    from core.compare.common.step_process import StepCrashed
    from core.compare.measure.variant_status import explain_failure

    crashed = explain_failure("int8", "quantize", StepCrashed("SIGSEGV", memory=False))
    assert crashed.code == "quantize_crashed" and "SIGSEGV" in crashed.message
    out_of_memory = explain_failure("int4", "quantize", StepCrashed("SIGKILL", memory=True))
    assert out_of_memory.code == "resource_limit_memory" and "--memory-gib" in out_of_memory.message


def test_a_graph_too_large_for_protobuf_is_named_not_a_job_failed():
    """`save_model_fixed` calling ByteSize() on a >2 GB graph raised EncodeError, which ended as 'job_failed'."""
    from google.protobuf.message import EncodeError

    from core.compare.isolated_steps import export_error
    from core.compare.measure.variant_status import explain_failure

    error = export_error(EncodeError("Failed to serialize proto"))
    assert error.code == "model_too_large_single_file" and "2 GB" in error.message
    from_child = RuntimeError("Failed to serialize proto")
    from_child.original_type = "EncodeError"  # how step_process reports the child's exception type
    assert export_error(from_child).code == "model_too_large_single_file"
    assert explain_failure("int8", "quantize", from_child).code == "model_too_large_single_file"
    assert export_error(ValueError("unsupported architecture")).code == "export_failed"
