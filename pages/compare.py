"""Quantize & compare page: a model (upload or the bundled demo) at FP32/FP16/INT8/INT4, on the user's inputs.

UI only. The work runs in a confined child process through core.jobs.JobQueue (one queue for the server,
held by st.cache_resource) calling core.compare:run_comparison_job; the page draws the ComparisonReport it
returns. Results are kept in st.session_state under a content hash of (model bytes, options, inputs), so a
chart control or any other rerun never quantizes again; chart controls live in fragments. The demo is the
same for everyone, so its results are shared across sessions (first visitor pays); an upload's results never
leave its session. Settings live in the URL: `?src=demo&run=1` opens the demo results directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import uuid
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from core.compare.common.settings import (
    DEFAULT_PRECISIONS,
    LABELS,
    PRECISIONS,
    CompareOptions,
    Int4Config,
    Int8DynamicConfig,
    Int8StaticConfig,
    spec,
)
from core.compare.inputs.user_data import DEFAULT_TEXTS, texts_from_bytes, texts_from_string
from core.compare.judge.explain import OLIVE_RULE, bar_metric, metric_in_words, recommend, slower_than_fp32
from core.compare.report import REPORT_NAME, ComparisonReport, quality_headlines
from core.errors import QuantLensError
from core.jobs.server_settings import ServerSettings, server_settings
from core.units import MB
from pages import style
from pages.routing import ensure_routed, page_entered
from pages.share import share_link
from pages.text import plain

ensure_routed()
ENTERED = page_entered("compare")
style.apply()

TARGET = "core.compare.pipeline:run_comparison_job"
MAX_INPUTS_UPLOAD_MB = 64  # an .npz of real inputs (a few images' arrays) easily passes 2 MB
MEDIA_TYPES = ["png", "jpg", "jpeg", "wav", "zip"]
MAX_MEDIA_UPLOAD_MB = 16  # per file, as core.compare.inputs.media_inputs.MAX_MEDIA_FILE_BYTES
MAX_MEDIA_FILES = 32  # as core.compare.inputs.media_inputs.MAX_MEDIA_FILES (the page imports no ML module)
BLOCK_SIZES = (16, 32, 64, 128)
ACCURACY_LEVELS = {4: "4: int8 compute (fastest on CPU)", 0: "0: default", 1: "1: fp32", 2: "2: fp16", 3: "3: bf16"}
SOURCES = {"demo": "Demo: all-MiniLM-L6-v2 (bundled, offline)", "upload": "Upload a model (.onnx or .zip of a HF folder)"}
OUTPUT_KINDS = list(spec(CompareOptions, "output_kind").choices or ("auto",))
MAX_DEMO_RESULTS = 6  # distinct demo settings kept (about 170 MB of files each)
DEMO_JOB_BYTES = 400 * MB  # a demo run's job folder and its copy in the demo store, held from the disk budget

URL_KEYS = ("src", "demo", "run", "p", "ref", "bs", "al", "f8", "clip", "algo", "sym", "emb", "pc", "runs")
SAVED_KEYS = ("cmp_src", "cmp_precisions", "cmp_ref", "cmp_bs", "cmp_al", "cmp_algo", "cmp_sym", "cmp_emb", "cmp_pc",
              "cmp_runs", "cmp_f8", "cmp_clip", "cmp_texts", "cmp_out")
URL_DEFAULTS = {"src": "demo", "p": ",".join(DEFAULT_PRECISIONS), "ref": "fp16", "bs": "128", "al": "4", "f8": "33", "clip": "1",
                "algo": "rtn", "sym": "0", "emb": "1", "pc": "1", "runs": "20"}


# ------------------------------------------------------------------------------------------ shared resources
@st.cache_resource(show_spinner=False)
def settings() -> ServerSettings:
    """The operator's limits (QUANTLENS_* environment variables, DEPLOY.md), read once per server."""
    return server_settings(os.environ)


def job_limits():
    from core.jobs.runner import JobLimits

    return JobLimits(timeout_s=settings().job_timeout_s, memory_bytes=settings().job_memory_bytes)


def max_upload_mb() -> int:
    return settings().max_model_upload_bytes // 2**20


@st.cache_resource(show_spinner=False)
def job_queue():
    """One queue for the whole server: a bounded number run and wait, one job per session.

    With QUANTLENS_QUEUE=redis://... it is the fleet's shared queue instead (DEPLOY.md); the page is the same.
    """
    from core.jobs.queue_backend import job_backend

    return job_backend(os.environ, settings())


def cancel_running_job() -> None:
    """The Cancel button: the click itself interrupts the run (its job is stopped as the wait unwinds); this
    also stops it wherever it still is (the shared queue or a worker), and says so on the next render."""
    if st.session_state.pop("cmp_running", False):
        job_queue().cancel(session_id())
        st.session_state["cmp_cancelled"] = True


@st.cache_resource(show_spinner=False)
def demo_store():
    """Demo results shared by all sessions (public model, same inputs for all), in the private job root."""
    from core.jobs.demo_store import DemoStore
    from core.jobs.runner import default_job_root

    return DemoStore(default_job_root() / "demo-results", max_entries=MAX_DEMO_RESULTS)


@st.cache_resource(show_spinner=False)
def gate_slots() -> threading.BoundedSemaphore:
    """At most two uploads are checked at once (each check is a child process with its own budget)."""
    return threading.BoundedSemaphore(2)


@st.cache_resource(show_spinner=False)
def disk_budget():
    """Disk all sessions' folders may fill together (QUANTLENS_MAX_DISK_GB): beyond it, "server busy"."""
    from core.jobs.budget import DiskBudget
    from core.jobs.runner import default_job_root

    return DiskBudget(default_job_root(), settings().max_disk_bytes)


@st.cache_resource(show_spinner=False)
def session_registry():
    """Which session holds which folders, so a closed tab's folders go within a minute (pages/uploads.py)."""
    from pages.uploads import SessionRegistry

    return SessionRegistry()


def session_files():
    """This session's folders (its upload, its media, its latest job): removed when the session ends."""
    from core.jobs.session import SessionFiles
    from pages.uploads import _upload_manager

    files = st.session_state.get("cmp_files")
    if files is None or files.closed:  # closed: the tab was gone long enough for its folders to be removed
        files = st.session_state["cmp_files"] = SessionFiles()
        st.session_state.pop("cmp_media", None)
        ctx, _ = _upload_manager()
        if ctx is not None:
            session_registry().register(ctx.session_id, files)
    return files


