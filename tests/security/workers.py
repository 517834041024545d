"""Test-only job targets: each misbehaves in one specific way so every path of core.jobs can be exercised.

Importable by the child as `tests.security.workers:<name>` (the project root is on its sys.path).
Every target has the worker signature (payload, job_dir, progress) -> dict.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from core.errors import QuantLensError
from core.jobs.atomic_files import write_text_atomic


def echo(payload: dict, job_dir: Path, progress) -> dict:
    progress("starting", 0.0)
    progress("done", 1.0)
    env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
                                          "OMP_NUM_THREADS", "HTTPS_PROXY", "https_proxy", "HF_TOKEN", "SECRET")}
    return {"payload": payload, "cwd": os.getcwd(), "job_dir": str(job_dir), "env": env, "pid": os.getpid(),
            "pgid": os.getpgid(0), "sid": os.getsid(0), "cwd_on_path": "" in sys.path or os.getcwd() in sys.path}


def sleep(payload: dict, job_dir: Path, progress) -> dict:
    time.sleep(float(payload.get("seconds", 0.2)))
    return {"slept": payload.get("seconds", 0.2)}


def refuse(payload: dict, job_dir: Path, progress) -> dict:
    raise QuantLensError("invalid_config", "config.json is not a JSON object.")


def fail(payload: dict, job_dir: Path, progress) -> dict:
    raise ValueError("secret internal detail " + payload.get("detail", ""))


def exit_nonzero(payload: dict, job_dir: Path, progress) -> dict:
    os._exit(3)


def not_a_dict(payload: dict, job_dir: Path, progress) -> dict:
    return ["not", "a", "dict"]  # type: ignore[return-value]


def abort(payload: dict, job_dir: Path, progress) -> dict:
    os.abort()


def segfault(payload: dict, job_dir: Path, progress) -> dict:
    ctypes.string_at(0)  # dereferences NULL: SIGSEGV, like a native crash in onnxruntime
    return {}


def kill_self(payload: dict, job_dir: Path, progress) -> dict:
    """What the kernel OOM killer (or a cgroup limit) does: SIGKILL out of the blue."""
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def allocate(payload: dict, job_dir: Path, progress) -> dict:
    chunks = []
    for _ in range(int(payload.get("gib", 64))):
        chunks.append(bytearray(2**30))  # MemoryError under RLIMIT_AS
    return {"allocated": len(chunks)}


def big_file(payload: dict, job_dir: Path, progress) -> dict:
    with open(job_dir / "big.bin", "wb") as handle:
        for _ in range(int(payload.get("mib", 64))):
            handle.write(b"\0" * 2**20)
    return {}


def spin(payload: dict, job_dir: Path, progress) -> dict:
    progress("spinning", None)
    while True:
        pass


def spawn_and_spin(payload: dict, job_dir: Path, progress) -> dict:
    """Leaves grandchildren in the job's process group, then hangs: all must die at the timeout."""
    for _ in range(2):
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    write_text_atomic(job_dir / "pgid", str(os.getpgid(0)))  # the test polls for it: never half-written
    while True:
        time.sleep(0.05)


