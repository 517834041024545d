"""llama.cpp's own offload plan (`llama-fit-params`) for a few (model, GGUF type, context, cards) cases.

llama-fit-params plans without allocating: it loads the model's metadata with no_alloc, asks llama.cpp what the
weights, KV cache and compute buffers of a trial -ngl / tensor-split / MoE-override choice take on each device, and
searches for the most layers that leave `--fit-target` (1024 MiB by default) free on every GPU. On a CPU-only build
there is no GPU device, so it plans nothing; bench/truth/fake_gpu_fit.cpp registers pretend GPUs whose free memory
is the catalog card's usable memory (what is left after the CUDA context) and runs llama-fit-params' own main
unchanged. The answers go to tests/core/data/llamacpp_truth/fit_params/fit_params.json with llama.cpp's version; the test
tests/core/test_offload_truth.py and bench/bench_offload_fit.py compare core/sizing/offload.py with them.

Files: the sparse F16 GGUFs of the truth harness (bench/truth_llamacpp.py, `make truth`); the other GGUF types are
the same file retyped with `llama-quantize --dry-run`'s type for every tensor (recorded in the truth JSON), data
still sparse, so a 30B model at Q4_K_M costs no disk and no quantizing.

Run: `make truth-fit` or `python bench/truth/fit_params.py [--cases name,...]`: builds llama.cpp like `make truth`
when it is not built, writes the sparse GGUFs it lacks, compiles fake_gpu_fit.cpp (3 s), then 2-20 s per case on a
busy 2-core machine (about a minute for all nine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from truth_llamacpp import (  # noqa: E402
    BIN,
    CACHE,
    CONFIGS,
    GGUF_DIR,
    OUT,
    PACKAGE,
    TAG,
    TREE,
    build,
    convert,
    quantize_dry_run,
)

MIB = 1 << 20
FAKE_BIN = BIN / "quantlens-fake-gpu-fit"
SOURCE = ROOT / "bench/truth/fake_gpu_fit.cpp"
# Models only the fit cases need (too large to be worth every truth record, e.g. Llama 3.1 70B: its sparse F16 file
# is over the harness's load limit); their configs live here, their llama-quantize types beside their sparse GGUF.
FIT_CONFIGS = ROOT / "bench/truth/fit_configs"
RESULT = OUT / "fit_params" / "fit_params.json"  # a folder of its own: the per-model globs skip it
LIBS = ("tools/fit-params/libllama-fit-params-impl.a", "common/libllama-common.a", "common/libllama-common-base.a",
        "vendor/cpp-httplib/libcpp-httplib.a", "src/libllama.a", "ggml/src/libggml.a", "-ldl", "ggml/src/libggml-cpu.a",
        "ggml/src/libggml-base.a")

# (case name, truth model, GGUF type, context, catalog card ids): dense models whose weights + KV overflow one card,
# MoE models where the experts go to RAM, and one pair of mixed cards (llama.cpp splits layers by free memory).
CASES: tuple[tuple[str, str, str, int, tuple[str, ...]], ...] = (
    ("llama-3.1-8b-f16-8k-3060", "llama-3.1-8b", "GGUF-F16", 8192, ("rtx-3060-12gb",)),
    ("llama-3.1-8b-q8-32k-3080", "llama-3.1-8b", "Q8_0", 32768, ("rtx-3080-10gb",)),
    ("llama-3.1-8b-q4km-128k-3060", "llama-3.1-8b", "Q4_K_M", 131072, ("rtx-3060-12gb",)),
    ("mistral-7b-q4km-32k-3080", "mistral-7b-v0.1", "Q4_K_M", 32768, ("rtx-3080-10gb",)),
    ("mistral-7b-f16-4k-3080", "mistral-7b-v0.1", "GGUF-F16", 4096, ("rtx-3080-10gb",)),
    ("llama-3.1-8b-f16-32k-3080+3060", "llama-3.1-8b", "GGUF-F16", 32768, ("rtx-3080-10gb", "rtx-3060-12gb")),
    ("qwen3-30b-a3b-q4km-8k-3060", "qwen3-30b-a3b", "Q4_K_M", 8192, ("rtx-3060-12gb",)),
    ("qwen3-30b-a3b-q8-32k-4090", "qwen3-30b-a3b", "Q8_0", 32768, ("rtx-4090",)),
    ("mixtral-8x7b-q4km-8k-4090", "mixtral-8x7b", "Q4_K_M", 8192, ("rtx-4090",)),
    # the calculator's own example: 70B at Q4_K_M on one 24 GB card, and on a 24 GB + 12 GB pair
    ("llama-3.1-70b-q4km-8k-4090", "llama-3.1-70b", "Q4_K_M", 8192, ("rtx-4090",)),
    ("llama-3.1-70b-q4km-8k-4090+3060", "llama-3.1-70b", "Q4_K_M", 8192, ("rtx-4090", "rtx-3060-12gb")),
    # tied embeddings (llama.cpp keeps a copy of token_embd on the card as the output layer); a 4 GB card typed as
    # a custom card (`name, GB, GB/s`, as the calculator's card= link takes it)
    ("qwen2.5-0.5b-q8-128k-4gb", "qwen2.5-0.5b", "Q8_0", 131072, ("GTX 1650, 4, 128",)),
    ("gemma-3-1b-q4km-32k-3gb", "gemma-3-1b", "Q4_K_M", 32768, ("GTX 1060, 3, 192",)),
)

_OT = re.compile(r"blk\\\.(\d+)\\\.ffn_(\S+?)=(\w+)")
_DEVICE_LINE = re.compile(r"common_params_fit_impl:\s+- (FAKEGPU\d+) .*?:\s+(\d+) layers(?: \(\s*(\d+) overflowing\))?,"
                          r"\s+(\d+) MiB used,\s+(-?\d+) MiB free")


def card(spec: str):
    """A catalog card id, or a custom card `name, GB, GB/s` (core.sizing.custom_card, the calculator's card=)."""
    from core.sizing import catalog
    from core.sizing.custom_card import parse_custom_card

    return parse_custom_card(spec) if "," in spec else catalog.find_hardware(spec)


def build_fake_gpu_fit() -> Path:
    """Compile fake_gpu_fit.cpp against the truth build's static libraries (a few seconds; redone when newer)."""
    if FAKE_BIN.exists() and FAKE_BIN.stat().st_mtime >= SOURCE.stat().st_mtime:
        return FAKE_BIN
    build()  # the truth harness's llama.cpp build (scripts/truth/build_llamacpp.sh; returns at once when built)
    build_dir = CACHE / "build"
    cmd = ["c++", "-O0", "-std=c++17", f"-I{TREE}/ggml/include", f"-I{TREE}/ggml/src", f"-I{TREE}/include",
           str(SOURCE), "-o", str(FAKE_BIN)]
    cmd += [lib if lib.startswith("-") else str(build_dir / lib) for lib in LIBS] + ["-lm", "-fopenmp", "-lpthread"]
    subprocess.run(["nice", "-n", "10", *cmd], check=True)
    return FAKE_BIN


def gguf_for(model: str, ftype: str) -> Path:
    """The sparse GGUF of `model` at `ftype`: the F16 file itself, or a copy whose tensors carry llama-quantize's
    types for `ftype` (from the truth JSON) and their byte sizes, data section sparse."""
    src = GGUF_DIR / f"{model}.gguf"
    if not src.exists():  # the truth harness writes it (llama.cpp's converter over meta tensors, sparse data)
        err = (convert([model])[model] if (CONFIGS / f"{model}.json").exists() else _convert_fit_config(model)).get("error")
        if err:
            raise SystemExit(f"no sparse GGUF for {model}: {err[:300]}")
    if ftype == "GGUF-F16":
        return src
    out = GGUF_DIR / f"{model}.{ftype}.gguf"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType

    types = quantize_types(model, ftype, src)
    r = GGUFReader(src, "r")
    tmp = out.with_suffix(".tmp")
    w = GGUFWriter(tmp, arch=r.get_field("general.architecture").contents())
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value = int(getattr(LlamaFileType, "MOSTLY_" + ftype)) if key == "general.file_type" else f.contents()
        vtype = f.types[0]
        w.add_key_value(key, value, vtype, sub_type=f.types[-1] if vtype == GGUFValueType.ARRAY else None)
    sizes = []
    for t in r.tensors:
        qt = GGMLQuantizationType[types[t.name]]
        block, type_size = GGML_QUANT_SIZES[qt]
        nbytes = int(t.n_elements) // block * type_size
        sizes.append(nbytes)
        w.add_tensor_info(t.name, [int(x) for x in reversed(t.shape.tolist())], np.dtype(np.float32), nbytes,
                          raw_dtype=qt)
    w.write_header_to_file(path=tmp)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    fout.flush()
    total = w.ggml_pad(fout.tell(), w.data_alignment) + sum(w.ggml_pad(n, w.data_alignment) for n in sizes)
    fout.close()
    w.fout = None
    os.truncate(tmp, total)
    os.replace(tmp, out)
    return out


def model_config(model: str) -> dict:
    path = CONFIGS / f"{model}.json"
    return json.loads((path if path.exists() else FIT_CONFIGS / f"{model}.json").read_text())


def _convert_fit_config(model: str) -> dict:
    """The sparse F16 GGUF of a fit-only config, with the truth harness's converter (bench/truth/sparse_gguf.py)."""
    GGUF_DIR.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, str(ROOT / "bench/truth/sparse_gguf.py"), str(TREE), str(GGUF_DIR),
                           str(FIT_CONFIGS / f"{model}.json")], capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("SPARSE_GGUF_JSON "):
            return json.loads(line.split(" ", 1)[1])
    return {"error": "converter produced no result: " + proc.stderr[-300:]}