def media_store():
    """This session's images/audio on disk (core/jobs/media_store.py), in a folder its SessionFiles owns."""
    from core.jobs.media_store import MediaStore
    from core.jobs.runner import new_job_dir

    files = session_files()
    store = st.session_state.get("cmp_media")
    if store is None or files.get("media") is None:
        folder = new_job_dir()
        files.put("media", folder)
        store = st.session_state["cmp_media"] = MediaStore(
            folder, max_files=min(settings().max_media_files, MAX_MEDIA_FILES), max_bytes=settings().max_media_bytes,
            max_file_bytes=MAX_MEDIA_UPLOAD_MB * 2**20)
    return store


@contextlib.contextmanager
def reserve_disk(nbytes: int, what: str = ""):
    """Hold `nbytes` of the global disk budget while writing; when it is full, closed tabs' folders go first, then
    the answer is `server_busy` (core/jobs/budget.py). Yields the bytes free beyond the reservation."""
    if disk_budget().use().free_bytes < nbytes:
        session_registry().sweep()
    with disk_budget().reserve(nbytes, what) as free:
        yield free


def session_id() -> str:
    if "cmp_session" not in st.session_state:
        st.session_state["cmp_session"] = uuid.uuid4().hex
    return st.session_state["cmp_session"]


# ------------------------------------------------------------------------------------------ URL <-> widgets
def _flag(value: str) -> bool:
    return value in ("1", "true", "yes", "on")


def init_state_from_url() -> list[str]:
    """On entering the page, rebuild every setting; name the link values that were invalid.

    Streamlit drops the widgets' values while another page is shown, so entering again must set them all: from
    the link when it carries settings (a link always wins), else from what this page showed last, else defaults.
    """
    if st.session_state.get("cmp_init") and not ENTERED:
        # A rerun that interrupted the first run (the user switched to Upload while it was still going) may have
        # dropped widget values Streamlit had not yet seen rendered: restore them rather than run with none.
        for key, value in st.session_state.get("cmp_initial", {}).items():
            if key not in st.session_state:
                st.session_state[key] = value
        return []
    st.session_state["cmp_init"] = True
    saved = st.session_state.get("cmp_saved")
    if saved and not any(k in st.query_params for k in URL_KEYS):
        st.session_state.update(saved)
        return []
    qp = st.query_params
    problems: list[str] = []
    if qp.get("demo", "").lower() not in ("", "1", "true", "yes", "on", "0", "false", "no", "off"):
        problems.append(f"demo={qp.get('demo')[:40]!r} (use demo=1)")
    src = "demo" if _flag(qp.get("demo", "")) else qp.get("src", URL_DEFAULTS["src"])
    if src not in SOURCES:
        problems.append(f"src={src!r}")
        src = "demo"
    asked = [p.strip() for p in qp.get("p", URL_DEFAULTS["p"]).split(",") if p.strip()]
    asked = list(PRECISIONS) if [p.lower() for p in asked] == ["all"] else asked
    precisions = list(dict.fromkeys(p.lower() for p in asked if p.lower() in PRECISIONS))  # keep the good ones
    bad = [p for p in asked if p.lower() not in PRECISIONS]
    if bad or not precisions:
        problems.append(f"p={','.join(bad)[:80] or 'empty'}" + (" (kept " + ",".join(precisions) + ")"
                                                               if precisions else ""))
        precisions = precisions or list(DEFAULT_PRECISIONS)
    ref = qp.get("ref", "fp16")
    if ref not in ("fp16", "fp32"):
        problems.append(f"ref={ref!r}")
        ref = "fp16"

    def number(key: str, allowed) -> int:
        raw = qp.get(key, URL_DEFAULTS[key])
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value not in allowed:
            problems.append(f"{key}={raw!r}")
            return int(URL_DEFAULTS[key])
        return value

    output_kind = qp.get("out", "auto")
    if output_kind not in OUTPUT_KINDS:
        problems.append(f"out={output_kind!r}")
        output_kind = "auto"
    algo = qp.get("algo", "rtn")
    if algo not in ("rtn", "hqq"):
        problems.append(f"algo={algo!r}")
        algo = "rtn"
    initial = {
        "cmp_src": src, "cmp_precisions": precisions, "cmp_ref": ref,
        "cmp_bs": number("bs", BLOCK_SIZES), "cmp_al": number("al", ACCURACY_LEVELS), "cmp_algo": algo,
        "cmp_sym": _flag(qp.get("sym", "0")), "cmp_emb": _flag(qp.get("emb", "1")), "cmp_pc": _flag(qp.get("pc", "1")),
        "cmp_runs": number("runs", range(3, 201)), "cmp_f8": number("f8", range(0, 101)),
        "cmp_clip": _flag(qp.get("clip", "1")), "cmp_texts": "\n".join(DEFAULT_TEXTS),
        "cmp_out": output_kind,
    }
    st.session_state.update(initial)
    st.session_state["cmp_initial"] = initial
    st.session_state["cmp_autorun"] = _flag(qp.get("run", "0"))
    return problems


def write_url() -> None:
    state = st.session_state
    st.session_state["cmp_saved"] = {k: state[k] for k in SAVED_KEYS if k in state}
    params = {
        "src": state["cmp_src"], "p": ",".join(state["cmp_precisions"]), "ref": state["cmp_ref"],
        "bs": str(state["cmp_bs"]), "al": str(state["cmp_al"]), "algo": state["cmp_algo"],
        "sym": "1" if state["cmp_sym"] else "0", "emb": "1" if state["cmp_emb"] else "0",
        "pc": "1" if state["cmp_pc"] else "0", "runs": str(state["cmp_runs"]), "f8": str(state["cmp_f8"]),
        "clip": "1" if state["cmp_clip"] else "0",
    }
    if state.get("cmp_out", "auto") != "auto":  # written only when set: existing links stay as they were
        params["out"] = state["cmp_out"]
    if st.query_params.get("run") == "1" and state["cmp_src"] == "demo":
        params["run"] = "1"
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)


