"""`python -m core compare MODEL`: quantize a model with ONNX Runtime and compare the variants.

MODEL is an .onnx file, a Hugging Face folder, a .zip of one, or `demo`. Every model goes through the same
upload gate as the page (core.ingest) before any ML library opens it, and the work runs in a child process
with limits (core.jobs.run_job), as on the page; `--in-process` skips the child, for debugging only.
Progress goes to stderr; stdout holds only the table or the JSON, so `--format json | jq` works.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.errors import QuantLensError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for the technique settings take their defaults, choices and help from core.compare.common.settings."""
    from core.compare.common.settings import (
        DEFAULT_PRECISIONS,
        PRECISIONS,
        CompareOptions,
        Int4Config,
        Int8DynamicConfig,
        default,
        spec,
    )

    def helped(cls, name: str, extra: str = "") -> str:
        return f"{spec(cls, name).help}{extra} (default {default(cls, name)!s:.6})".replace("%", "%%")

    parser.add_argument("model", metavar="MODEL", help="an .onnx file, a Hugging Face folder, a .zip of one, or `demo`")
    parser.add_argument("--precisions", default=",".join(DEFAULT_PRECISIONS),
                        help=f"comma-separated, from {','.join(PRECISIONS)} (fp32 and the reference are always included)")
    parser.add_argument("--reference", default=default(CompareOptions, "reference"),
                        choices=list(spec(CompareOptions, "reference").choices), help=helped(CompareOptions, "reference"))
    parser.add_argument("--inputs", type=Path, metavar="FILE", nargs="+",
                        help=".txt (one text per line), .csv (a `text` column) or .npz (arrays named after the inputs); "
                             "for image/audio classifiers PNG/JPEG/WAV files, or a folder or .zip of them")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write the quantized .onnx files and report.json here")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--runs", type=int, default=default(CompareOptions, "runs"), help=helped(CompareOptions, "runs"))
    parser.add_argument("--threads", type=int, default=default(CompareOptions, "threads"),
                        help=helped(CompareOptions, "threads"))
    parser.add_argument("--seq-len", type=int, default=default(CompareOptions, "latency_seq_len"),
                        help=helped(CompareOptions, "latency_seq_len"))
    parser.add_argument("--decode-tokens", type=int, default=default(CompareOptions, "decode_tokens"),
                        help=helped(CompareOptions, "decode_tokens"))
    parser.add_argument("--int8-per-tensor", action="store_true",
                        help="INT8 dynamic with one scale per tensor instead of per channel. "
                             + spec(Int8DynamicConfig, "per_channel").help)
    parser.add_argument("--int4-block-size", type=int, default=default(Int4Config, "block_size"),
                        help=helped(Int4Config, "block_size"))
    parser.add_argument("--int4-8bit-fraction", type=float, default=default(Int4Config, "eight_bit_fraction"),
                        metavar="F", help=helped(Int4Config, "eight_bit_fraction"))
    parser.add_argument("--int4-clip-search", action=argparse.BooleanOptionalAction,
                        default=default(Int4Config, "clip_search"), help=helped(Int4Config, "clip_search"))
    parser.add_argument("--int4-accuracy-level", type=int, default=default(Int4Config, "accuracy_level"),
                        choices=list(spec(Int4Config, "accuracy_level").choices), metavar="{0-4}",
                        help=helped(Int4Config, "accuracy_level"))
    parser.add_argument("--int4-algorithm", choices=list(spec(Int4Config, "algorithm").choices),
                        default=default(Int4Config, "algorithm"), help=helped(Int4Config, "algorithm"))
    parser.add_argument("--int4-symmetric", action="store_true", help=spec(Int4Config, "symmetric").help)
    parser.add_argument("--quantize-embeddings", action=argparse.BooleanOptionalAction,
                        default=default(Int4Config, "quantize_embeddings"),
                        help="quantize embedding tables too (INT8 and INT4; default on)")
    parser.add_argument("--output-kind", choices=list(spec(CompareOptions, "output_kind").choices),
                        default=default(CompareOptions, "output_kind"), help=spec(CompareOptions, "output_kind").help)
    parser.add_argument("--image-size", default="", metavar="HxW", help=spec(CompareOptions, "image_size").help)
    parser.add_argument("--image-layout", choices=list(spec(CompareOptions, "image_layout").choices), default="auto",
                        help=spec(CompareOptions, "image_layout").help)
    parser.add_argument("--image-scale", choices=list(spec(CompareOptions, "image_scale").choices), default="auto",
                        help=spec(CompareOptions, "image_scale").help)
    parser.add_argument("--sample-rate", type=int, default=0, metavar="HZ", help=spec(CompareOptions, "sample_rate").help)
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--timeout", type=float, default=1800, metavar="S",
                        help="stop the work after S seconds (default 1800)")
    parser.add_argument("--memory-gib", type=float, default=6, metavar="G",
                        help="memory limit of the worker process in GiB (default 6)")
    parser.add_argument("--in-process", action="store_true",
                        help="for debugging only: run in this process, without the worker's limits and isolation")


