"""Quantize one model to each requested precision and compare every variant against a reference.

One verb, `compare_model`, turns (model, options, inputs) into a ComparisonReport: plain data that the CLI
prints, the page draws and the job runner ships back as JSON. `run_comparison_job` is the same call in the
shape the worker process expects (core.jobs runs it in a child with limits).

Order of work, one folder per stage: the user's inputs (inputs/) -> FP32 ONNX and its feeds (prepare/) -> each
precision's file (techniques/) -> each file loaded and run on the same inputs, quality against the reference
(FP16 by default: what you would deploy without quantizing) and the sizing prediction next to the measured size
(measure/) -> one judgment per variant from the task's metric, verdicts and the recommendation (judge/). FP32 is
always built and measured, because sizes and speed-ups are reported relative to it.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.compare.common.memory import release_memory
from core.compare.common.onnx_io import model_file_bytes
from core.compare.common.settings import LABELS, CompareOptions
from core.compare.common.step_clock import StepClock
from core.compare.common.step_process import STEP_MEMORY, memory_use
from core.compare.inputs.feeds import max_positions
from core.compare.isolated_steps import prepare_isolated, quantize_isolated
from core.compare.measure.paired_timing import SELF_KEY, PairedRatio, mark_noise, noise_floor, paired_ratio
from core.compare.measure.quality import continuation_hook, measure_quality
from core.compare.measure.stored_size import parameter_count, predicted_bytes, predicted_stored_bytes
from core.compare.measure.variant_status import (
    STAGE_QUANTIZE,
    STAGE_RUN,
    STATUS_OK,
    STATUS_UNCHANGED,
    VariantFailure,
    check_reference_runs,
    explain_failure,
    reference_run_error,
    unchanged_reason,
)
from core.compare.prepare.model_feeds import build_feeds
from core.compare.report import ComparisonReport, VariantResult, to_json_dict, variant_label, write_report
from core.errors import QuantLensError

Progress = Callable[[str, float | None], None]


INTERLEAVE_MAX_BYTES = 1536 * 2**20  # all variants loaded at once below this, timed turn by turn


def compare_model(source: Path | str, options: CompareOptions | None = None, out_dir: Path | str = "quantlens-out",
                  progress: Progress | None = None, *, inputs: list[str] | dict | None = None,
                  name: str | None = None) -> ComparisonReport:
    """Build every requested precision of `source` under `out_dir` and compare them on `inputs`.

    source: "demo", a validated HF folder, or a validated single-file .onnx. inputs: texts, {"npz": path}, or
    None for defaults (texts for text models, generated arrays otherwise). Writes FILE_NAMES[p] for each
    precision and returns the report (the caller decides whether to write it; see write_report).
    """
    from core.compare.measure import evaluate, generation
    from core.compare.measure.output_kinds import output_quality
    from core.compare.prepare.export import TASK_GENERATION, TASK_OTHER

    options = options or CompareOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda message, fraction: None)
    started = time.perf_counter()
    warnings: list[str] = []

    clock = StepClock()
    STEP_MEMORY.clear()
    say("Preparing the FP32 ONNX model", 0.02)
    with clock.step("prepare"):
        prepared = prepare_isolated(source, out_dir, name)
    preprocessing: list[str] = []
    if prepared.source_kind == "onnx":
        say("Pre-processing the uploaded model for quantization", 0.05)
        from core.compare.prepare.preprocess import preprocess_for_quantization

        with clock.step("preprocess"):
            preprocessing = list(preprocess_for_quantization(prepared.fp32_path).notes)
    with clock.step("inputs"):
        feeds = build_feeds(prepared, inputs, options)
    with clock.step("count_parameters"):
        parameters, parameter_source = parameter_count(prepared.config, prepared.fp32_path)
    if prepared.source_kind == "onnx":
        from core.compare.common.onnx_io import load_model_checked
        from core.compare.prepare.bit_census import already_quantized

        notice = already_quantized(load_model_checked(prepared.fp32_path))
        if notice:
            warnings.append(notice)
    with clock.step("check_fp32"):  # before minutes of quantizing: everything is measured against FP32
        check_reference_runs(prepared.fp32_path, feeds, options.threads)

    built: dict[str, Any] = {}
    failures: dict[str, VariantFailure] = {}
    unchanged: set[str] = set()
    steps = len(options.precisions) * 2
    done = 0
    for precision in options.precisions:
        if precision == "fp32":
            continue
        say(f"Quantizing: {LABELS[precision]}", 0.1 + 0.8 * done / steps)
        release_memory()  # the child starts from this process's pages: hand back what the last step freed
        try:
            with clock.step(f"quantize_{precision}"):
                built[precision], nothing = quantize_isolated(precision, prepared.fp32_path, out_dir, options, feeds)
            if nothing:
                unchanged.add(precision)
        except Exception as exc:  # noqa: BLE001 - one precision failing keeps the others (variant_status)
            failures[precision] = explain_failure(precision, STAGE_QUANTIZE, exc)
            _remove_partial(out_dir, precision)  # never leave an invalid file behind
            release_memory()
        done += 1

    runs: dict[str, evaluate.VariantRun] = {}
    positions = max_positions(prepared.config)
    paths = {p: prepared.fp32_path if p == "fp32" else built[p].path for p in options.precisions if p not in failures}
    interleave = sum(model_file_bytes(p) for p in paths.values()) <= INTERLEAVE_MAX_BYTES
    generating = prepared.task == TASK_GENERATION and "input_ids" in feeds.latency
    gen_plan = generation.make_plan(feeds.latency["input_ids"], options.decode_tokens, options.runs,
                                    positions) if generating else None
    gen_timings: dict[str, generation.GenerationTiming] = {}
    for precision in options.precisions:
        if precision in failures:
            continue
        say(f"Running: {LABELS[precision]}", 0.1 + 0.8 * done / steps)
        after = None
        if prepared.task == TASK_GENERATION and options.max_new_tokens:
            after = continuation_hook(feeds, options.max_new_tokens, prepared.config, positions)
        if generating and not interleave:
            after = generation.timed_hook(after, gen_plan, gen_timings, precision)
        try:
            with clock.step(f"run_{precision}"):
                runs[precision] = evaluate.run_variant(paths[precision], feeds.per_input, feeds.latency,
                                                       runs=options.runs, warmup=options.warmup,
                                                       threads=options.threads, after=after, keep_session=interleave)
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            if precision == "fp32":
                raise reference_run_error(exc, feeds) from None
            failures[precision] = explain_failure(precision, STAGE_RUN, exc)
            release_memory()
        done += 1
    reference_precision = options.reference if options.reference in runs else "fp32"
    if reference_precision != options.reference:
        warnings.append(f"Quality is measured against FP32: the chosen reference {LABELS[options.reference]} could "
                        "not be made.")
    paired: dict[str, PairedRatio] = {}
    floor = None
    if interleave:
        say("Timing all variants turn by turn", 0.9)
        sessions = {p: r.extra.pop("session") for p, r in runs.items()}
        sessions[SELF_KEY] = sessions["fp32"]  # the same file timed against itself: the noise floor
        with clock.step("timing"):
            timed = evaluate.time_interleaved(sessions, feeds.latency, options.runs)
        for precision, times in timed.items():
            if precision in runs:
                evaluate.set_latency(runs[precision], times)
        floor = noise_floor(paired_ratio(timed["fp32"], timed[SELF_KEY]))
        paired = {p: mark_noise(paired_ratio(timed["fp32"], timed[p]), floor) for p in runs}
        if generating:
            say("Timing generation (prefill, then decode through the KV cache)", 0.91)
            with clock.step("generation"):
                gen_timings = generation.time_generation({p: s for p, s in sessions.items() if p != SELF_KEY},
                                                         gen_plan)
        del sessions
    else:
        warnings.append("Variants were timed one after another (too large to hold together); on a busy machine "
                        "their latency ratios are less reliable.")

    say("Comparing outputs", 0.93)
    clock.start("quality")
    reference = runs[reference_precision]
    fp32_run = runs["fp32"]
    output_kind, kind_reason = options.output_kind, "chosen by you"
    if prepared.task == TASK_OTHER and output_kind == "auto":
        from core.compare.measure.output_kinds import guess_output_kind

        try:
            output_kind, why = guess_output_kind(prepared.fp32_path, fp32_run.outputs)
        except Exception as exc:  # noqa: BLE001 - a guess must never cost the comparison: fall back to tensors
            output_kind, why = "tensors", f"no guess ({exc.__class__.__name__}): tensor errors and cosine"
        kind_reason = f"guessed: {why}"
    fp32_bytes = model_file_bytes(prepared.fp32_path)
    results = []
    why_unchanged = unchanged_reason(prepared.fp32_path) if unchanged else ""
    for precision in options.precisions:
        if precision not in runs:
            continue
        run = runs[precision]
        path = paths[precision]
        size = model_file_bytes(path)
        # the reference (FP16 by default) is itself judged against FP32: against itself it would always look perfect
        against = fp32_run if precision == reference_precision else reference
        if prepared.task == TASK_OTHER:
            try:
                quality, samples = output_quality(output_kind, against, run, feeds.labels)
            except (ValueError, IndexError, TypeError) as exc:  # the chosen kind does not fit these outputs
                warnings.append(f"The {output_kind} metric does not fit this model's outputs ({exc.__class__.__name__}); "
                                f"{LABELS[precision]} is compared by tensor errors and cosine instead.")
                quality, samples = output_quality("tensors", against, run, feeds.labels)
        else:
            quality, samples = measure_quality(prepared.task, against, run, feeds, prepared.config)
        q = built.get(precision)
        notes = list(q.notes) if q else []
        if precision == reference_precision and precision != "fp32":
            notes.append(f"{LABELS[precision]} is the reference the other variants are compared with; its own "
                         "quality here is measured against FP32.")
        if precision in unchanged:
            notes.insert(0, f"Unchanged: {LABELS[precision]} converted no weight of this model, so this file is "
                            "FP32's computation; its size and speed are not a gain." + why_unchanged)
        results.append(VariantResult(
            precision=precision, label=variant_label(precision, q.settings if q else {}), file_name=path.name,
            size_bytes=size,
            size_ratio_vs_fp32=fp32_bytes / size if size else 0.0,
            predicted_size_bytes=predicted_stored_bytes(prepared.fp32_path, precision,
                                                        q.settings if q else {}),
            predicted_ideal_bytes=predicted_bytes(parameters, precision),
            load_ms=run.load_ms, peak_memory_bytes=run.peak_memory_bytes, memory_method=run.memory_method,
            latency_ms_p50=run.latency_ms_p50, latency_ms_p95=run.latency_ms_p95,
            # an unchanged file runs FP32's computation: any measured difference is noise, never "faster"
            speedup_vs_fp32=1.0 if precision in unchanged else
            (paired[precision].median if precision in paired else
             fp32_run.latency_ms_p50 / run.latency_ms_p50 if run.latency_ms_p50 else 0.0),
            quantize_seconds=q.seconds if q else prepared.export_seconds,
            is_reference=precision == reference_precision,
            settings=q.settings if q else {}, notes=notes,
            quality=quality, samples=samples,
            generation=generation.stats_for(precision, gen_timings, gen_plan, run, feeds, size, prepared.config)
            if generating and precision in gen_timings else None,
            status=STATUS_UNCHANGED if precision in unchanged else STATUS_OK,
            speedup_paired=paired[precision].to_dict() if precision in paired else None,
        ))
    clock.stop("quality")
    from core.compare.judge.judgment import judged_kind
    from core.compare.judge.verdict import apply_verdicts

    warnings += apply_verdicts(results, judged_kind(prepared.task, output_kind))
    for failure in failures.values():
        warnings.append(f"{failure.label} is not shown: {failure.message} [{failure.code}]")
    if len(feeds.per_input) < 3 and prepared.task == "feature-extraction":
        warnings.append("Fewer than 3 inputs: nearest-neighbour agreement needs at least 3 texts.")
    if feeds.source == "generated":
        warnings.append("Inputs were generated from the model's declared shapes (random values); upload an .npz "
                        "of real inputs for a meaningful quality comparison.")

    import onnxruntime

    seq = feeds.latency["input_ids"].shape[1] if "input_ids" in feeds.latency else None
    report = ComparisonReport(
        model={
            "name": prepared.name, "task": prepared.task, "source": prepared.source_kind,
            "architecture": prepared.architecture, "parameters": parameters, "parameter_source": parameter_source,
            "inputs": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)} for k, v in feeds.per_input[0].items()],
            "outputs": list(reference.output_names), "preprocessing": preprocessing,
            "output_kind": output_kind if prepared.task == TASK_OTHER else "auto",
            "output_kind_reason": kind_reason if prepared.task == TASK_OTHER else "",
        },
        reference=reference_precision,
        inputs={"source": feeds.source, "count": len(feeds.per_input), "items": feeds.labels[:64],
                "latency_input": {"batch": 1, "sequence_length": seq} if seq else {"batch": 1}},
        results=results,
        options=options.to_dict(),
        environment={"latency_timing": "interleaved" if interleave else "sequential", "onnxruntime": onnxruntime.__version__, "execution_provider": "CPUExecutionProvider",
                     "intra_op_num_threads": options.threads, "cpu_count": os.cpu_count(),
                     "machine": platform.machine(), "python": platform.python_version(),
                     "memory_mib": _memory_mib()},
        timings={"export_seconds": prepared.export_seconds, **clock.seconds(),
                 "total_seconds": time.perf_counter() - started},
        warnings=warnings,
        failed=[asdict(f) for f in failures.values()],
        latency_noise_floor=floor,
    )
    say("Done", 1.0)
    return report


def _remove_partial(out_dir: Path, precision: str) -> None:
    """A precision that failed may have written half a file (FP16 on an INT8 model did): remove it."""
    import contextlib

    from core.compare.common.settings import FILE_NAMES

    path = out_dir / FILE_NAMES[precision]
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
        Path(str(path) + ".data").unlink(missing_ok=True)


def _memory_mib() -> dict[str, dict[str, int]]:
    """Resident and address-space peaks of each step's child and of this process (MiB), as measured."""
    steps = [*STEP_MEMORY, ("comparison", memory_use())]
    return {name: {"rss_peak": use.get("VmHWM", 0) >> 20, "address_space_peak": use.get("VmPeak", 0) >> 20}
            for name, use in steps if use}


