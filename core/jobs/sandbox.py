"""Confinement a job's child process applies to itself before it imports any model code.

Two layers, both installed by core.worker before the target module is imported:

1. Landlock (Linux >= 5.13, unprivileged, inherited by every descendant): the process may write only
   beneath its job directory (+ /dev/null), may read only the system and Python installation folders, the
   project and the job directory (so another session's job directory, /tmp and home folders are invisible),
   and, where the kernel supports it (Landlock ABI >= 4), may not open or accept TCP connections at all; on
   ABI >= 6 it may not signal processes outside itself (the server) either. When the kernel lacks Landlock
   this layer reports itself absent and the job still runs: real isolation on a host is then the
   container's job (read-only root, no network namespace access, a memory cgroup).
2. An in-process network guard: socket connect/sendto and name resolution raise `network_forbidden` and are
   recorded in a file the parent reads, so a library that swallows the error still cannot hide the attempt.
   This covers Python code only (a native library calling libc directly is stopped by layer 1 or the
   container, not by this).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import site
import socket
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from core.errors import QuantLensError

# ---------------------------------------------------------------------------------------------- Landlock
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # same on x86_64 and aarch64
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH = 1
_CREATE_RULESET_VERSION = 1

FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK, FS_MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
SYSTEM_READ_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/opt")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies; exit at once if the parent is already gone.

    A worker must never outlive the server or CLI that started it (a deploy's SIGTERM, an OOM kill): the wall
    clock limit is kept by the parent, so an orphan would run on unbounded (threat 27, docs/threats.md). The
    signal fires when the parent *thread* that forked us ends; core.jobs waits for the child in that same
    thread, so it lives as long as the job. Returns False where the kernel has no such call (not Linux).
    """
    if platform.system() != "Linux":
        return False
    try:
        libc = _libc()
        if libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0) != 0:  # 9 = SIGKILL
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent_pid:  # the parent died before the request was in place
        os._exit(70)
    return True


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable (non-Linux, old kernel, disabled, seccomp'd)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64", "arm64"):
        return 0
    try:
        abi = _libc().syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(int(abi), 0)


def read_roots(project_root: Path) -> list[Path]:
    """Folders a job may read: system, the Python installation and its packages, the project."""
    roots = [Path(p) for p in SYSTEM_READ_DIRS]
    roots += [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.executable).parent,
              project_root]
    # The installation's own folders only, not the parent's sys.path (which may include a script's folder).
    roots += [Path(p) for p in sysconfig.get_paths().values()] + [Path(p) for p in site.getsitepackages()]
    resolved: list[Path] = []
    for root in roots:
        for candidate in (root, root.resolve()):
            if candidate.exists() and candidate not in resolved:
                resolved.append(candidate)
    return resolved


def apply_landlock(job_dir: Path, read_dirs: Iterable[Path]) -> int:
    """Confine this process (and its future children); return the ABI used, or 0 if Landlock is unavailable.

    Irreversible by design: once restricted, the process cannot widen its own rights.
    """
    abi = landlock_abi()
    if abi < 1:
        return 0
    libc = _libc()
    handled_fs = (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_READ_DIR | FS_REMOVE_DIR | FS_REMOVE_FILE
                  | FS_MAKE_CHAR | FS_MAKE_DIR | FS_MAKE_REG | FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_BLOCK | FS_MAKE_SYM)
    if abi >= 2:
        handled_fs |= FS_REFER
    if abi >= 3:
        handled_fs |= FS_TRUNCATE
    attr = _RulesetAttr(handled_access_fs=handled_fs,
                        handled_access_net=(NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0,
                        scoped=(SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return 0
    try:
        rules = [(Path(d), _READ) for d in read_dirs]
        rules.append((Path(job_dir), handled_fs))
        file_rw = FS_READ_FILE | FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0)
        rules.append((Path("/dev/null"), file_rw))
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(path):
                    access &= FS_EXECUTE | FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE
                rule = _PathBeneathAttr(allowed_access=access, parent_fd=fd)
                # A rule the kernel refuses only means less access (fail closed), so it is skipped.
                libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                             ctypes.byref(rule), ctypes.c_uint32(0))
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


def describe_confinement() -> str:
    """One line for the server log at start-up: what the job sandbox can enforce on this kernel."""
    abi = landlock_abi()
    if abi < 1:
        return ("Job confinement: Landlock unavailable on this kernel; jobs rely on rlimits, the Python network "
                "guard and the container for isolation.")
    parts = ["filesystem (write only in the job dir, read only system/Python/project)"]
    if abi >= 4:
        parts.append("TCP connect/bind blocked")
    if abi >= 6:
        parts.append("no signals outside the job")
    return f"Job confinement: Landlock ABI {abi}: " + ", ".join(parts) + "."


# ---------------------------------------------------------------------------------------------- network guard
NETWORK_LOG = "network_attempts.jsonl"


def install_network_guard(log_path: Path) -> None:
    """Make every Python-level network attempt fail with `network_forbidden` and leave a record of it.

    Local (AF_UNIX) sockets stay usable: some libraries use them between their own threads/processes.
    """

    def record(what: str, target: object) -> QuantLensError:
        try:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps({"call": what, "target": str(target)[:200]}) + "\n")
        except OSError:
            pass
        return QuantLensError("network_forbidden",
                              f"The job tried to reach the network ({what} {str(target)[:80]}); jobs run offline.")

    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto

    def is_local(sock: socket.socket) -> bool:
        return getattr(socket, "AF_UNIX", None) is not None and sock.family == socket.AF_UNIX

    def connect(self, address):
        if is_local(self):
            return original_connect(self, address)
        raise record("connect", address)

    def connect_ex(self, address):
        if is_local(self):
            return original_connect_ex(self, address)
        raise record("connect", address)

    def sendto(self, *args):
        if is_local(self):
            return original_sendto(self, *args)
        raise record("sendto", args[-1] if args else "")

    def resolver(name: str):
        def blocked(host, *args, **kwargs):
            raise record(name, host)

        return blocked

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = sendto  # type: ignore[method-assign]
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "create_connection"):
        setattr(socket, name, resolver(name))
