"""`python -m core size`: memory a model needs at each precision, as a table, JSON or CSV.

Exactly one model source: `--params 7B`, `--model "Llama 3.1 8B"` (catalog id or name),
`--config path/to/config.json` (read as JSON only, never executed) or `--hf org/name` (a Hugging Face id or
huggingface.co link, with `--revision` / `--file`; metadata only, see core/sizing/hub.py). With `--hf` the JSON
gains a `hub` block (commit, files, parameters per stored dtype, predicted-vs-published checks, link). All byte counts in JSON/CSV are
integers; the table shows GB (10^9 bytes) and GiB (2^30 bytes), labelled.

The JSON shape is written once, in README.md (section `python -m core size`); more keys may be added, none
removed. tests/core/test_sizing_cli.py checks that every key this command prints is documented there.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from core import sizing
from core.errors import QuantLensError
from core.sizing import catalog
from core.sizing.architecture import MAX_CONFIG_BYTES
from core.sizing.kv_cache import KV_PRECISIONS
from core.sizing.overhead import RUNTIMES
from core.sizing.parsing import parse_context
from core.sizing.precisions import DEFAULT_NAMES, Precision, parse_precision_list
from core.units import GB, GIB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--params", metavar="N", help="parameter count: 7B, 1.5e9, 350M, 1,000,000")
    source.add_argument("--model", metavar="NAME", help="catalog model id or name, e.g. meta-llama/Llama-3.1-8B")
    source.add_argument("--config", metavar="FILE", help="a Hugging Face config.json (parsed as JSON only)")
    source.add_argument("--hf", metavar="ID", help="a Hugging Face model id or huggingface.co link (metadata only, "
                                                   "never the weights); HF_ENDPOINT picks a mirror")
    parser.add_argument("--revision", metavar="REV", help="with --hf: branch, tag or commit (default: main)")
    parser.add_argument("--file", metavar="NAME", help="with --hf: one .gguf (or .safetensors) file of the repo")
    parser.add_argument("--token-prompt", action="store_true",
                        help="with --hf: ask for a read token for a gated or private repo (else HF_TOKEN is used); "
                             "it is never written anywhere")
    parser.add_argument("--precision", default=None, metavar="LIST",
                        help="comma-separated precisions (fp16,int8,int4,Q4_K_M,AWQ-INT4,NF4,...), or all / ideal / real "
                             f"(default {','.join(DEFAULT_NAMES)}; with --hf the repo's own format first)")
    parser.add_argument("--context", type=_context, default=0, metavar="N",
                        help="context length in tokens: 8192, 32k, 128k (k = 1024), 1e5 (0 = weights only)")
    parser.add_argument("--batch", type=int, default=1, metavar="N", help="concurrent sequences (default 1)")
    parser.add_argument("--kv-precision", default="fp16", choices=sorted(KV_PRECISIONS), help="KV cache precision")
    parser.add_argument("--runtime", default="llama.cpp", choices=sorted(RUNTIMES),
                        help="runtime whose KV cache rule and overhead are used (default llama.cpp)")
    parser.add_argument("--imatrix", action="store_true",
                        help="size GGUF types as made with an importance matrix, as most published GGUFs are "
                             "(bartowski, unsloth); without it, only the types that require one assume it")
    parser.add_argument("--gpu", action="append", default=[], metavar="ID",
                        help="catalog hardware id or name to check the fit on (repeatable)")
    parser.add_argument("--cards", type=int, default=1, metavar="N",
                        help="cards of each --gpu you have (verdicts, tensor parallel size, offload plans; default 1)")
    parser.add_argument("--mixed", metavar="IDS", default=None,
                        help="different cards used together in one machine, catalog ids joined by +, e.g. "
                             "rtx-4090+rtx-3060-12gb (each card within its own memory)")
    parser.add_argument("--format", default="table", choices=("table", "json", "csv"), help="output format")


def _context(text: str) -> int:
    """argparse type: `128k`, `32K`, `1e5` -> tokens; a bad value is a usage error naming what was typed."""
    try:
        return parse_context(text)
    except QuantLensError as exc:
        raise argparse.ArgumentTypeError(exc.one_line()) from None


VALUE_OPTIONS = ("--params", "--context", "--batch")


def prepare_argv(argv: list[str]) -> list[str]:
    """`--params -7B` reaches the validator as `--params=-7B`: argparse would otherwise read `-7B` as an option
    and say only "expected one argument", instead of what is wrong with the value."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in VALUE_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-") and argv[i + 1] != "--" \
                and not argv[i + 1].startswith("--"):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def _load_config(path_text: str) -> dict[str, Any]:
    path = Path(path_text)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise QuantLensError("config_not_found", f"{path_text} is not a file.")
        if size > MAX_CONFIG_BYTES:
            raise QuantLensError("config_too_large", f"{path_text} is larger than {MAX_CONFIG_BYTES // 1000} kB.")
        data = path.read_bytes()
    except FileNotFoundError:
        raise QuantLensError("config_not_found", f"No config file at {path_text}.") from None
    except OSError as exc:
        raise QuantLensError("config_not_found", f"Cannot read {path_text}: {exc.strerror}.") from None
    from core.sizing.architecture import parse_config_json

    return parse_config_json(data)