def build_options(args: argparse.Namespace):
    from core.compare.common.settings import CompareOptions, Int4Config, Int8DynamicConfig, Int8StaticConfig, default

    return CompareOptions(
        precisions=tuple(p for p in args.precisions.split(",") if p.strip()),
        reference=args.reference,
        int8=Int8DynamicConfig(per_channel=not args.int8_per_tensor, quantize_embeddings=args.quantize_embeddings),
        int8_static=Int8StaticConfig(quantize_embeddings=args.quantize_embeddings),
        int4=Int4Config(block_size=args.int4_block_size, accuracy_level=args.int4_accuracy_level,
                        algorithm=args.int4_algorithm, symmetric=args.int4_symmetric,
                        quantize_embeddings=args.quantize_embeddings, eight_bit_fraction=args.int4_8bit_fraction,
                        clip_search=args.int4_clip_search),
        runs=args.runs, threads=args.threads, latency_seq_len=args.seq_len,
        decode_tokens=getattr(args, "decode_tokens", default(CompareOptions, "decode_tokens")),
        output_kind=getattr(args, "output_kind", "auto"),
        image_size=getattr(args, "image_size", ""), image_layout=getattr(args, "image_layout", "auto"),
        image_scale=getattr(args, "image_scale", "auto"), sample_rate=getattr(args, "sample_rate", 0),
    )


def load_inputs(path: Path | list[Path] | None):
    """None (defaults), a list of texts, {"npz": path}, or {"files": [images/WAVs, folders, zips]}."""
    from core.compare.inputs import user_data as inputs
    from core.compare.inputs.media_inputs import AUDIO_SUFFIXES, IMAGE_SUFFIXES

    if path is None:
        return None
    paths = list(path) if isinstance(path, list | tuple) else [path]
    for p in paths:
        if not p.exists():
            raise QuantLensError("file_not_found", f"Inputs file {p} does not exist.")
    media = [p for p in paths if p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES + (".zip",)]
    if media:
        if len(media) != len(paths):
            raise QuantLensError("bad_inputs", "Give either images/WAV files (or folders/zips of them) or one text or "
                                               ".npz file, not both.")
        return {"files": media}
    if len(paths) > 1:
        raise QuantLensError("bad_inputs", "Give one .txt, .csv or .npz inputs file (several files are for images "
                                           "and WAVs).")
    path = paths[0]
    if not path.is_file():
        raise QuantLensError("file_not_found", f"Inputs file {path} does not exist.")
    if path.suffix.lower() == ".npz":
        return {"npz": path}
    return inputs.texts_from_file(path)


@contextlib.contextmanager
def _validated_source(model: str) -> Iterator[str | Path]:
    """Resolve MODEL through the upload gate; a .zip is extracted (validated) into a temporary folder."""
    if model == "demo":
        yield "demo"
        return
    path = Path(model)
    if not path.exists():
        raise QuantLensError("file_not_found", f"Model {model} does not exist.")
    from core.gate import ingest

    if path.is_file():
        with open(path, "rb") as handle:
            head = handle.read(512)
        if ingest.sniff(head) == "zip":
            workdir = Path(tempfile.mkdtemp(prefix="quantlens-cli-"))
            try:
                yield ingest.validate_upload(path, workdir).path
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            return
    yield ingest.validate_model_path(path).path


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Libraries print (Python and C++ alike); keep stdout for our table/JSON only."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


TARGET = "core.compare.pipeline:run_comparison_job"


