"""`python -m core compare MODEL`: quantize a model with ONNX Runtime and compare the variants.

MODEL is an .onnx file, a Hugging Face folder, a .zip of one, or `demo`. Every model goes through the same
upload gate as the page (core.ingest) before any ML library opens it. Progress goes to stderr; stdout holds
only the table or the JSON, so `--format json | jq` works.
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
    from core.compare import PRECISIONS

    parser.add_argument("model", metavar="MODEL", help="an .onnx file, a Hugging Face folder, a .zip of one, or `demo`")
    parser.add_argument("--precisions", default="fp32,fp16,int8,int4",
                        help=f"comma-separated, from {','.join(PRECISIONS)} (fp32 and the reference are always included)")
    parser.add_argument("--reference", default="fp16", choices=["fp16", "fp32"], help="quality is measured against this")
    parser.add_argument("--inputs", type=Path, metavar="FILE",
                        help=".txt (one text per line), .csv (a `text` column) or .npz (arrays named after the inputs)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write the quantized .onnx files and report.json here")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per variant (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens in the latency input (default 128)")
    parser.add_argument("--int8-per-tensor", action="store_true", help="INT8 dynamic with one scale per tensor")
    parser.add_argument("--int4-block-size", type=int, default=128, help="INT4 weights per scale (power of two >= 16)")
    parser.add_argument("--int4-8bit-fraction", type=float, default=1 / 3, metavar="F",
                        help="share of MatMul layers, most damaged by 4 bits, kept at 8 bits (default 0.33; 0 = all 4-bit)")
    parser.add_argument("--int4-clip-search", action=argparse.BooleanOptionalAction, default=True,
                        help="calibrated per-block clipping ranges for INT4 (default on)")
    parser.add_argument("--int4-accuracy-level", type=int, default=4, choices=range(5), metavar="{0-4}",
                        help="MatMulNBits compute type: 4 = int8 (fastest on CPU), 0 = default")
    parser.add_argument("--int4-algorithm", choices=["rtn", "hqq"], default="rtn")
    parser.add_argument("--int4-symmetric", action="store_true", help="INT4 without zero points")
    parser.add_argument("--quantize-embeddings", action=argparse.BooleanOptionalAction, default=True,
                        help="quantize embedding tables too (INT8 and INT4; default on)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def build_options(args: argparse.Namespace):
    from core.compare import CompareOptions
    from core.quantize import Int4Config, Int8DynamicConfig, Int8StaticConfig

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
    )


def load_inputs(path: Path | None):
    """None (defaults), a list of texts, or {"npz": path}."""
    from core import inputs

    if path is None:
        return None
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
    from core import ingest

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


def run(args: argparse.Namespace) -> int:
    from core.compare import compare_model, to_json_dict, write_report

    options = build_options(args)
    texts_or_npz = load_inputs(args.inputs)
    progress = None if args.quiet else (lambda message, fraction: sys.stderr.write(f"[compare] {message}\n"))
    out_dir = args.out
    scratch = None
    if out_dir is None:
        scratch = Path(tempfile.mkdtemp(prefix="quantlens-out-"))
        out_dir = scratch
    try:
        with _validated_source(args.model) as source, _stdout_to_stderr():
            name = None if source == "demo" else Path(args.model).name
            report = compare_model(source, options, out_dir, progress, inputs=texts_or_npz, name=name)
            if args.out is not None:
                write_report(report, out_dir)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    data = to_json_dict(report)
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(format_table(data, args.out) + "\n")
    return 0


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.1f}"


def format_table(data: dict, out_dir: Path | None) -> str:
    model, env = data["model"], data["environment"]
    latency = data["inputs"]["latency_input"]
    shape = f"batch 1 x {latency['sequence_length']} tokens" if "sequence_length" in latency else "batch 1"
    lines = [
        f"Model: {model['name']} | task {model['task']} | {model['parameters'] / 1e6:,.1f} M parameters "
        f"({model['parameter_source']}) | quality vs {data['reference'].upper()}",
        f"Inputs: {data['inputs']['count']} ({data['inputs']['source']}) | latency on {shape}, "
        f"{env['intra_op_num_threads']} threads, onnxruntime {env['onnxruntime']} CPU, timed {env['latency_timing']}",
        "Sizes in MB (10^6 bytes); predicted = parameters x bits (the calculator's number).",
        "",
    ]
    from core.compare import quality_headlines

    quality_cols = quality_headlines(model["task"])
    header = ["precision", "size MB", "x smaller", "predicted MB", "peak mem MB", "load ms", "p50 ms", "p95 ms",
              "speed-up"] + [c[0] for c in quality_cols]
    rows = []
    for r in data["results"]:
        row = [r["precision"] + (" (ref)" if r["is_reference"] else ""), _mb(r["size_bytes"]),
               f"{r['size_ratio_vs_fp32']:.2f}", _mb(r["predicted_size_bytes"]), _mb(r["peak_memory_bytes"]),
               f"{r['load_ms']:.0f}", f"{r['latency_ms_p50']:.1f}", f"{r['latency_ms_p95']:.1f}",
               f"{r['speedup_vs_fp32']:.2f}x"]
        for _, key, fmt in quality_cols:
            value = r["quality"].get(key)
            row.append("-" if value is None else fmt.format(value))
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines.append("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    for row in rows:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    notes = [f"{r['precision']}: {note}" for r in data["results"] for note in r["notes"]]
    if notes or data["warnings"]:
        lines.append("")
        lines.extend(f"note: {n}" for n in notes + data["warnings"])
    if out_dir is not None:
        lines.append("")
        lines.append(f"Files written to {out_dir}: " + ", ".join(r["file_name"] for r in data["results"]) + ", report.json")
    return "\n".join(lines)