def _hub_model(args: argparse.Namespace) -> Any:
    """The Hub lookup; a token comes from a hidden prompt or HF_TOKEN, never from the command line."""
    from core.sizing.hub_quant import lookup  # org/repo:Q4_K_M -> that GGUF file

    token = None
    if args.token_prompt:
        import getpass

        token = getpass.getpass("Hugging Face read token (not echoed, not stored): ").strip() or None
    return lookup(args.hf, revision=args.revision, filename=args.file, token=token)


def hub_section(found: Any) -> dict[str, Any]:
    """The `hub` block of the JSON report: what the repo holds and the predicted-vs-published checks."""
    return {
        "repo": found.ref.repo_id, "revision": found.ref.revision, "file": found.ref.filename, "commit": found.commit,
        "kind": found.kind, "stored_precision": found.stored_precision,
        "stored_weights_bytes": found.stored_weights_bytes, "parameters_by_dtype": dict(found.parameters_by_dtype),
        "files": [{"name": n, "size_bytes": b} for n, b in found.weight_files],
        "gguf_files": [{"name": f.name, "parts": list(f.parts), "size_bytes": f.size_bytes, "quant": f.quant}
                       for f in found.gguf_files],
        "gguf_file": found.gguf_file, "gguf_types_bytes": dict(found.gguf_types),
        "checks": [{"label": c.label, "predicted_bytes": c.predicted_bytes, "published_bytes": c.published_bytes,
                    "error_percent": round(c.error_percent, 3)} for c in found.checks],
        "notes": list(found.notes), "requests": found.requests,
        "link": "/calculator?" + "&".join(f"{k}={v}" for k, v in found.link_params.items()),
    }


def _model(args: argparse.Namespace) -> sizing.ModelSpec:
    if args.params is not None:
        return sizing.model_from_params(args.params)
    if args.model is not None:
        return sizing.model_from_catalog(args.model)
    return sizing.model_from_config(_load_config(args.config), name=Path(args.config).name)