def run_comparison_job(payload: dict, job_dir: Path, progress: Progress) -> dict:
    """Worker entry point for core.jobs (runs in the child process; payload and result are JSON).

    payload: {"source": "demo" | absolute path of the validated model inside job_dir,
              "options": CompareOptions.to_dict() (or a subset),
              "inputs": [texts] | {"npz": path} | {"files": [image/WAV files, folders or zips]} | None}.
    Writes the variants and report.json under job_dir/out and returns the report as a dict.
    """
    job_dir = Path(job_dir).resolve()
    source = payload.get("source")
    if source != "demo":
        if not isinstance(source, str):
            raise QuantLensError("bad_payload", "The job has no model source.")
        path = Path(source).resolve()
        if not path.is_relative_to(job_dir):
            raise QuantLensError("bad_payload", "The model must be inside the job folder.")
        source = path
    inputs = payload.get("inputs")
    if isinstance(inputs, dict) and "files" in inputs:
        files = [Path(str(f)).resolve() for f in inputs.get("files") or []]
        if not files or not all(f.is_relative_to(job_dir) for f in files):
            raise QuantLensError("bad_payload", "The input files must be inside the job folder.")
        inputs = {"files": files}
    elif isinstance(inputs, dict):
        npz = Path(str(inputs.get("npz", ""))).resolve()
        if not npz.is_relative_to(job_dir):
            raise QuantLensError("bad_payload", "The inputs file must be inside the job folder.")
        inputs = {"npz": npz}
    elif inputs is not None and not isinstance(inputs, list):
        raise QuantLensError("bad_payload", "inputs must be a list of texts, {\"npz\": path} or null.")
    options = CompareOptions.from_dict(payload.get("options") or {})
    out_dir = job_dir / "out"
    report = compare_model(source, options, out_dir, progress, inputs=inputs, name=payload.get("name"))
    write_report(report, out_dir)
    return to_json_dict(report)