def options_from_state() -> CompareOptions:
    s = st.session_state
    return CompareOptions(
        precisions=tuple(s["cmp_precisions"]) or DEFAULT_PRECISIONS,
        reference=s["cmp_ref"],
        int8=Int8DynamicConfig(per_channel=s["cmp_pc"], quantize_embeddings=s["cmp_emb"]),
        int8_static=Int8StaticConfig(quantize_embeddings=s["cmp_emb"]),
        int4=Int4Config(block_size=s["cmp_bs"], accuracy_level=s["cmp_al"], algorithm=s["cmp_algo"],
                        symmetric=s["cmp_sym"], quantize_embeddings=s["cmp_emb"], eight_bit_fraction=s["cmp_f8"] / 100,
                        clip_search=s["cmp_clip"]),
        runs=s["cmp_runs"], output_kind=s.get("cmp_out", "auto"),
        image_size=s.get("cmp_imgsize", ""), image_layout=s.get("cmp_layout", "auto"),
        image_scale=s.get("cmp_scale", "auto"), sample_rate=int(s.get("cmp_rate", 0)),
    )


def result_key(model_digest: str, options: CompareOptions, inputs_digest: str) -> str:
    blob = json.dumps([model_digest, options.to_dict(), inputs_digest], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# ------------------------------------------------------------------------------------------ running a job
def _progress_callbacks(status):
    def on_progress(message: str, fraction: float | None) -> None:
        status.update(label=plain(message) + ("" if fraction is None else f" ({fraction:.0%})"))
        status.write(plain(message))

    def on_wait(position: int) -> None:
        status.update(label=f"Waiting for the server: you are {position} in line")

    return on_progress, on_wait


def _run_job(payload: dict, job_dir: Path, status) -> dict:
    on_progress, on_wait = _progress_callbacks(status)
    return job_queue().run(session_id(), TARGET, payload, job_dir=job_dir, limits=job_limits(),
                           on_progress=on_progress, on_wait=on_wait)


def run_demo(options: CompareOptions, texts: list[str] | None, key: str, status) -> dict:
    """Run (or reuse) the demo comparison; results and files are shared by every session.

    Only visitors asking for the *same* demo settings wait for each other (and say so); other settings go
    straight to the job queue, which tells them their place in line.
    """
    store = demo_store()
    cached = store.get(key)
    if cached is not None:
        return cached
    with store.lock_for(key, on_wait=lambda: status.update(
            label="Another visitor is running the demo with these settings; waiting for their result")):
        cached = store.get(key)
        if cached is not None:
            return cached
        from core.jobs.payload import CompareJob
        from core.jobs.runner import job_directory

        with reserve_disk(DEMO_JOB_BYTES, "its disk for uploads and jobs is full"), job_directory() as job_dir:
            job = CompareJob("demo", options.to_dict(), tuple(texts) if texts is not None else None)
            report = _run_job(job.payload(job_dir), job_dir, status)
            return store.put(key, report, job_dir / "out")


def release_upload(uploaded) -> None:
    """Make Streamlit drop its in-memory copy of an upload now, not when the session ends (threat 20, docs/threats.md).

    Streamlit keeps every uploaded file's bytes in its UploadedFileManager until the browser deletes the file
    or the session shuts down; a new widget key alone does not free them. Its own chat input removes a file
    the same way once it has been read.
    """
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    file_id = getattr(uploaded, "file_id", None)
    if ctx is not None and file_id and isinstance(ctx.uploaded_file_mgr, MemoryUploadedFileManager):
        ctx.uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=file_id)
    uploaded.close()


def upload_limits(unpack_cap: int | None = None):
    from core.gate import ingest

    cap = settings().max_unpacked_bytes if unpack_cap is None else min(unpack_cap, settings().max_unpacked_bytes)
    return ingest.UploadLimits(max_upload_bytes=settings().max_model_upload_bytes, max_total_bytes=cap,
                               max_file_bytes=cap)


def check_upload_memory(what: str) -> None:
    """The memory budget: refuse (server_busy) when uploads held in memory by all sessions pass the limit."""
    from core.jobs.budget import MemoryBudget
    from pages.uploads import held_upload_bytes

    MemoryBudget(settings().max_upload_memory_bytes).check(held_upload_bytes(), what)


def keep_upload(uploaded) -> None:
    """Take a new upload out of memory and through the gate at once, so a bad file is refused on arrival.

    The bytes are streamed to this session's own folder (fixed name, chunked), Streamlit's copy is released,
    and the confined gate (a child process with a memory/CPU/time budget) validates and unpacks it there,
    hashing it once. The widget gets a new key so the page re-renders with an empty uploader.
    """
    from core.gate import ingest
    from core.gate.confined import validate_upload_confined
    from core.jobs.budget import server_busy
    from core.jobs.media_store import check_upload_size
    from core.jobs.runner import new_job_dir, remove_job_dir

    files = session_files()
    files.drop("upload")
    st.session_state.pop("cmp_upload", None)
    st.session_state["cmp_upload_gen"] = st.session_state.get("cmp_upload_gen", 0) + 1
    name, upload_dir, declared = uploaded.name, None, int(getattr(uploaded, "size", 0) or 0)
    unpack_cap = settings().max_unpacked_bytes
    try:
        # On the server, before a byte is spooled: the widget's limit is only the browser's (a replayed request
        # may carry more), and all sessions share one memory and one disk budget (core/jobs/budget.py).
        check_upload_size(name, declared, settings().max_model_upload_bytes)
        check_upload_memory("uploads held in memory are at the server's limit")
        unpack_cap = max(0, min(unpack_cap, disk_budget().use().free_bytes - declared))
        with reserve_disk(declared + unpack_cap, "its disk for uploads and jobs is full"):
            upload_dir = new_job_dir()
            uploaded.seek(0)
            spooled = ingest.spool_upload(uploaded, upload_dir, max_bytes=settings().max_model_upload_bytes)
            release_upload(uploaded)
            with gate_slots():
                validated = validate_upload_confined(spooled, upload_dir, limits=upload_limits(unpack_cap))
            size = spooled.stat().st_size
            spooled.unlink()
    except QuantLensError as exc:
        release_upload(uploaded)
        if upload_dir is not None:
            remove_job_dir(upload_dir)
        if exc.code == "archive_too_large" and unpack_cap < settings().max_unpacked_bytes:
            raise server_busy("its disk for uploads and jobs is full") from None  # the budget, not the file's fault
        raise
    except BaseException:
        release_upload(uploaded)
        if upload_dir is not None:
            remove_job_dir(upload_dir)
        raise
    files.put("upload", upload_dir)
    st.session_state["cmp_upload"] = {"dir": str(upload_dir), "path": str(validated.path), "kind": validated.kind,
                                      "digest": validated.sha256, "name": name, "size_bytes": size}