def build_report(
    model: sizing.ModelSpec,
    precisions: tuple[Precision, ...],
    context: int,
    batch: int,
    kv_precision: str,
    runtime: str,
    hardware: tuple[Any, ...] = (),
    imatrix: bool | None = None,
    cards: int = 1,
    repo: str | None = None,
    gguf_file: str | None = None,
) -> dict[str, Any]:
    """The JSON document `--format json` prints (see the module docstring for its shape)."""
    from core.sizing.verdict import MAX_CARDS, answer

    if not 1 <= cards <= MAX_CARDS:
        raise QuantLensError("invalid_number", f"--cards must be between 1 and {MAX_CARDS}, got {cards}.")
    estimates = sizing.estimate_all(model, precisions, context, batch, kv_precision, runtime, imatrix)
    answered = answer((model,), (estimates,), hardware, cards, kv_precision, runtime, imatrix)[0] if hardware else None
    notes: list[str] = []
    rows = []
    for p, e in zip(precisions, estimates, strict=True):
        for n in e.notes:
            if n not in notes:
                notes.append(n)
        row: dict[str, Any] = {
            "precision": e.precision, "label": e.precision_label, "family": e.precision_family,
            "weights_bytes": e.weights_bytes, "kv_cache_bytes": e.kv_cache_bytes, "state_bytes": e.state_bytes,
            "overhead_bytes": e.overhead_bytes, "overhead_min_bytes": e.overhead_min_bytes, "overhead_max_bytes": e.overhead_max_bytes,
            "total_bytes": e.total_bytes, "total_min_bytes": e.total_min_bytes, "total_max_bytes": e.total_max_bytes,
            "kv_cache_known": e.kv_cache_known, "kv_cache_rule": e.kv_cache_rule or None,
            "gguf_imatrix": e.gguf_imatrix, "ppl_delta": p.ppl_delta, "ppl_source": p.ppl_source,
        }
        if hardware:
            row["hardware"] = []
            for hw in hardware:
                cell = answered.cells[(hw.id, e.precision)]
                f = cell.fit  # under the runtime's rules: its budget (vLLM 90%) and its way of splitting
                row["hardware"].append({
                    "id": hw.id, "name": hw.name, "usable_bytes": f.usable_bytes, "fits": f.fits,
                    "status": cell.status, "load_refusal": cell.reason or None, "cards_used": cell.cards_used,
                    "max_context": cell.max_context,
                    "headroom_bytes": f.headroom_bytes, "gpus_tensor_parallel": f.gpus_tensor_parallel,
                    "gpus_pooled": f.gpus_pooled,
                    # a bare parameter count has no KV estimate: the verdict then covers weights + overhead only
                    "kv_cache_counted": e.kv_cache_known or context == 0,
                    "decode_tokens_per_s_ceiling": round(sizing.decode_speed(e, hw).tokens_per_s_per_sequence, 2),
                })
        rows.append(row)
    notes += [n for n in sizing.myth_notes(model, hardware, precisions) if n not in notes]
    from core.sizing.runtimes import rules_summary

    verdicts = [_verdict_json(model, v, answered, hardware, estimates, kv_precision, repo, gguf_file)
                for v in answered.verdicts] if answered is not None else []
    return {
        "model": {
            "name": model.name, "parameters": model.parameters, "active_parameters": model.active_parameters,
            "parameters_without_embeddings": model.parameters_without_embeddings,
            "active_parameters_without_embeddings": model.active_parameters_without_embeddings,
            "source": model.source, "catalog_id": model.catalog_id,
            "architecture_known": sizing.architecture_known(model), "warnings": list(model.warnings),
            "architecture": {k: v for k, v in sizing.model_summary(model).items()
                             if k not in ("name", "parameters", "active_parameters", "parameters_without_embeddings",
                                          "active_parameters_without_embeddings")},
        },
        "settings": {"context": context, "batch": batch, "kv_precision": kv_precision, "runtime": runtime,
                     "imatrix": bool(imatrix), "cards": cards},
        "runtime_rules": rules_summary(runtime),
        "estimates": rows,
        "verdicts": verdicts,
        "notes": notes,
    }


def _verdict_json(model: Any, v: Any, answered: Any, hardware: tuple[Any, ...], estimates: Any, kv_precision: str,
                  repo: str | None, gguf_file: str | None) -> dict[str, Any]:
    """One verdict with what realises it: the offload plan, the launch commands, vLLM's predicted boot lines."""
    from core.sizing.launch import plan_for_verdict
    from core.sizing.serving import capacity_sentence, vllm_capacity

    gguf_repo = repo if gguf_file else None  # a checkpoint repo is no `-hf` source for llama.cpp
    plan = plan_for_verdict(v, answered.cells, kv_precision, gguf_repo if v.runtime == "llama.cpp" else repo,
                            gguf_file if v.runtime == "llama.cpp" else None)
    o = v.offload
    vllm = None
    hw = next(h for h in hardware if h.id == v.hardware_id)
    if v.runtime == "vllm" and v.best_precision and model.architecture is not None and v.context \
            and not model.architecture.is_encoder and hw.kind == "gpu":
        cell = answered.cells[(hw.id, v.best_precision)]
        cap = vllm_capacity(model.architecture, sizing.weights_bytes(model, v.best_precision), hw.memory_bytes,
                            v.context, v.batch, cell.cards_used,
                            kv_precision=kv_precision if kv_precision in ("fp16", "bf16", "fp8", "fp32") else "fp16")
        vllm = {"gpu_kv_cache_tokens": cap.gpu_kv_cache_tokens, "max_concurrency": round(cap.max_concurrency, 2),
                "tensor_parallel": cap.tensor_parallel, "starts": cap.starts,
                "concurrent_requests": cap.concurrent_requests, "log_lines": list(cap.log_lines()),
                "sentence": capacity_sentence(cap)}
    return {
        "hardware_id": v.hardware_id, "cards": v.cards, "fits": v.fits, "sentence": v.sentence,
        "precision": v.best_precision, "fallback_precision": v.fallback_precision, "cards_needed": v.cards_needed,
        "offload": None if o is None else {
            "precision": v.offload_precision, "kind": o.kind, "n_gpu_layers": o.n_gpu_layers, "n_cpu_moe": o.n_cpu_moe,
            "gpu_bytes": o.gpu_bytes, "ram_bytes": o.ram_bytes, "tokens_per_s": round(o.tokens_per_s, 2),
            "tensor_split": list(o.tensor_split), "flags": o.flags},
        "launch": plan.to_dict() if plan is not None else None,
        "vllm": vllm,
    }