def quantize_types(model: str, ftype: str, src: Path) -> dict[str, str]:
    """llama-quantize's type for every tensor at `ftype`: from the model's truth record, else a dry run on its sparse
    F16 file (no data read), kept beside the file."""
    record = OUT / f"{model}.json"
    if record.exists():
        return {n: t for n, _s, t in json.loads(record.read_text())["quantize"][ftype]["tensors"]}
    side = GGUF_DIR / f"{model}.{ftype}.types.json"
    if side.exists() and side.stat().st_mtime >= src.stat().st_mtime:
        return json.loads(side.read_text())
    sys.path.insert(0, str(ROOT / "bench/truth"))
    from sparse_gguf import dedupe_vocab

    dedupe_vocab(src)
    res = quantize_dry_run(src, ftype)
    if "error" in res:
        raise SystemExit(f"llama-quantize --dry-run {model} {ftype}: {res['error'][:300]}")
    types = {n: t for n, _s, t in res["tensors"]}
    side.write_text(json.dumps(types))
    return types


def parse_args_line(line: str, n_layer: int) -> dict:
    """`-c 8192 -ngl 23 -ts 14,19 -ot "blk\\.3\\.ffn_(up|down|gate_up|gate)_(ch|)exps=CPU,..."` as plain numbers.
    Layers the -ot list moves: `expert_layers_in_ram` (whole routed experts of a layer) and `partial_layers`
    (the first overflowing layer of a device, where only some FFN tensors move)."""
    toks = line.split()
    ngl = int(toks[toks.index("-ngl") + 1])  # -1: llama.cpp's default (everything on the GPUs) was left as it is
    out: dict = {"n_ctx": int(toks[toks.index("-c") + 1]), "n_gpu_layers": n_layer + 1 if ngl < 0 else ngl,
                 "fits_unchanged": ngl < 0}
    out["tensor_split"] = [int(x) for x in toks[toks.index("-ts") + 1].split(",")] if "-ts" in toks else []
    experts, partial = [], []
    for layer, what, buft in _OT.findall(line):
        if int(layer) >= n_layer:  # the output layer's index: its pattern names no tensor
            continue
        if what.startswith("(up|down|gate_up|gate)_(ch|)exps"):
            experts.append(int(layer))
        else:
            partial.append({"layer": int(layer), "tensors": "ffn_" + what, "to": buft})
    out["expert_layers_in_ram"] = sorted(experts)
    out["partial_layers"] = partial
    # -ngl N keeps the output layer and the last N-1 repeating layers on the GPU(s); the first ones run on the CPU
    out["repeating_layers_on_gpu"] = max(0, min(out["n_gpu_layers"], n_layer + 1) - 1)
    return out