def kept_upload() -> dict | None:
    """This session's validated upload, if it is still on disk."""
    kept = st.session_state.get("cmp_upload")
    if kept and Path(kept["path"]).exists():
        return kept
    return None


def media_widget_key() -> str:
    gen = st.session_state.get("cmp_media_gen", 0)
    return "cmp_media_files" if gen == 0 else f"cmp_media_files_{gen}"


def keep_media(uploaded_files) -> list[str]:
    """Spool each new image/WAV/zip to this session's media folder and release Streamlit's copy at once.

    Checked on the server: each file's size (the widget's limit is only the browser's), the session's count and
    bytes (core/jobs/media_store.py: the same bytes twice are kept once), the memory and disk budgets of all
    sessions. Returns one line per file that was not kept; the widget gets a new key (an empty uploader).
    """
    from core.jobs.media_store import check_upload_size

    store, problems = media_store(), []
    for uploaded in uploaded_files:
        try:
            size = int(getattr(uploaded, "size", 0) or 0)
            check_upload_size(uploaded.name, size, MAX_MEDIA_UPLOAD_MB * 2**20)
            check_upload_memory("uploads held in memory are at the server's limit")
            with reserve_disk(size, "its disk for uploads and jobs is full"):
                uploaded.seek(0)
                store.add(uploaded.name, uploaded, size)
        except QuantLensError as exc:
            problems.append(f"{uploaded.name[:100]} was not kept: {exc.one_line()}")
        finally:
            release_upload(uploaded)
    st.session_state["cmp_media_gen"] = st.session_state.get("cmp_media_gen", 0) + 1
    return problems


def kept_media() -> list:
    """This session's kept images/audio (KeptMedia), oldest first."""
    return media_store().items() if "cmp_media" in st.session_state else []


def upload_widget_key() -> str:
    gen = st.session_state.get("cmp_upload_gen", 0)
    return "cmp_model_file" if gen == 0 else f"cmp_model_file_{gen}"


def _copy_into(src: Path, job_dir: Path) -> Path:
    """The validated model, copied into the job folder (the only folder the confined worker may read)."""
    target = job_dir / src.name
    if src.is_dir():
        shutil.copytree(src, target, symlinks=True)
    else:
        shutil.copyfile(src, target, follow_symlinks=False)
    return target


JOB_DISK_FACTOR = 5  # a job's files / its model's: copy + FP32 export (2x for FP16 weights) + FP16 + INT8 + INT4


def run_upload(kept: dict, options: CompareOptions, texts: list[str] | None, npz: bytes | None, status,
               media: list[tuple[str, Path]] | None = None) -> dict:
    """Compare this session's validated upload in a fresh job dir; the files stay there for download.

    The job holds its worst case of the global disk budget while it runs (server_busy when that is full), and no
    single file it writes may pass that reservation (RLIMIT_FSIZE).
    """
    import dataclasses

    from core.jobs.budget import disk_usage_bytes
    from core.jobs.payload import CompareJob
    from core.jobs.runner import new_job_dir, remove_job_dir

    model_path = Path(kept["path"])
    model_bytes = disk_usage_bytes(model_path) if model_path.is_dir() else model_path.stat().st_size
    need = JOB_DISK_FACTOR * model_bytes + len(npz or b"") + sum(p.stat().st_size for _, p in media or [])
    job_dir = None
    on_progress, on_wait = _progress_callbacks(status)
    try:
        with reserve_disk(need, "its disk for uploads and jobs is full"), \
                job_queue().slot(session_id(), on_wait=on_wait) as slot:
            job_dir = new_job_dir()
            status.update(label="Preparing the job")
            from core.compare.common.memory import check_fits, upload_parameters

            check_fits(upload_parameters(Path(kept["path"])), job_limits().memory_bytes, "The uploaded model")
            model = _copy_into(Path(kept["path"]), job_dir)
            npz_path = None
            if npz is not None:
                npz_path = job_dir / "inputs.npz"
                npz_path.write_bytes(npz)
            files = tuple(_write_media(media, job_dir / "inputs")) if media else None
            job = CompareJob(model, options.to_dict(),
                             tuple(texts) if texts is not None and kept["kind"] == "hf_folder" else None,
                             npz=npz_path, files=files, name="uploaded model" if kept["kind"] == "onnx" else None)
            # no single file past the job's share of the disk (64 MiB floor: logs and scratch of a tiny model)
            limits = dataclasses.replace(job_limits(), file_bytes=min(job_limits().file_bytes, max(need, 64 * 2**20)))
            report = slot.run(TARGET, job.payload(job_dir), job_dir=job_dir, limits=limits, on_progress=on_progress)
    except BaseException:
        if job_dir is not None:
            remove_job_dir(job_dir)
        raise
    session_files().put("job", job_dir)  # the previous run's files go now, not an hour later
    return {"report": report, "dir": str(job_dir / "out")}


def _write_media(media: list[tuple[str, Path]], target: Path) -> list[Path]:
    """The session's kept images/WAVs/zips copied into the job folder, one numbered folder each; the visitor's
    name kept only as a label (the worker reads nothing outside the job folder)."""
    paths = []
    for i, (name, source) in enumerate(media):
        safe = Path(name).name or f"input{i}"
        dest = target / f"{i:03d}" / safe
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest, follow_symlinks=False)
        paths.append(dest)
    return paths


# ------------------------------------------------------------------------------------------ drawing results
def _mb(value: float | None) -> float | None:
    return None if value is None else round(value / MB, 2)