def _table(report: dict[str, Any]) -> str:
    m = report["model"]
    s = report["settings"]
    head = (f"{m['name']}: {m['parameters']:,} parameters"
            + (f" ({m['active_parameters']:,} active per token)" if m["active_parameters"] != m["parameters"] else "")
            + f"; context {s['context']:,} x batch {s['batch']}, KV {s['kv_precision']}, runtime {s['runtime']}")
    cols = ["Precision", "Weights GB", "KV cache GB", "Overhead GB (range)", "Total GB", "Total GiB"]
    has_hw = any("hardware" in r for r in report["estimates"])
    if has_hw:
        cols.append("Fits")
    lines = []
    for r in report["estimates"]:
        label = r["label"]
        if r["gguf_imatrix"] is not None:
            label += " (imatrix)" if r["gguf_imatrix"] else " (no imatrix)"
        cells = [
            label, f"{r['weights_bytes'] / GB:.2f}",
            f"{r['kv_cache_bytes'] / GB:.2f}" if r["kv_cache_known"] else "n/a",
            f"{r['overhead_bytes'] / GB:.2f} ({r['overhead_min_bytes'] / GB:.2f}-{r['overhead_max_bytes'] / GB:.2f})",
            f"{r['total_bytes'] / GB:.2f}", f"{r['total_bytes'] / GIB:.2f}",
        ]
        if has_hw:
            cells.append(", ".join(
                f"{h['id']}: {'yes' if h['fits'] else 'no'}" + ("" if h["fits"] else f" (TP {h['gpus_tensor_parallel'] or '>64'})")
                + ("" if h["kv_cache_counted"] else " (KV cache not counted)")
                for h in r["hardware"]))
        lines.append(cells)
    widths = [max(len(c), *(len(row[i]) for row in lines)) for i, c in enumerate(cols)]
    out = [head, "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    for row in lines:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    out.append("GB = 10^9 bytes, GiB = 2^30 bytes. Overhead is an estimate (min-max range).")
    rules = [r["kv_cache_rule"] for r in report["estimates"] if r.get("kv_cache_rule")]
    if rules:
        out.append(f"KV cache: {rules[0]}")
    state = max((r.get("state_bytes", 0) for r in report["estimates"]), default=0)
    if state:
        out.append(f"Recurrent state (SSM/conv layers, constant per sequence, in the totals): {state / GB:.3f} GB")
    parts = (report["model"].get("architecture") or {}).get("parts") or {}
    if len(parts) > 1:
        out.append("Parts: " + ", ".join(f"{k} {v:,}" for k, v in parts.items()) + " parameters")
    out += [f"note: {n}" for n in report["model"]["warnings"] + report["notes"]]
    for v in report.get("verdicts", []):
        out.append(v["sentence"])
        for c in (v["launch"] or {}).get("commands", []):
            out.append(f"  {c['label']}: {c['command']}")
        if v["vllm"]:
            out += [f"  predicted: {line}" for line in v["vllm"]["log_lines"]]
    return "\n".join(out) + "\n"


CSV_COLUMNS = ("model", "precision", "weights_bytes", "kv_cache_bytes", "overhead_bytes", "overhead_min_bytes",
               "overhead_max_bytes", "total_bytes", "total_min_bytes", "total_max_bytes", "total_gb", "total_gib")


def _csv(report: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in report["estimates"]:
        w.writerow([report["model"]["name"], r["precision"], *(r[c] for c in CSV_COLUMNS[2:10]),
                    f"{r['total_bytes'] / GB:.3f}", f"{r['total_bytes'] / GIB:.3f}"])
    return buf.getvalue()


def _hub_table(hub: dict[str, Any]) -> str:
    out = [f"Hugging Face: {hub['repo']} at commit {hub['commit'][:12]}"
           + (f", file {hub['gguf_file']}" if hub["gguf_file"] else "")
           + (f"; stored as {hub['stored_precision']}" if hub["stored_precision"] else "")]
    if hub["parameters_by_dtype"]:
        out.append("parameters per stored dtype (safetensors headers): "
                   + ", ".join(f"{k} {v:,}" for k, v in hub["parameters_by_dtype"].items()))
    for f in hub["gguf_files"]:
        parts = f" ({len(f['parts'])} parts)" if len(f["parts"]) > 1 else ""
        out.append(f"  {f['name']}{parts}: {f['size_bytes'] / GB:.2f} GB")
    for c in hub["checks"]:
        out.append(f"check: {c['label']}: predicted {c['predicted_bytes'] / GB:.3f} GB, published "
                   f"{c['published_bytes'] / GB:.3f} GB ({c['error_percent']:+.2f}%)")
    out += [f"note: {n}" for n in hub["notes"]]
    out.append(f"link: {hub['link']}")
    return "\n".join(out) + "\n"


def together_section(model: sizing.ModelSpec, precisions: tuple[Precision, ...], args: argparse.Namespace,
                     report: dict[str, Any]) -> dict[str, Any]:
    """`--mixed`: the model on different cards used together (core.sizing.card_set), under the report's runtime."""
    from core.sizing.card_set import card_set_verdict, parse_card_set

    cards = parse_card_set(args.mixed, {h.id: h for h in catalog.load_hardware()})
    s = report["settings"]
    ests = sizing.estimate_all(model, precisions, s["context"], s["batch"], s["kv_precision"], s["runtime"],
                               True if args.imatrix else None)
    v = card_set_verdict(model, ests, cards, s["runtime"])
    return {"hardware_ids": list(v.hardware_ids), "fits": v.fits, "precision": v.precision,
            "tensor_split": list(v.tensor_split), "flags": v.flags, "offload_precision": v.offload_precision,
            "ram_bytes": v.offload.ram_bytes if v.offload else None, "sentence": v.sentence}


def run(args: argparse.Namespace) -> int:
    if args.hf is None and (args.revision or args.file or args.token_prompt):
        raise QuantLensError("usage", "--revision, --file and --token-prompt go with --hf.")
    from core.sizing.runtimes import kv_refusal

    if why := kv_refusal(args.runtime, args.kv_precision):  # q4_0 under vLLM would size a cache it never makes
        raise QuantLensError("kv_precision_unsupported", why)
    found = _hub_model(args) if args.hf is not None else None
    model = found.spec if found is not None else _model(args)
    names = args.precision
    if names is None:
        default = list(DEFAULT_NAMES)
        if found is not None and found.stored_precision:
            default = [found.stored_precision] + [n for n in default if n.lower() != found.stored_precision.lower()]
        names = ",".join(default)
    precisions = parse_precision_list(names)
    hardware = tuple(catalog.find_hardware(h) for h in args.gpu)
    report = build_report(model, precisions, args.context, args.batch, args.kv_precision, args.runtime, hardware,
                          imatrix=True if args.imatrix else None, cards=args.cards,
                          repo=found.ref.repo_id if found is not None else model.catalog_id,
                          gguf_file=found.gguf_file if found is not None else None)
    if args.mixed is not None:
        report["together"] = together_section(model, precisions, args, report)
    if found is not None:
        report["hub"] = hub_section(found)
    if args.format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    elif args.format == "csv":
        sys.stdout.write(_csv(report))
    else:
        sys.stdout.write(_table(report))
        if "together" in report:
            t = report["together"]
            sys.stdout.write(t["sentence"] + (f"\n  flags: {t['flags']}" if t["flags"] else "") + "\n")
        if found is not None:
            sys.stdout.write(_hub_table(report["hub"]))
    return 0