def prepare_out_dir(out: Path | None) -> Path | None:
    """Create --out (and its parents) up front: a bad folder fails in one line before minutes of work."""
    if out is None:
        return None
    if out.exists() and not out.is_dir():
        raise QuantLensError("bad_output", f"--out {out} is an existing file; give a folder.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QuantLensError("bad_output", f"Cannot create the output folder {out}: {exc.strerror or exc}.") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise QuantLensError("bad_output", f"The output folder {out} is not writable.")
    return out


def _stage_source(model: str, job_dir: Path) -> str:
    """Copy MODEL into the job folder, then validate the copy (the worker only reads inside its job folder)."""
    if model == "demo":
        return "demo"
    path = Path(model)
    if not path.exists():
        raise QuantLensError("file_not_found", f"Model {model} does not exist.")
    # the gate runs in a child with a memory/CPU/time budget: a crafted file cannot make the CLI the bomb
    from core.gate.confined import validate_model_path_confined, validate_upload_confined

    if path.is_dir():
        copy = job_dir / "model"
        try:
            shutil.copytree(path, copy, symlinks=True)
        except (OSError, shutil.Error) as exc:
            raise QuantLensError("file_unreadable", f"Model folder {model} could not be read: {str(exc)[:150]}") from None
        return str(validate_model_path_confined(copy).path)
    spooled = job_dir / "upload.bin"
    try:
        shutil.copyfile(path, spooled)
    except OSError as exc:
        raise QuantLensError("file_unreadable", f"Model {model} could not be read: {exc.strerror or exc}.") from None
    try:
        return str(validate_upload_confined(spooled, job_dir).path)  # .onnx or .zip, told apart by content
    finally:
        spooled.unlink(missing_ok=True)


def _copy_outputs(src: Path, out: Path) -> None:
    for entry in sorted(src.iterdir()):
        if entry.is_file() and not entry.is_symlink():
            try:
                shutil.copyfile(entry, out / entry.name)
            except OSError as exc:
                raise QuantLensError("bad_output", f"Cannot write {entry.name} to {out}: {exc.strerror or exc}.") from None


def run_in_worker(args: argparse.Namespace, options, inputs, progress) -> dict:
    """The comparison in a child process with limits (core.jobs), like the page: the CLI opens untrusted
    models too. Files come back through the job folder and are copied to --out afterwards."""
    from core.jobs.payload import CompareJob
    from core.jobs.runner import JobLimits, job_directory, run_job, sweep_orphaned_job_dirs

    if not (0 < args.timeout <= 86_400) or not (0.5 <= args.memory_gib <= 1024):
        raise QuantLensError("bad_option", "--timeout must be 1 s to 24 h and --memory-gib 0.5 to 1024.")
    limits = JobLimits(timeout_s=args.timeout, memory_bytes=int(args.memory_gib * 2**30), threads=args.threads)
    sweep_orphaned_job_dirs()  # what an earlier, killed run left behind
    with job_directory() as job_dir:
        source = _stage_source(args.model, job_dir)
        from core.compare.common.memory import check_fits, upload_parameters

        check_fits(upload_parameters(source), limits.memory_bytes, f"Model {Path(args.model).name}")
        npz, files = None, None
        if isinstance(inputs, dict) and "files" in inputs:
            files = tuple(_stage_media(inputs["files"], job_dir / "inputs"))
        elif isinstance(inputs, dict):
            npz = job_dir / "inputs.npz"
            shutil.copyfile(inputs["npz"], npz)
        name = None if source == "demo" else Path(args.model).name
        job = CompareJob(source, options.to_dict(), tuple(inputs) if isinstance(inputs, list) else None, npz=npz,
                         files=files, name=name)
        data = run_job(TARGET, job.payload(job_dir), job_dir=job_dir, limits=limits, on_progress=progress)
        if args.out is not None:
            _copy_outputs(job_dir / "out", args.out)
    return data


def _stage_media(paths: list[Path], target: Path) -> list[Path]:
    """Copy the image/WAV/zip inputs (a folder's media files, not its other files) into the job folder."""
    from core.compare.inputs.media_inputs import AUDIO_SUFFIXES, IMAGE_SUFFIXES, MAX_MEDIA_FILES

    target.mkdir(parents=True, exist_ok=True)
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()
                            and p.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES)
        else:
            files.append(path)
    staged = []
    for i, f in enumerate(files[:MAX_MEDIA_FILES]):
        dest = target / f"{i:03d}" / f.name  # one folder per file: names stay the user's, and never collide
        dest.parent.mkdir()
        shutil.copyfile(f, dest)
        staged.append(dest)
    return staged