def results_frame(report: dict) -> pd.DataFrame:
    rows = []
    for r in report["results"]:
        row = {
            "Precision": r["label"] + (" (reference)" if r["is_reference"] else ""),
            "File size (MB)": _mb(r["size_bytes"]),
            "x smaller than FP32": round(r["size_ratio_vs_fp32"], 2),
            "Predicted file (MB)": _mb(r["predicted_size_bytes"]),
            "Peak memory (MB)": _mb(r["peak_memory_bytes"]),
            "Load (ms)": round(r["load_ms"], 1),
            "Latency p50 (ms)": round(r["latency_ms_p50"], 2),
            "Latency p95 (ms)": round(r["latency_ms_p95"], 2),
            "Speed-up vs FP32": round(r["speedup_vs_fp32"], 2),
            "Speed-up spread": speedup_spread(r),
            "Status": r.get("status", "ok"),
        }
        if row["Status"] == "unchanged":  # nothing was converted: its size and speed are FP32's, not a gain
            row["x smaller than FP32"] = row["Speed-up vs FP32"] = None
        for title, key, _ in quality_headlines(report["model"]["task"], report["model"].get("output_kind")):
            value = r["quality"].get(key)
            row[title] = None if value is None else round(float(value), 4)
        row["Verdict"] = r.get("verdict_note") or ""
        rows.append(row)
    for f in report.get("failed") or []:
        rows.append({"Precision": f["label"], "Status": f"failed ({f['code']})"})
    return pd.DataFrame(rows)


def speedup_spread(r: dict) -> str:
    """The paired rounds' 10th-90th percentile of the speed-up, and whether it is inside the noise floor."""
    paired = r.get("speedup_paired")
    if not paired or not paired.get("rounds"):
        return ""
    spread = f"{paired['p10']:.2f}-{paired['p90']:.2f}"
    return spread + (" (within noise)" if paired.get("within_noise") and r["precision"] != "fp32" else "")


def timing_caption(report: dict) -> str:
    floor = report.get("latency_noise_floor")
    parts = []
    if floor is not None:
        parts.append(f"Speed-up: FP32 time / variant time in each interleaved round, median and 10th-90th percentile; "
                     f"FP32 timed against itself strays up to {floor:.0%} from 1.00x, and a speed-up inside that "
                     "noise floor is marked 'within noise'.")
    steps = {k[:-len("_seconds")]: v for k, v in (report.get("timings") or {}).items()
             if k.endswith("_seconds") and k not in ("total_seconds", "export_seconds")}
    if steps:
        parts.append("Time per step (s): " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
                     + f"; total {report['timings'].get('total_seconds', 0):.1f} s.")
    return " ".join(parts)


@st.fragment
def recommendation(report: dict) -> None:
    """Which variant to ship, from the measured results and a quality bar the user sets (reruns only itself)."""
    metric, words = bar_metric(report["model"]["task"], report["model"].get("output_kind"))
    bar = st.slider(f"Quality bar: lowest acceptable {words} against {report['reference'].upper()}", 0.90, 1.0,
                    value=0.99, step=0.001, format="%.3f", key="cmp_bar")
    rec = recommend(ComparisonReport.from_dict(report), bar)
    (st.success if rec.precision else st.warning)(rec.sentence, icon=":material/recommend:")
    if rec.failing:
        st.caption(f"Below the bar: {', '.join(rec.failing)}.")
    st.caption(OLIVE_RULE.format(words=words))


@st.fragment
def charts(report: dict) -> None:
    """Chart controls rerun only this fragment: never the comparison."""
    frame = pd.DataFrame([{
        "precision": r["label"], "p50 (ms)": r["latency_ms_p50"], "p95 (ms)": r["latency_ms_p95"],
        "size (MB)": r["size_bytes"] / MB, "x smaller than FP32": r["size_ratio_vs_fp32"],
        "speed-up vs FP32": r["speedup_vs_fp32"],
    } for r in report["results"]])
    order = list(frame["precision"])
    left, right = st.columns(2)
    with left:
        latency = st.radio("Latency", ["p50 (ms)", "p95 (ms)", "speed-up vs FP32"], horizontal=True, key="cmp_chart_latency")
        chart = alt.Chart(frame).mark_bar().encode(
            x=alt.X(f"{latency}:Q", title=latency), y=alt.Y("precision:N", sort=order, title=None),
            tooltip=["precision", alt.Tooltip(f"{latency}:Q", format=".2f")])
        st.altair_chart(chart, width="stretch")
    with right:
        size = st.radio("Size", ["size (MB)", "x smaller than FP32"], horizontal=True, key="cmp_chart_size")
        chart = alt.Chart(frame).mark_bar().encode(
            x=alt.X(f"{size}:Q", title=size), y=alt.Y("precision:N", sort=order, title=None),
            tooltip=["precision", alt.Tooltip(f"{size}:Q", format=".2f")])
        st.altair_chart(chart, width="stretch")
    with st.expander("Chart data as a table"):
        st.table(frame.set_index("precision").round(2))


def quality_view(report: dict) -> None:
    task = report["model"]["task"]
    reference = report["reference"].upper()
    if report["model"].get("output_kind_reason"):
        st.info(plain(f"Quality judged as {report['model']['output_kind']} ({report['model']['output_kind_reason']}). "
                      "Wrong guess? Change it under Quantization options, 'Uploaded ONNX model: what its first output "
                      "is' (CLI: --output-kind)."))
    # an FP16 reference gets its tab too: its own quality is measured against FP32
    variants = [r for r in report["results"] if not r["is_reference"] or r["precision"] != "fp32"]
    variants.sort(key=lambda r: r["precision"] == "fp32")  # the quantized variants first, FP32 last
    tabs = st.tabs([r["label"] for r in variants])
    for tab, r in zip(tabs, variants, strict=True):
        with tab:
            judged = r.get("judgment") or {}
            if judged.get("sentence"):  # the same Judgment the verdict and the recommendation read
                against = "FP32" if r["is_reference"] else reference
                (st.success if judged.get("kept") else st.warning)(plain(f"Against {against}: {judged['sentence']}"))
            metrics = [(t, k, f) for t, k, f in quality_headlines(task, report["model"].get("output_kind"))
                       if r["quality"].get(k) is not None]
            for col, (title, key, fmt) in zip(st.columns(max(1, len(metrics))), metrics, strict=False):
                col.metric(f"{title} vs {'FP32' if r['is_reference'] else reference}", fmt.format(r["quality"][key]))
            for _, key, _ in metrics:
                words = metric_in_words(key, float(r["quality"][key]))
                if words:
                    st.caption(words)
            extra = {k: v for k, v in r["quality"].items() if not isinstance(v, dict)}
            st.caption("All quality numbers: " + ", ".join(f"{k} = {v:.4g}" for k, v in extra.items()))
            if r.get("verdict") == "use_fp32":
                st.warning(plain(r["verdict_note"]))
            elif r.get("verdict_note"):
                st.caption(plain("Verdict: " + r["verdict_note"]))
            for note in r["notes"]:
                st.info(plain(note))
            if task == "other" and isinstance(r["quality"].get("per_output"), dict):
                st.markdown("**Error per output**")
                st.dataframe(pd.DataFrame(r["quality"]["per_output"]).T, width="stretch")
            samples = r["samples"]
            if samples:
                left = "FP32" if r["is_reference"] else reference  # an FP16 reference is itself judged against FP32
                st.markdown(f"**Per input, worst first** (left: {left}, right: {r['label']})")
                frame = pd.DataFrame(samples).drop(columns=["index"], errors="ignore")
                frame = frame.rename(columns={"reference": f"{left} output", "variant": f"{r['label']} output"})
                st.dataframe(frame, width="stretch", hide_index=True)