def first_breakdown(log: str) -> dict:
    """llama.cpp's memory breakdown table of its first trial (every layer on the GPU(s) at this context):
    {device: {self, model, context, compute}} in MiB, the Host row included."""
    out: dict = {}
    for row in log.splitlines():
        if "memory_breakdown_print" not in row or ("- FAKEGPU" not in row and "- Host" not in row):
            continue
        cells = row.split("|")
        dev = cells[1].split("- ", 1)[1].split()[0]
        if dev in out:
            break
        nums = [int(x) for x in re.findall(r"-?\d+", cells[2])]
        self_, model, ctx, compute = nums[2:6] if dev != "Host" else nums[0:4]
        out[dev] = {"self": self_, "model": model, "context": ctx, "compute": compute}
    return out


def run_case(case: tuple, binary: Path) -> dict:
    name, model, ftype, context, cards = case
    hw = [card(c) for c in cards]
    free_mib = [h.usable_memory_bytes // MIB for h in hw]
    gguf = gguf_for(model, ftype)
    n_layer = int(model_config(model)["num_hidden_layers"])
    env = dict(os.environ, QUANTLENS_FAKE_GPU_MIB=",".join(str(m) for m in free_mib))
    cmd = [str(binary), "-m", str(gguf), "-c", str(context), "-np", "1", "-v"]
    t0 = time.monotonic()
    proc = subprocess.run(["nice", "-n", "10", *cmd], capture_output=True, text=True, env=env, timeout=1800)
    seconds = round(time.monotonic() - t0, 1)
    res: dict = {"case": name, "model": model, "ftype": ftype, "context": context, "cards": list(cards),
                 "free_mib": free_mib, "fit_target_mib": 1024, "n_layer": n_layer, "seconds": seconds}
    if not (OUT / f"{model}.json").exists():  # a fit-only model: its config travels with the answer
        res["config"] = model_config(model)
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode or not line.startswith("-c "):
        res["error"] = f"exit {proc.returncode}: " + "\n".join(
            x for x in proc.stderr.splitlines()[-30:] if "fit" in x or "error" in x.lower())[-600:]
        return res
    res["args"] = line
    res.update(parse_args_line(line, n_layer))
    res["devices"] = [{"device": d, "layers": int(n), "overflowing": int(o or 0), "used_mib": int(u), "free_mib": int(f)}
                      for d, n, o, u, f in _DEVICE_LINE.findall(proc.stderr)]
    res["full_offload_mib"] = first_breakdown(proc.stderr)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    args = ap.parse_args()
    wanted = [c for c in args.cases.split(",") if c]
    cases = [c for c in CASES if not wanted or c[0] in wanted]
    binary = build_fake_gpu_fit()
    old = json.loads(RESULT.read_text()) if RESULT.exists() else {}
    done = {r["case"]: r for r in old.get("cases", [])}
    print(f"{'case':<34} {'-ngl':>5} {'-ts':>9} {'experts in RAM':>14} {'s':>6}  note")
    for case in cases:
        r = run_case(case, binary)
        done[r["case"]] = r
        ts = ",".join(map(str, r.get("tensor_split", []))) or "-"
        print(f"{r['case']:<34} {r.get('n_gpu_layers', '-')!s:>5} {ts:>9} {len(r.get('expert_layers_in_ram', [])):>14} "
              f"{r['seconds']:>6}  {r.get('error', '')[:80]}", flush=True)
    order = [c[0] for c in CASES]
    out = {"llama_cpp": {"tag": TAG, "source": f"PyPI sdist {PACKAGE}",
                         "tool": "llama-fit-params (tools/fit-params, unchanged) with pretend GPUs "
                                 "(bench/truth/fake_gpu_fit.cpp): free memory = the catalog card's usable memory"},
           "cases": sorted(done.values(), key=lambda r: order.index(r["case"]) if r["case"] in order else 99)}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULT.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, RESULT)
    print(f"wrote {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
