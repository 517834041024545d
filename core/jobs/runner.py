"""Run untrusted-model work in a child process with limits, and queue it so many users cannot swamp a host.

Why a child process: onnxruntime, onnx and torch are native code fed with uploaded bytes; a crash, a memory
bomb or an endless loop must end one job, not the server. Each job:
- runs `module:function` in `python -I -B` (job dir never on sys.path) started with start_new_session=True,
  so the whole process group can be killed; limits (RLIMIT_AS, RLIMIT_CORE=0, RLIMIT_FSIZE), the network
  guard and Landlock confinement are applied by core.worker before the target is imported (not by preexec_fn,
  which is unsafe in a threaded server such as Streamlit);
- gets a scrubbed environment (no proxies, no tokens: only PATH/LANG plus HF_HUB_OFFLINE=1,
  TRANSFORMERS_OFFLINE=1, HF_DATASETS_OFFLINE=1, thread caps, HOME/TMPDIR inside the job dir);
- exchanges only JSON files with the parent (spec in; progress lines and result out): nothing is unpickled;
- is waited for with a wall-clock limit; on timeout, cancellation, or any exit, the process group is killed
  with SIGKILL and reaped, so no orphan survives in the group; scratch files are removed in `finally`.

The job directory itself belongs to the caller (the compare page offers the quantized files for download):
`job_directory()` creates one and always removes it, `sweep_stale_job_dirs()` removes leftovers of a crashed
server. Error mapping: QuantLensError in the child -> same code and message; MemoryError/bad_alloc or a
SIGKILL we did not send -> resource_limit_memory; SIGXFSZ -> resource_limit_disk; other signals ->
model_crashed_runtime naming the signal; an unexpected exception -> job_failed naming its type.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import QuantLensError
from core.jobs.atomic_files import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
JOB_ROOT_ENV = "QUANTLENS_JOB_ROOT"
_JOB_NAME = re.compile(r"[0-9a-f]{32}")
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
POLL_S = 0.05
REPORT_EVERY_S = 2.0  # JobQueue: how often a waiting job's unchanged place in line is reported again
MAX_RESULT_BYTES = 64 * 2**20
MAX_PROGRESS_LINE = 4096
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); from core.jobs.worker import main; sys.exit(main(sys.argv[2:]))"
)

Progress = Callable[[str, "float | None"], None]


@dataclass(frozen=True)
class JobLimits:
    timeout_s: float = 300.0
    memory_bytes: int = 6 * 2**30
    threads: int = 2
    file_bytes: int = 8 * 2**30  # largest single file the job may write (RLIMIT_FSIZE)
    confine: bool = True  # Landlock filesystem/network confinement where the kernel offers it


# ------------------------------------------------------------------------------------------ job directories
def default_job_root() -> Path:
    """A private per-user folder under the temp dir (or $QUANTLENS_JOB_ROOT), created 0700 if missing.

    Refuses a root that is a link, owned by someone else or readable by others: a pre-created shared folder
    would let another local user watch or swap job files.
    """
    base = os.environ.get(JOB_ROOT_ENV) or os.path.join(tempfile.gettempdir(), f"quantlens-jobs-{os.getuid()}")
    root = Path(base)
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700, parents=True)
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise QuantLensError("job_root_unsafe",
                             f"The job folder {root} is not a private folder of this user; remove it or set "
                             f"{JOB_ROOT_ENV}.")
    return root


OWNER_SUFFIX = ".owner"  # `<job dir name>.owner` beside the folder: outside what the worker may write


def _process_identity(pid: int) -> str | None:
    """`pid starttime`: a pid alone can be reused by an unrelated process after the owner died."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return f"{pid} {int(fields[19])}"  # field 22 of stat: start time in clock ticks since boot
    except (OSError, IndexError, ValueError):
        return None