def generation_view(report: dict) -> None:
    """Causal LMs: what generating costs per variant (prefill once, then decode through the KV cache)."""
    rows = [(r, r["generation"]) for r in report["results"] if r.get("generation")]
    if not rows:
        return
    first = rows[0][1]
    st.subheader("Generation")
    st.caption(
        f"A prompt of {first['prompt_tokens']} tokens is read once (prefill), then {first['decode_tokens']} tokens are "
        f"decoded one at a time through the KV cache, {first['rounds']} rounds, variants interleaved. Decoding reads "
        f"every weight once per token, so smaller weights pay most there. Perplexity is on the "
        f"{plain(first['perplexity_text'])} ({first['perplexity_tokens']} tokens; lower is better). The KV cache is "
        f"measured at {first['kv_cache_context_tokens']} tokens ({first['kv_dtype']}) next to core.sizing's prediction.")
    frame = pd.DataFrame([{
        "Precision": r["label"], "Prefill (ms)": round(g["prefill_ms"], 2),
        "Prefill speed-up": round(g["prefill_speedup_vs_fp32"], 2),
        "Decode (tokens/s)": round(g["decode_tokens_per_s"], 1), "Decode speed-up": round(g["decode_speedup_vs_fp32"], 2),
        "Perplexity": None if g["perplexity"] is None else round(g["perplexity"], 3),
        "Weights (MB)": _mb(g["weights_bytes"]), "KV cache (MB)": _mb(g["kv_cache_bytes"]),
        "KV predicted (MB)": _mb(g["kv_cache_predicted_bytes"]), "Weights + KV (MB)": _mb(g["weights_plus_kv_bytes"]),
    } for r, g in rows])
    st.dataframe(frame, width="stretch", hide_index=True)
    st.markdown(f"**Greedy continuations** of “{plain(first['prompt'])}”")
    st.dataframe(pd.DataFrame([{"Precision": r["label"], "Continuation": g["continuation"]} for r, g in rows]),
                 width="stretch", hide_index=True)


def sizing_check(report: dict) -> None:
    model = report["model"]
    st.markdown(
        f"**{model['parameters']:,} parameters** (counted from {plain(model['parameter_source'])}). "
        "*Ideal bits* is the calculator's headline arithmetic, parameters x bits. *Format model* predicts the stored "
        "file: block scales and zero points, layers kept at 8 bits or in float, and the graph itself. Both are "
        "checked against the file ONNX Runtime actually wrote.")
    rows = []
    for r in report["results"]:
        ideal, predicted, measured = r.get("predicted_ideal_bytes"), r["predicted_size_bytes"], r["size_bytes"]
        rows.append({"Precision": r["label"], "Ideal bits (MB)": _mb(ideal), "Format model (MB)": _mb(predicted),
                     "Measured file (MB)": _mb(measured),
                     "Format model off by": f"{(measured / predicted - 1):+.1%}" if predicted else "-",
                     "Ideal bits off by": f"{(measured / ideal - 1):+.1%}" if ideal else "-"})
    st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True)


def downloads(report: dict, files_dir: Path) -> None:
    cols = st.columns(4)
    index = 0
    for r in report["results"]:
        if r["precision"] == "fp32":
            continue
        path = files_dir / r["file_name"]
        with cols[index % 4]:
            if path.is_file():
                st.download_button(f"{r['precision'].upper()} .onnx, {r['size_bytes'] / MB:.1f} MB", data=lambda p=path: p.read_bytes(),
                                   file_name=r["file_name"], mime="application/octet-stream", on_click="ignore",
                                   key=f"cmp_dl_{r['precision']}", icon=":material/download:")
            else:
                st.caption(f"{r['label']}: the file has expired; press Run again.")
        index += 1
    with cols[index % 4]:
        st.download_button("Report (JSON)", data=json.dumps(report, indent=2), file_name=REPORT_NAME,
                           mime="application/json", on_click="ignore", key="cmp_dl_report", icon=":material/download:")


