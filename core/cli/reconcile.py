"""`python -m core reconcile LOGFILE`: a runtime's load log beside the engine's prediction, per component.

The log (llama.cpp buffer lines, an Ollama runner log or a vLLM boot log) is read as untrusted text: at most
core.sizing.reconcile.MAX_LOG_BYTES, only numbers on known lines are kept. The model comes from `--model` (catalog),
`--params` or `--config`; the precision from `--precision` (default: the format the log names, as the page reads
it: llama.cpp's `file type`, vLLM's `quantization=`/`dtype=`; else Q4_K_M, bf16 for vLLM).
`--gpu` gives vLLM's card (its total memory predicts the KV pool). JSON shape: README, `python -m core reconcile`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core import sizing
from core.errors import QuantLensError
from core.sizing import catalog
from core.sizing.precisions import get_precision
from core.sizing.reconcile import MAX_LOG_BYTES, choose_precision, parse_log, predicted_components, reconcile
from core.units import GB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", metavar="LOGFILE", help="a llama.cpp / Ollama / vLLM start-up log ('-' = stdin)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="NAME", help="catalog model id or name")
    source.add_argument("--params", metavar="N", help="parameter count (weights only)")
    source.add_argument("--config", metavar="FILE", help="a Hugging Face config.json (parsed as JSON only)")
    parser.add_argument("--precision", default=None, metavar="NAME",
                        help="the format the log loaded (default: the one the log names, else Q4_K_M; bf16 for vLLM)")
    parser.add_argument("--kv-precision", default=None,
                        help="KV cache precision the log used (default: the type the log names, else fp16)")
    parser.add_argument("--gpu", metavar="ID", help="vLLM: the card (its total memory predicts the KV pool)")
    parser.add_argument("--tensor-parallel", type=int, default=1, metavar="N", help="vLLM: -tp (default 1)")
    parser.add_argument("--max-num-batched-tokens", type=int, default=None, metavar="N",
                        help="vLLM: tokens its profiling run used (V1 default 2048/8192 by card size; V0 without "
                             "chunked prefill: max_model_len)")
    parser.add_argument("--format", default="table", choices=("table", "json"))


def _read(path: str) -> bytes:
    if path == "-":
        data = sys.stdin.buffer.read(MAX_LOG_BYTES + 1)
    else:
        p = Path(path)
        try:
            if not p.is_file():
                raise QuantLensError("log_not_found", f"No log file at {path[:200]}.")
            if p.stat().st_size > MAX_LOG_BYTES:
                raise QuantLensError("log_too_large", f"{path[:200]} is larger than {MAX_LOG_BYTES // 2**20} MiB.")
            data = p.read_bytes()
        except OSError as exc:
            raise QuantLensError("log_not_found", f"Cannot read {path[:200]}: {exc.strerror}.") from None
    return data


def build(args: argparse.Namespace) -> dict[str, Any]:
    data = _read(args.log)
    parsed = parse_log(data)
    if args.model is not None:
        model = sizing.model_from_catalog(args.model)
    elif args.params is not None:
        model = sizing.model_from_params(args.params)
    else:
        from core.cli.size import _load_config

        model = sizing.model_from_config(_load_config(args.config), name=Path(args.config).name)
    choice = choose_precision(parsed)  # the page reads the log the same way
    precision = args.precision or choice.name
    source = "flag" if args.precision else "log" if choice.from_log else "default"
    total = catalog.find_hardware(args.gpu).memory_bytes if args.gpu else None
    kv = args.kv_precision or parsed.kv_precision or "fp16"  # llama.cpp prints `K (q8_0):`, as the page reads it
    predicted = predicted_components(model, precision, parsed, kv, total, args.tensor_parallel,
                                     args.max_num_batched_tokens)
    rows = reconcile(parsed, predicted)
    return {
        "runtime": parsed.runtime, "model": model.name, "precision": get_precision(precision).name,
        "precision_source": source, "kv_precision": kv,
        "facts": dict(parsed.facts), "link_value": parsed.to_link(),
        "components": [{"component": r.component, "unit": r.unit, "predicted": r.predicted_bytes,
                        "measured": r.measured_bytes, "gap": r.gap_bytes,
                        "gap_percent": None if r.gap_percent is None else round(r.gap_percent, 2),
                        "note": r.note} for r in rows],
    }


def run(args: argparse.Namespace) -> int:
    report = build(args)
    if args.format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    why = {"log": "named by the log", "flag": "--precision",
           "default": "the log names no format: the default; pass --precision"}[report["precision_source"]]
    out = [f"{report['model']} at {report['precision']} ({why}), KV cache {report['kv_precision']}, "
           f"{report['runtime']} log"]
    for c in report["components"]:
        def show(v: int | None, unit: str = c["unit"]) -> str:
            return "—" if v is None else (f"{v:,} tokens" if unit == "tokens" else f"{v / GB:.3f} GB")
        gap = "" if c["gap_percent"] is None else f" ({c['gap_percent']:+.1f}%)"
        out.append(f"  {c['component']}: predicted {show(c['predicted'])}, measured {show(c['measured'])}{gap}")
    out.append("GB = 10^9 bytes.")
    sys.stdout.write("\n".join(out) + "\n")
    return 0