def spawn_and_return(payload: dict, job_dir: Path, progress) -> dict:
    """Returns normally but leaves a grandchild running: the runner must still reap the group."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    return {"grandchild": child.pid, "pgid": os.getpgid(0)}


def connect(payload: dict, job_dir: Path, progress) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(2)
    sock.connect((payload.get("host", "127.0.0.1"), int(payload["port"])))
    return {"connected": True}


def connect_swallowed(payload: dict, job_dir: Path, progress) -> dict:
    """A library that catches every error around its download: the attempt must still be reported."""
    with contextlib.suppress(Exception):
        connect(payload, job_dir, progress)
    return {"connected": False}


def resolve(payload: dict, job_dir: Path, progress) -> dict:
    import urllib.request

    urllib.request.urlopen("http://example.com/", timeout=2)
    return {}


def raw_connect(payload: dict, job_dir: Path, progress) -> dict:
    """Bypasses the Python-level guard (like native code would): only Landlock can stop this."""
    import _socket

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    sock.settimeout(2)
    try:
        sock.connect(("127.0.0.1", int(payload["port"])))
    except PermissionError as exc:
        return {"connected": False, "errno": exc.errno}
    return {"connected": True}


def write_outside(payload: dict, job_dir: Path, progress) -> dict:
    try:
        Path(payload["path"]).write_text("written by a job")
    except PermissionError:
        return {"written": False}
    return {"written": True}


def read_outside(payload: dict, job_dir: Path, progress) -> dict:
    try:
        data = Path(payload["path"]).read_bytes()
    except PermissionError:
        return {"read": False}
    return {"read": True, "hex": data.hex()}


def list_dir(payload: dict, job_dir: Path, progress) -> dict:
    try:
        return {"names": sorted(os.listdir(payload["path"]))}
    except PermissionError:
        return {"names": None}


def progress_spam(payload: dict, job_dir: Path, progress) -> dict:
    for i in range(int(payload.get("n", 50))):
        progress(f"step {i}", i / 50)
    progress("x" * 10_000, 5.0)  # overlong stage and out-of-range fraction: truncated and clamped
    return {"steps": payload.get("n", 50)}


def signal_parent(payload: dict, job_dir: Path, progress) -> dict:
    try:
        os.kill(int(payload["pid"]), 0)
    except PermissionError:
        return {"can_signal": False}
    return {"can_signal": True}


def redos_tokenizer(payload: dict, job_dir: Path, progress) -> dict:
    """Threat 15: a tokenizer.json with a catastrophic Split regex, encoded on a short hostile input."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(job_dir / "tokenizer.json"))
    progress("encoding", None)
    encoding = tokenizer.encode(payload["text"])
    return {"tokens": len(encoding.ids)}


def onnx_run(payload: dict, job_dir: Path, progress) -> dict:
    """Run a (validated) ONNX file in onnxruntime: memory and CPU bombs live here (threats 7, 8)."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(job_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.array(payload.get("value", 1), dtype=np.int64).reshape([]) for i in session.get_inputs()}
    outputs = session.run(None, feeds)
    return {"shape": list(np.asarray(outputs[0]).shape)}


def resave_with_location(payload: dict, job_dir: Path, progress) -> dict:
    """Threat 4 (CVE-2025-51480): re-save a model with external data at a user-chosen location."""
    import onnx

    model = onnx.load(str(job_dir / "model.onnx"))
    try:
        onnx.save_model(model, str(job_dir / "out.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=payload["location"], size_threshold=0)
    except Exception as exc:  # noqa: BLE001 - either onnx refuses or the sandbox does; both are fine
        return {"saved": False, "error": type(exc).__name__}
    return {"saved": True}


def hub_lookup(payload: dict, job_dir: Path, progress) -> dict:
    """Threat 24: a Hub id where a local path belongs; offline settings must stop it before any connect."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(payload["name"])
    except Exception as exc:  # noqa: BLE001
        return {"loaded": False, "error": type(exc).__name__}
    return {"loaded": True}


def read_oom_score_adj(payload: dict, job_dir: Path, progress) -> dict:
    return {"oom_score_adj": int(Path("/proc/self/oom_score_adj").read_text())}


def report_pid_and_spin(payload: dict, job_dir: Path, progress) -> dict:
    """Writes its pid where a test can see it, then burns CPU until killed (an endless model)."""
    write_text_atomic(job_dir / "worker.pid", str(os.getpid()))  # the test polls for it: never half-written
    while True:
        pass


def onnxruntime_refuses(payload: dict, job_dir: Path, progress) -> dict:
    """Opens a model whose node is unknown to onnxruntime: its own exception type (Fail/InvalidGraph) escapes."""
    import onnxruntime
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("NoSuchOp", ["X"], ["Y"])], "g",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return {}


def package_missing(payload: dict, job_dir: Path, progress) -> dict:
    """What transformers raises for a bitsandbytes quantization_config when bitsandbytes is not installed."""
    from importlib.metadata import version

    version("bitsandbytes-not-installed-here")
    return {}


def runtime_out_of_memory(payload: dict, job_dir: Path, progress) -> dict:
    """The pipeline's wrapping of an onnxruntime allocation failure."""
    raise QuantLensError("model_failed_runtime", "INT8 failed to run in onnxruntime: [ONNXRuntimeError] : 6 : "
                                                 "RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer")


def segfault_near_limit(payload: dict, job_dir: Path, progress) -> dict:
    """A native crash after the address space grew close to RLIMIT_AS: what torch/ORT do when malloc fails."""
    import time

    held = bytearray(int(payload.get("mib", 200)) * 2**20)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # stay alive long enough for the parent's 50 ms poll to see the peak
        held[::4096] = b"\1" * len(held[::4096])
    ctypes.string_at(0)
    return {}