def show_report(entry: dict, stale: bool) -> None:
    report = entry["report"]
    model, env = report["model"], report["environment"]
    if stale:
        st.warning("These results are for earlier settings, model or inputs; press **Run** to compare with the current ones.")
    latency = report["inputs"]["latency_input"]
    shape = f"batch 1 x {latency['sequence_length']} tokens" if "sequence_length" in latency else "batch 1"
    st.subheader("Results: " + plain(model["name"]))
    st.caption(
        f"Task: {model['task']} | {report['inputs']['count']} inputs ({report['inputs']['source']}) | quality vs "
        f"{report['reference'].upper()} | latency on {shape}, {env['intra_op_num_threads']} threads, onnxruntime "
        f"{env['onnxruntime']} on CPU, variants timed {env['latency_timing']} | sizes in MB (10^6 bytes)")
    for warning in report["warnings"]:
        st.warning(plain(warning))
    recommendation(report)
    for note in model.get("preprocessing") or []:  # what was done to an uploaded .onnx before quantizing it
        st.caption(plain(note))
    st.dataframe(results_frame(report), width="stretch", hide_index=True)
    if timing_caption(report):
        st.caption(timing_caption(report))
    for r in report["results"]:
        reason = slower_than_fp32(ComparisonReport.from_dict(report).result(r["precision"]),
                                  report["model"].get("parameters"))
        if reason:
            st.info(f"**{r['label']} is slower than FP32 ({r['speedup_vs_fp32']:.2f}x).** {reason}")
    method = report["results"][0]["memory_method"]
    st.caption("Peak memory: " + (
        "peak resident memory while loading and running the variant, minus the memory before."
        if method == "peak_rss_delta" else
        "highest resident memory sampled every 5 ms while loading and running the variant, minus the memory "
        "before (the sandbox hides the exact peak, so spikes shorter than 5 ms can be missed)."))
    charts(report)
    generation_view(report)
    st.subheader("Quality on your inputs")
    quality_view(report)
    with st.expander("Calculator prediction vs measured size"):
        sizing_check(report)
    st.subheader("Downloads")
    downloads(report, Path(entry["dir"]))


# ------------------------------------------------------------------------------------------ the page
def settings_panel() -> None:
    st.radio("Model", list(SOURCES), format_func=SOURCES.get, key="cmp_src")
    left, right = st.columns([3, 2])
    with left:
        st.multiselect("Precisions", list(PRECISIONS), format_func=LABELS.get, key="cmp_precisions",
                       help="FP32 is always built: sizes and speed-ups are relative to it.")
    with right:
        st.radio("Quality reference", ["fp16", "fp32"], format_func=str.upper, horizontal=True, key="cmp_ref",
                 help="FP16 is what you would deploy without quantizing; FP32 is the exported original.")
    with st.expander("Quantization options"):
        a, b, c = st.columns(3)
        a.selectbox("INT4 block size", BLOCK_SIZES, key="cmp_bs", help=spec(Int4Config, "block_size").help)
        b.selectbox("INT4 accuracy level", list(ACCURACY_LEVELS), format_func=ACCURACY_LEVELS.get, key="cmp_al",
                     help=spec(Int4Config, "accuracy_level").help)
        c.radio("INT4 algorithm", list(spec(Int4Config, "algorithm").choices), format_func=str.upper, horizontal=True, key="cmp_algo")
        a.checkbox("INT4 symmetric (no zero points)", key="cmp_sym")
        b.checkbox("Quantize embedding tables", key="cmp_emb", help=spec(Int4Config, "quantize_embeddings").help)
        c.checkbox("INT8 per-channel scales", key="cmp_pc", help=spec(Int8DynamicConfig, "per_channel").help)
        a.slider("INT4: layers kept at 8 bits (%)", 0, 100, key="cmp_f8",
                 help=spec(Int4Config, "eight_bit_fraction").help)
        b.checkbox("INT4 calibrated clipping", key="cmp_clip",
                   help=spec(Int4Config, "clip_search").help)
        st.slider("Timed runs per variant", 3, 200, key="cmp_runs")
        st.selectbox("Uploaded ONNX model: what its first output is", OUTPUT_KINDS, key="cmp_out",
                     help=spec(CompareOptions, "output_kind").help)