def run_in_process(args: argparse.Namespace, options, inputs, progress) -> dict:
    from core.compare.pipeline import compare_model, to_json_dict, write_report

    out_dir = args.out
    scratch = None
    if out_dir is None:
        scratch = Path(tempfile.mkdtemp(prefix="quantlens-out-"))
        out_dir = scratch
    try:
        with _validated_source(args.model) as source, _stdout_to_stderr():
            name = None if source == "demo" else Path(args.model).name
            report = compare_model(source, options, out_dir, progress, inputs=inputs, name=name)
            if args.out is not None:
                write_report(report, out_dir)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return to_json_dict(report)


def run(args: argparse.Namespace) -> int:
    options = build_options(args)
    texts_or_npz = load_inputs(args.inputs)
    prepare_out_dir(args.out)
    progress = None if args.quiet else (lambda message, fraction: sys.stderr.write(f"[compare] {message}\n"))
    runner = run_in_process if args.in_process else run_in_worker
    data = runner(args, options, texts_or_npz, progress)
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(format_table(data, args.out) + "\n")
    return 0


def format_generation_table(data: dict) -> list[str]:
    """Causal LMs: prefill, decode through the KV cache, perplexity, memory, and each variant's continuation."""
    rows = [(r["precision"], r["generation"]) for r in data["results"] if r.get("generation")]
    if not rows:
        return []
    first = rows[0][1]
    lines = ["", f"Generation: prompt of {first['prompt_tokens']} tokens, then {first['decode_tokens']} tokens decoded "
                 f"one at a time through the KV cache ({first['rounds']} rounds, variants interleaved); perplexity on "
                 f"the {first['perplexity_text']} ({first['perplexity_tokens']} tokens); KV cache at "
                 f"{first['kv_cache_context_tokens']} tokens, {first['kv_dtype']}, measured (predicted by core.sizing)."]
    header = ["precision", "prefill ms", "x", "decode tok/s", "x", "perplexity", "weights MB", "KV MB", "weights+KV MB"]
    body = []
    for precision, g in rows:
        ppl = "-" if g["perplexity"] is None else f"{g['perplexity']:.3g}"
        kv = _mb(g["kv_cache_bytes"]) + ("" if g["kv_cache_predicted_bytes"] is None
                                         else f" ({_mb(g['kv_cache_predicted_bytes'])})")
        body.append([precision, f"{g['prefill_ms']:.1f}", f"{g['prefill_speedup_vs_fp32']:.2f}x",
                     f"{g['decode_tokens_per_s']:.1f}", f"{g['decode_speedup_vs_fp32']:.2f}x", ppl,
                     _mb(g["weights_bytes"]), kv, _mb(g["weights_plus_kv_bytes"])])
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(header)]
    for row in [header, *body]:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    lines.append(f"Greedy continuations of {first['prompt']!r}:")
    lines.extend(f"  {precision}: {g['continuation']!r}" for precision, g in rows)
    return lines


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.1f}"


def _speedup(r: dict) -> str:
    """Paired median and its 10-90% spread; '~' marks a difference inside the noise floor."""
    paired = r.get("speedup_paired")
    if not paired or not paired.get("rounds") or r["precision"] == "fp32":
        return f"{r['speedup_vs_fp32']:.2f}x"
    mark = "~" if paired.get("within_noise") else ""
    return f"{mark}{paired['median']:.2f}x ({paired['p10']:.2f}-{paired['p90']:.2f})"


def _timing_lines(data: dict) -> list[str]:
    lines = [""]
    floor = data.get("latency_noise_floor")
    if floor is not None:
        lines.append(f"Speed-up = FP32 time / variant time per interleaved round: median (10th-90th percentile). Noise "
                     f"floor: FP32 timed against itself strays up to {floor:.0%} from 1.00x; '~' marks a speed-up "
                     "inside it (no measurable difference).")
    steps = {k[:-len("_seconds")]: v for k, v in (data.get("timings") or {}).items()
             if k.endswith("_seconds") and k not in ("total_seconds", "export_seconds")}
    if steps:
        lines.append("Time per step (s): " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
                     + f"; total {data['timings'].get('total_seconds', 0):.1f}")
    return lines