def _owner_alive(path: Path) -> bool | None:
    """Whether the process that created a job dir still runs; None when unknown (no owner file, no /proc)."""
    try:
        recorded = path.with_name(path.name + OWNER_SUFFIX).read_text(encoding="ascii").strip()
        pid = int(recorded.split()[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    if not os.path.exists("/proc/self/stat"):
        return None
    return _process_identity(pid) == recorded


def new_job_dir(root: Path | None = None) -> Path:
    """A fresh job directory with an unguessable name and mode 0700, stamped with the creating process.

    The stamp lets a restarted server (or the next CLI run) remove what a killed one left behind at once,
    instead of an hour later (sweep_orphaned_job_dirs).
    """
    root = Path(root) if root is not None else default_job_root()
    path = root / secrets.token_hex(16)
    path.mkdir(mode=0o700)
    identity = _process_identity(os.getpid())
    if identity:
        # Atomic: a sweep in another process must never read a half-written stamp (core.jobs.atomic_files).
        write_text_atomic(path.with_name(path.name + OWNER_SUFFIX), identity, encoding="ascii")
    return path


def remove_job_dir(path: Path) -> None:
    """Delete a job directory (without following links inside it) and its owner stamp."""
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.with_name(path.name + OWNER_SUFFIX).unlink()


@contextlib.contextmanager
def job_directory(root: Path | None = None) -> Iterator[Path]:
    """`with job_directory() as job_dir:` — created on entry, always removed on exit."""
    path = new_job_dir(root)
    try:
        yield path
    finally:
        remove_job_dir(path)


def sweep_stale_job_dirs(root: Path | None = None, older_than_s: float = 3600) -> int:
    """Remove job directories left behind (server crash, abandoned session) older than `older_than_s`."""
    root = Path(root) if root is not None else default_job_root()
    cutoff = time.time() - older_than_s
    removed = 0
    for entry in root.iterdir():
        if not _JOB_NAME.fullmatch(entry.name):
            continue
        try:
            info = entry.lstat()
        except FileNotFoundError:  # removed meanwhile (another sweep, its owner)
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_mtime < cutoff:
            remove_job_dir(entry)
            removed += 1
    return removed


def sweep_orphaned_job_dirs(root: Path | None = None) -> int:
    """Remove job directories whose creating process has died (a SIGKILLed server or CLI), whatever their age.

    Run on start-up: a folder whose owner is gone has no one left to offer its files or remove them. Folders
    with an unknown owner are left to the age-based sweep.
    """
    root = Path(root) if root is not None else default_job_root()
    removed = 0
    for entry in root.iterdir():
        stem = entry.name.removesuffix(OWNER_SUFFIX)
        if entry.name.endswith(OWNER_SUFFIX) and _JOB_NAME.fullmatch(stem) and not (root / stem).exists():
            entry.unlink(missing_ok=True)  # a stamp whose folder is already gone
            continue
        if not _JOB_NAME.fullmatch(entry.name):
            continue
        try:
            info = entry.lstat()
        except FileNotFoundError:  # removed meanwhile (another sweep, its owner)
            continue
        if stat.S_ISDIR(info.st_mode) and _owner_alive(entry) is False:
            remove_job_dir(entry)
            removed += 1
    return removed


def sweep_at_start_up(root: Path | None = None, older_than_s: float = 3600) -> int:
    """What a (re)started server does first (app.py, once per process): remove every job folder whose creating
    process is gone (threat 27: a killed server's uploads and jobs must not wait for the first Run) and every
    leftover older than `older_than_s`. Returns how many folders went."""
    return sweep_orphaned_job_dirs(root) + sweep_stale_job_dirs(root, older_than_s)


# ------------------------------------------------------------------------------------------ running one job
def _child_env(run_dir: Path, threads: int) -> dict[str, str]:
    home, tmp = run_dir / "home", run_dir / "tmp"
    home.mkdir(mode=0o700)
    tmp.mkdir(mode=0o700)
    n = str(max(1, int(threads)))
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "HF_HOME": str(home / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "QUANTLENS_THREADS": n,
        "PYTHONHASHSEED": "0",
        # glibc may give each allocating thread its own heap, reserving up to 64 MiB of address space each; the
        # job's limit is RLIMIT_AS (address space, not resident memory), so two arenas for all threads.
        "MALLOC_ARENA_MAX": "2",
    }


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _exited(pid: int) -> bool:
    """True once the child has exited, without reaping it: its process-group id stays reserved until we do."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class _ProgressRelay:
    """Reads complete JSON lines the child appended to progress.jsonl and hands them to the caller."""

    def __init__(self, path: Path, callback: Progress | None) -> None:
        self.path, self.callback, self.offset, self.buffer = path, callback, 0, b""

    def pump(self) -> None:
        if self.callback is None or not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(2**20)
        self.offset += len(data)
        lines = (self.buffer + data).split(b"\n")
        self.buffer = lines.pop()[-MAX_PROGRESS_LINE:]
        for line in lines:
            if len(line) > MAX_PROGRESS_LINE:
                continue
            try:
                item = json.loads(line)
                stage = str(item["stage"])[:200]
                fraction = item.get("fraction")
                fraction = None if fraction is None else min(max(float(fraction), 0.0), 1.0)
            except (ValueError, KeyError, TypeError):
                continue
            self.callback(stage, fraction)


def _stderr_tail(path: Path) -> str:
    with contextlib.suppress(OSError), open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 8192))
        return handle.read().decode("utf-8", "replace")
    return ""


def _read_result(path: Path) -> dict | None:
    if not path.exists() or path.stat().st_size > MAX_RESULT_BYTES:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _network_attempt(run_dir: Path) -> str | None:
    from core.jobs.sandbox import NETWORK_LOG

    path = run_dir / NETWORK_LOG
    if not path.exists():
        return None
    with open(path, "rb") as handle:
        first = handle.readline(1024)
    try:
        item = json.loads(first)
        return f"{item['call']} {item['target']}"[:120]
    except (ValueError, KeyError, TypeError):
        return "unknown"


# Under RLIMIT_AS a refused allocation is often not a MemoryError: native code that does not check malloc's
# result crashes instead (Qwen2.5-0.5B under 6 GiB ended as SIGSEGV). A crash after the child's address space came
# this close to the limit is reported as the memory limit, which is what the user can change.
NEAR_LIMIT_SHARE = 0.8
_CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL)


def _vm_peak_bytes(pid: int) -> int:
    """The child's peak address-space size so far (VmPeak), or 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _outcome(returncode: int, run_dir: Path, limits: JobLimits, target: str, *, vm_peak: int = 0) -> dict:
    """Turn what the child left behind into a result dict, or raise the matching QuantLensError."""
    attempt = _network_attempt(run_dir)
    if attempt:
        raise QuantLensError("network_forbidden",
                             f"The job tried to reach the network ({attempt}); jobs run offline and it was stopped.")
    data = _read_result(run_dir / "result.json")
    if data is not None and returncode == 0:
        if data.get("ok") is True and isinstance(data.get("result"), dict):
            return data["result"]
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        code = str(error.get("code", ""))
        if code == "resource_limit_memory":
            raise _memory_error(limits)
        if code == "resource_limit_disk":
            raise _disk_error(limits)
        if code == "job_failed" or not _CODE.fullmatch(code):
            log.warning("job %s failed: %s", target, _stderr_tail(run_dir / "stderr.log"))
            kind = re.sub(r"[^\w.]", "", str(error.get("type", "error")))[:60]
            raise QuantLensError("job_failed", f"The job failed with an unexpected {kind}; the details are in the "
                                               "server log.")
        message = " ".join(str(error.get("message", "")).split())[:500] or "The job failed."
        raise QuantLensError(code, message)

    tail = _stderr_tail(run_dir / "stderr.log")
    log.warning("job %s ended with status %s: %s", target, returncode, tail)
    from core.jobs.worker import MEMORY_MARKERS

    if returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        if sig == signal.SIGKILL or (sig == signal.SIGABRT and any(m in tail for m in MEMORY_MARKERS)):
            raise _memory_error(limits)
        if sig == signal.SIGXFSZ:
            raise _disk_error(limits)
        if sig == signal.SIGXCPU:
            raise QuantLensError("timeout", f"The job used more CPU time than its {limits.timeout_s:g} s limit allows "
                                            "and was stopped.")
        if sig in _CRASH_SIGNALS and vm_peak >= NEAR_LIMIT_SHARE * limits.memory_bytes:
            raise _memory_error(limits, crashed=name)
        raise QuantLensError("model_crashed_runtime",
                             f"The model crashed the runtime ({name}); it cannot be processed. The app is unaffected.")
    if any(m in tail for m in MEMORY_MARKERS):
        raise _memory_error(limits)
    raise QuantLensError("job_failed", f"The job stopped unexpectedly (exit status {returncode}).")


def _disk_error(limits: JobLimits) -> QuantLensError:
    return QuantLensError("resource_limit_disk",
                          f"The job tried to write a file larger than {limits.file_bytes / 2**20:g} MiB and was stopped.")


MEMORY_FLAG = "--memory-gib"
MEMORY_VARIABLE = "QUANTLENS_JOB_MEMORY_GB"  # core.jobs.server_settings


def _memory_error(limits: JobLimits, crashed: str | None = None) -> QuantLensError:
    how = f" (the runtime crashed with {crashed} as it reached the limit)" if crashed else ""
    return QuantLensError("resource_limit_memory",
                          f"The job needed more than its {limits.memory_bytes / 2**30:.1f} GiB memory limit and was "
                          f"stopped{how}; raise the limit with {MEMORY_FLAG} on the command line or {MEMORY_VARIABLE} "
                          "on a server, or try a smaller model.")


def run_job(target: str, payload: dict, *, job_dir: Path, limits: JobLimits = JobLimits(),  # noqa: B008
            on_progress: Progress | None = None, cancel: threading.Event | None = None) -> dict:
    """Run `module:function(payload, job_dir, progress) -> dict` in a confined child; see the module docstring."""
    if not _TARGET.fullmatch(target):
        raise ValueError(f"target must look like 'package.module:function', got {target!r}")
    job_dir = Path(job_dir).resolve()
    if not job_dir.is_dir():
        raise ValueError(f"job_dir {job_dir} is not a directory")
    from core.jobs.sandbox import read_roots

    run_dir = job_dir / f".run-{secrets.token_hex(8)}"
    run_dir.mkdir(mode=0o700)
    process: subprocess.Popen | None = None
    try:
        spec = {"target": target, "payload": payload, "job_dir": str(job_dir), "run_dir": str(run_dir),
                "limits": asdict(limits), "read_dirs": [str(p) for p in read_roots(PROJECT_ROOT)]}
        write_json_atomic(run_dir / "spec.json", spec)
        env = _child_env(run_dir, limits.threads)
        with open(run_dir / "stderr.log", "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-I", "-B", "-c", _BOOTSTRAP, str(PROJECT_ROOT), str(run_dir / "spec.json"),
                 str(os.getpid())],
                cwd=job_dir, env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                start_new_session=True, close_fds=True,
            )
        relay = _ProgressRelay(run_dir / "progress.jsonl", on_progress)
        deadline = time.monotonic() + limits.timeout_s
        vm_peak = 0
        while not _exited(process.pid):
            relay.pump()
            vm_peak = max(vm_peak, _vm_peak_bytes(process.pid))
            if cancel is not None and cancel.is_set():
                raise QuantLensError("cancelled", "The job was cancelled.")
            if time.monotonic() > deadline:
                raise QuantLensError("timeout",
                                     f"The job took longer than {limits.timeout_s:g} s and was stopped.")
            time.sleep(POLL_S)
        _kill_group(process.pid)  # stragglers the child left in its group
        returncode = process.wait()
        relay.pump()
        return _outcome(returncode, run_dir, limits, target, vm_peak=vm_peak)
    finally:
        if process is not None and process.returncode is None:  # timeout, cancel or a failing callback
            _kill_group(process.pid)  # only while unreaped: the group id cannot have been reused yet
            process.wait()
        shutil.rmtree(run_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------ the queue
@dataclass
class _Ticket:
    session_id: str
    cancel: threading.Event


@dataclass(frozen=True)
class QueueState:
    running: int
    queued: int


class JobSlot:
    """A running place granted by JobQueue.slot; its jobs stop when the session is cancelled."""

    def __init__(self, runner: Callable[..., dict], cancel: threading.Event) -> None:
        self._runner, self._cancel = runner, cancel

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self, target: str, payload: dict, *, job_dir: Path, limits: JobLimits = JobLimits(),  # noqa: B008
            on_progress: Progress | None = None) -> dict:
        if self._cancel.is_set():
            raise QuantLensError("cancelled", "The job was cancelled.")
        return self._runner(target, payload, job_dir=job_dir, limits=limits, on_progress=on_progress,
                            cancel=self._cancel)


class JobQueue:
    """Process-wide admission control: at most `max_running` jobs run and `max_queued` wait; one per session.

    The page keeps one instance (st.cache_resource); nothing here is module-global. `run` blocks the caller's
    thread until its job is done; while it waits, `on_wait(position)` reports its place in line (1 = next).
    """

    def __init__(self, max_running: int = 1, max_queued: int = 4, *,
                 runner: Callable[..., dict] = run_job, sweep_root: Path | None = None,
                 sweep_older_than_s: float | None = 3600, sweep_interval_s: float = 60) -> None:
        if max_running < 1 or max_queued < 0:
            raise ValueError("max_running must be >= 1 and max_queued >= 0")
        self.max_running, self.max_queued = max_running, max_queued
        self._runner = runner
        self._lock = threading.Condition()
        self._running: dict[str, _Ticket] = {}
        self._waiting: list[_Ticket] = []
        # Abandoned job dirs (closed tabs, crashed servers) are swept as a side effect of new submissions,
        # at most once per interval, so no separate timer thread is needed. None disables it.
        self._sweep_root, self._sweep_age_s, self._sweep_interval_s = sweep_root, sweep_older_than_s, sweep_interval_s
        self._last_sweep = float("-inf")
        if sweep_older_than_s is not None:  # start-up: what a killed server left behind goes now
            try:
                removed = sweep_orphaned_job_dirs(sweep_root)
            except (OSError, QuantLensError) as exc:
                log.warning("start-up sweep of job dirs failed: %s", exc)
            else:
                if removed:
                    log.info("removed %d job directories of a process that is gone", removed)

    def _maybe_sweep(self) -> None:
        if self._sweep_age_s is None:
            return
        with self._lock:
            now = time.monotonic()
            if now - self._last_sweep < self._sweep_interval_s:
                return
            self._last_sweep = now
        try:
            removed = sweep_stale_job_dirs(self._sweep_root, self._sweep_age_s)
        except (OSError, QuantLensError) as exc:
            log.warning("job dir sweep failed: %s", exc)
            return
        if removed:
            log.info("removed %d stale job directories", removed)

    def state(self) -> QueueState:
        with self._lock:
            return QueueState(running=len(self._running), queued=len(self._waiting))

    def _admit(self, session_id: str) -> _Ticket:
        with self._lock:
            if session_id in self._running:
                raise QuantLensError("busy", "You already have a job running; wait for it to finish.")
            for position, ticket in enumerate(self._waiting, start=1):
                if ticket.session_id == session_id:
                    raise QuantLensError("busy", f"You already have a job waiting; you are {position} in line.")
            if len(self._waiting) >= self.max_queued and len(self._running) >= self.max_running:
                raise QuantLensError("busy", f"The server is busy: {len(self._running)} running and "
                                             f"{len(self._waiting)} waiting, the queue is full. Try again in a minute.")
            ticket = _Ticket(session_id, threading.Event())
            self._waiting.append(ticket)
            return ticket

    def _wait_turn(self, ticket: _Ticket, on_wait: Callable[[int], None] | None) -> None:
        reported, reported_at = 0, 0.0
        while True:
            with self._lock:
                if ticket.cancel.is_set():
                    self._waiting.remove(ticket)
                    self._lock.notify_all()
                    raise QuantLensError("cancelled", "The job was cancelled before it started.")
                position = self._waiting.index(ticket) + 1
                if position == 1 and len(self._running) < self.max_running:
                    self._waiting.pop(0)
                    self._running[ticket.session_id] = ticket
                    self._lock.notify_all()
                    return
                # an unchanged place is re-reported now and then: a page can only be interrupted (Cancel) in a call
                if on_wait is None or (position == reported and time.monotonic() - reported_at < REPORT_EVERY_S):
                    self._lock.wait(timeout=0.5)
                    continue
            reported, reported_at = position, time.monotonic()
            try:
                on_wait(position)  # outside the lock: a UI callback may be slow or raise
            except BaseException:
                with self._lock:
                    self._waiting.remove(ticket)
                    self._lock.notify_all()
                raise

    @contextlib.contextmanager
    def slot(self, session_id: str, *, on_wait: Callable[[int], None] | None = None) -> Iterator[JobSlot]:
        """Hold one running place for a session: `with queue.slot(sid) as slot: validate...; slot.run(...)`.

        Lets the page do the upload validation (disk and CPU work in the server) inside the same bounded
        admission as the job itself, so N sessions never unpack N archives at once.
        """
        self._maybe_sweep()
        ticket = self._admit(session_id)
        self._wait_turn(ticket, on_wait)
        try:
            yield JobSlot(self._runner, ticket.cancel)
        finally:
            with self._lock:
                self._running.pop(ticket.session_id, None)
                self._lock.notify_all()

    def run(self, session_id: str, target: str, payload: dict, *, job_dir: Path,
            limits: JobLimits = JobLimits(), on_progress: Progress | None = None,  # noqa: B008
            on_wait: Callable[[int], None] | None = None) -> dict:
        """Wait for a place, run one job in it, release it (raises `busy` at once if there is no place)."""
        with self.slot(session_id, on_wait=on_wait) as slot:
            return slot.run(target, payload, job_dir=job_dir, limits=limits, on_progress=on_progress)

    def cancel(self, session_id: str) -> bool:
        """Stop the session's job (running: killed within a poll interval; waiting: removed). True if found."""
        with self._lock:
            tickets = [t for t in self._waiting if t.session_id == session_id]
            if session_id in self._running:
                tickets.append(self._running[session_id])
            for ticket in tickets:
                ticket.cancel.set()
            self._lock.notify_all()
            return bool(tickets)