def main() -> None:
    st.title("Quantize & compare")
    st.markdown("See what FP16, INT8 and INT4 really do to a model **on your own inputs**: size, memory, latency "
                "and outputs, measured with ONNX Runtime on this server's CPU. Run benchmarks, not the headline number.")
    session_registry().sweep_now_and_then()  # folders of tabs closed a while ago go now, whoever is here
    problems = init_state_from_url()
    if problems:
        st.warning("Some settings in the link were not valid and were reset: " + plain(", ".join(problems)))
    settings_panel()
    write_url()
    share_link("Copy link to these settings")

    demo_texts = "\n".join(DEFAULT_TEXTS)
    if st.session_state["cmp_src"] == "upload" and st.session_state.get("cmp_texts") == demo_texts:
        st.session_state["cmp_texts"] = ""  # the demo's sentences are not inputs for someone else's model
    elif st.session_state["cmp_src"] == "demo" and not st.session_state.get("cmp_texts", "").strip():
        st.session_state["cmp_texts"] = demo_texts
    if st.session_state["cmp_src"] == "upload":
        uploaded = st.file_uploader("Model file", type=["onnx", "zip"], key=upload_widget_key(),
                                    max_upload_size=max_upload_mb(),
                                    help=f"A single-file .onnx, or a .zip of a Hugging Face folder (config.json, "
                                         f"safetensors, tokenizer). Up to {max_upload_mb()} MB.")
        from core.compare.common.memory import largest_parameters

        limit = job_limits().memory_bytes
        st.caption(f"This server compares models of up to about {largest_parameters(limit) / 1e6:,.0f}M parameters "
                   f"(its job memory limit is {limit / 2**30:.1f} GiB; the operator sets it with "
                   "QUANTLENS_JOB_MEMORY_GB). A larger upload is refused before any work starts.")
        if uploaded is not None:
            st.session_state.pop("cmp_upload_error", None)
            try:
                with st.spinner("Checking the upload"):
                    keep_upload(uploaded)
            except QuantLensError as exc:  # refused on arrival, not after Run (shown until the next upload)
                st.session_state["cmp_upload_error"] = f"{uploaded.name[:100]} was refused: {exc.one_line()}"
            st.rerun()  # re-render with a fresh, empty uploader
        if st.session_state.get("cmp_upload_error"):
            st.error(plain(st.session_state["cmp_upload_error"]))
        kept = kept_upload()
        if kept:
            st.caption(f"Model: **{plain(kept['name'])}** ({kept['size_bytes'] / MB:.1f} MB), kept on the server "
                       "for this session only. Upload another file to replace it.")
    st.text_area("Inputs: one text per line", key="cmp_texts", height=180,
                 help="Used for text models (the demo and .zip uploads). A .onnx upload gets inputs generated from "
                      "its declared shapes, or an .npz you provide.")
    inputs_file = st.file_uploader("...or an inputs file (.txt, .csv with a `text` column, or .npz of arrays)",
                                   type=["txt", "csv", "npz"], key="cmp_inputs_file", max_upload_size=MAX_INPUTS_UPLOAD_MB)

    media_files = st.file_uploader("...or images / audio for an image or audio model (PNG, JPEG, WAV, or a .zip "
                                   "of them); without any, a small synthetic set is made", type=MEDIA_TYPES,
                                   accept_multiple_files=True, key=media_widget_key(),
                                   max_upload_size=MAX_MEDIA_UPLOAD_MB)
    if media_files:  # spooled to disk on arrival, like the model (never held in memory for the session)
        st.session_state["cmp_media_errors"] = keep_media(media_files)
        st.rerun()
    for problem in st.session_state.get("cmp_media_errors", []):
        st.error(plain(problem))
    media_kept = kept_media()
    if media_kept:
        names = ", ".join(m.label for m in media_kept[:8]) + (", ..." if len(media_kept) > 8 else "")
        st.caption(f"{len(media_kept)} image/audio file(s) kept on the server for this session "
                   f"({sum(m.size_bytes for m in media_kept) / MB:.1f} MB): {plain(names)}")
        if st.button("Remove the images/audio", key="cmp_media_clear", icon=":material/delete:"):
            media_store().clear()
            st.session_state.pop("cmp_media_errors", None)
            st.rerun()
    from pages.uploads import release_unclaimed_uploads

    release_unclaimed_uploads([inputs_file.file_id] if inputs_file is not None else [])  # replayed uploads
    with st.expander("Input options for an uploaded .onnx image or audio model"):
        a, b, c, d = st.columns(4)
        a.text_input("Image size (HxW)", key="cmp_imgsize", placeholder="from the model",
                     help=spec(CompareOptions, "image_size").help)
        b.selectbox("Layout", list(spec(CompareOptions, "image_layout").choices), key="cmp_layout",
                    help=spec(CompareOptions, "image_layout").help)
        c.selectbox("Pixel scaling", list(spec(CompareOptions, "image_scale").choices), key="cmp_scale",
                    help=spec(CompareOptions, "image_scale").help)
        d.number_input("Sample rate (Hz, 0 = model's)", 0, 192000, key="cmp_rate", step=1000,
                       help=spec(CompareOptions, "sample_rate").help)

    autorun = st.session_state.pop("cmp_autorun", False) and st.session_state["cmp_src"] == "demo"
    clicked = st.button("Run", type="primary", icon=":material/play_arrow:")
    try:
        options = options_from_state()
        texts, npz = None, None
        if inputs_file is not None:
            from core.jobs.media_store import check_upload_size

            try:  # on the server too: the widget's 2 MB limit is only the browser's
                check_upload_size(inputs_file.name, inputs_file.size, MAX_INPUTS_UPLOAD_MB * 2**20)
            except QuantLensError:
                release_upload(inputs_file)
                raise
        if inputs_file is not None and inputs_file.name.lower().endswith(".npz"):
            npz = inputs_file.getvalue()
        elif inputs_file is not None:
            texts = texts_from_bytes(inputs_file.getvalue(), inputs_file.name.rsplit(".", 1)[-1].lower())
        elif st.session_state["cmp_src"] == "upload" and not st.session_state["cmp_texts"].strip():
            texts = None  # the model's own inputs: generated from its declared shapes, or the default texts
        else:
            texts = texts_from_string(st.session_state["cmp_texts"])
        kept = kept_upload()
        model_digest = "demo" if st.session_state["cmp_src"] == "demo" else (kept["digest"] if kept else "none")
        media = [(m.label, m.path) for m in media_kept[:MAX_MEDIA_FILES]]
        digest = hashlib.sha256(npz if npz is not None else json.dumps(texts).encode())
        for m in media_kept[:MAX_MEDIA_FILES]:
            digest.update(m.label.encode() + m.sha256.encode())
        inputs_digest = digest.hexdigest()
        key = result_key(model_digest, options, inputs_digest)
    except QuantLensError as exc:
        st.error(plain(exc.one_line()))
        return

    results = st.session_state.setdefault("cmp_results", {})
    if st.session_state.pop("cmp_cancelled", False) and not (clicked or autorun):
        st.info("The job was cancelled. Press **Run** to start again.")
    if clicked or autorun:
        if st.session_state["cmp_src"] == "upload" and kept is None:
            st.error("Upload a model first, or choose the demo." + (
                " Your earlier upload is no longer on the server; upload it again." if "cmp_upload" in st.session_state
                else ""))
        elif media and st.session_state["cmp_src"] == "demo":
            st.error("The demo takes texts; images and audio are for uploaded image or audio classifiers.")
        elif npz is not None and st.session_state["cmp_src"] == "demo":
            st.error("The demo takes texts; an .npz is for uploaded ONNX models.")
        else:
            failure: QuantLensError | None = None
            st.session_state["cmp_running"] = True
            st.button("Cancel", key="cmp_cancel", icon=":material/stop:", on_click=cancel_running_job,
                      help="Stop this job (waiting in line or running); press Run to start again.")
            with st.status("Starting", expanded=False) as status:
                try:
                    if texts == list(DEFAULT_TEXTS):
                        texts = None  # the report then says "default texts"
                    if st.session_state["cmp_src"] == "demo":
                        entry = run_demo(options, texts, key, status)
                    else:
                        entry = run_upload(kept, options, texts, npz, status, media=media)
                    results.clear()  # one upload's files per session (run_upload removed the previous job dir)
                    results[key] = entry
                    st.session_state["cmp_last_key"] = key
                    status.update(label="Done", state="complete")
                except QuantLensError as exc:
                    status.update(label="Failed", state="error")
                    failure = exc
            st.session_state.pop("cmp_running", None)
            if failure is not None:  # outside the (collapsed) status box, where the user is looking
                st.error(plain(failure.one_line()))
    last = st.session_state.get("cmp_last_key")
    if last and last in results:
        show_report(results[last], stale=last != key)
    elif not (clicked or autorun) and st.session_state["cmp_src"] == "demo":
        st.info("The demo model is ready: press **Run**. It takes about half a minute the first time and is then "
                "cached for everyone.")
    elif not (clicked or autorun):
        st.info("Upload a model, add your inputs (or leave them empty to use generated ones) and press **Run**.")


if __name__ == "__main__":
    main()