def _recommendation_lines(data: dict) -> list[str]:
    """The page's recommendation at its default bar (0.99), and the rule it follows, in words."""
    from core.compare.judge.explain import OLIVE_RULE, recommend
    from core.compare.report import ComparisonReport

    try:
        rec = recommend(ComparisonReport.from_dict(data), 0.99)
    except (KeyError, TypeError, ValueError):  # a report too old to carry what the rule reads
        return []
    return [f"recommendation (bar 0.99): {rec.sentence}", "rule: " + OLIVE_RULE.format(words=rec.metric_words)]


def format_table(data: dict, out_dir: Path | None) -> str:
    model, env = data["model"], data["environment"]
    latency = data["inputs"]["latency_input"]
    shape = f"batch 1 x {latency['sequence_length']} tokens" if "sequence_length" in latency else "batch 1"
    lines = [
        f"Model: {model['name']} | task {model['task']} | {model['parameters'] / 1e6:,.1f} M parameters "
        f"({model['parameter_source']}) | quality vs {data['reference'].upper()}",
        f"Inputs: {data['inputs']['count']} ({data['inputs']['source']}) | latency on {shape}, "
        f"{env['intra_op_num_threads']} threads, onnxruntime {env['onnxruntime']} CPU, timed {env['latency_timing']}",
        "Sizes in MB (10^6 bytes); predicted = the file size modelled from the FP32 graph and the stored format "
        "(scales, zero points, layers kept in float); ideal = parameters x bits (the calculator's number).",
        "",
    ]
    if model.get("output_kind_reason"):
        lines[-1:-1] = [f"Quality judged as {model['output_kind']} ({model['output_kind_reason']}); change it with "
                        "--output-kind."]
    from core.compare.report import quality_headlines

    quality_cols = quality_headlines(model["task"], model.get("output_kind"))
    header = ["precision", "size MB", "x smaller", "predicted MB", "ideal MB", "peak mem MB", "load ms", "p50 ms", "p95 ms",
              "speed-up"] + [c[0] for c in quality_cols]
    rows = []
    for r in data["results"]:
        unchanged = r.get("status") == "unchanged"
        row = [r["precision"] + (" (ref)" if r["is_reference"] else ""), _mb(r["size_bytes"]),
               "unchanged" if unchanged else f"{r['size_ratio_vs_fp32']:.2f}", _mb(r["predicted_size_bytes"]),
               _mb(r.get("predicted_ideal_bytes")), _mb(r["peak_memory_bytes"]),
               f"{r['load_ms']:.0f}", f"{r['latency_ms_p50']:.1f}", f"{r['latency_ms_p95']:.1f}",
               "unchanged" if unchanged else _speedup(r)]
        for _, key, fmt in quality_cols:
            value = r["quality"].get(key)
            row.append("-" if value is None else fmt.format(value))
        rows.append(row)
    for f in data.get("failed") or []:
        rows.append([f["precision"], "failed"] + ["-"] * (len(header) - 2))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines.append("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    for row in rows:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    lines.extend(format_generation_table(data))
    notes = [f"{r['precision']}: {note}" for r in data["results"] for note in r["notes"]]
    verdicts = [f"{r['label']}: {r['verdict_note']}" for r in data["results"]
                if r.get("verdict_note") and r["precision"] != "fp32"]
    if verdicts:
        lines.append("")
        lines.extend(f"verdict: {v}" for v in verdicts)
        lines.extend(f"judged: {r['label']}: {r['judgment']['sentence']}" for r in data["results"]
                     if r.get("judgment") and r["precision"] != "fp32")
        lines.extend(_recommendation_lines(data))
    if notes or data["warnings"]:
        lines.append("")
        lines.extend(f"note: {n}" for n in notes + data["warnings"])
    lines.extend(_timing_lines(data))
    if out_dir is not None:
        lines.append("")
        lines.append(f"Files written to {out_dir}: " + ", ".join(r["file_name"] for r in data["results"]) + ", report.json")
    return "\n".join(lines)
