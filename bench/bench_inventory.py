"""Inventory from the model's own definition: cold build time (the child process the app uses) vs per-click time.

The first time a config is seen, the calculator shows a spinner while transformers builds the model on the meta
device in a child process; every later click reads the cached inventory and is arithmetic. This prints both per
reference config, so the cost of the first click and the steadiness of the later ones can be read side by side.
"first GGUF ms" is the first GGUF-sized click (one Q4_K_M row) of a fresh process after the inventory is read from
disk: naming every tensor as llama.cpp's converter does and llama-quantize's rules (core.sizing.gguf_inventory),
cached per config hash and type after that.

    .venv/bin/python bench/bench_inventory.py [--clicks 20] [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "tests" / "core" / "data" / "reference_configs"
DEFAULT = ("whisper-tiny", "lfm2-1.2b", "jamba-1.5-mini", "granite-4.0-h-small", "qwen2.5-vl-7b", "llama-3.1-8b")
PRECISIONS = ("bf16", "int8", "int4", "Q4_K_M", "Q8_0", "AWQ-INT4")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(DEFAULT))
    ap.add_argument("--clicks", type=int, default=20)
    args = ap.parse_args()
    os.environ["QUANTLENS_INVENTORY_CACHE"] = tempfile.mkdtemp(prefix="ql-inv-bench-")
    from core import sizing
    from core.sizing import inventory_arch

    rows = []
    for name in args.names:
        cfg = json.loads((DATA / f"{name}.json").read_text())
        inventory_arch.clear_cache()
        t0 = time.perf_counter()
        model = sizing.model_from_config(cfg, name)  # cold: child process for non-hand-written families
        cold = time.perf_counter() - t0
        path = "hand-written" if model.architecture and not model.architecture.inventory_key else "meta device"
        inventory_arch.clear_cache()  # a new app process: read back from the disk cache
        t0 = time.perf_counter()
        model = sizing.model_from_config(cfg, name)
        disk = time.perf_counter() - t0
        t0 = time.perf_counter()  # the GGUF mapping was cleared with the rest: this click names and types it
        sizing.calculate([model], ("Q4_K_M",), 4096, 1, "fp16", "llama.cpp")
        first_gguf = time.perf_counter() - t0
        clicks = []
        for i in range(args.clicks):
            t0 = time.perf_counter()
            m = sizing.model_from_config(cfg, name)
            sizing.calculate([m], PRECISIONS, 4096 + 512 * i, 1, "fp16", "llama.cpp")
            clicks.append(1000 * (time.perf_counter() - t0))
        rows.append((name, path, cold, disk * 1000, first_gguf * 1000, statistics.median(clicks), max(clicks)))
    head = (f"{'config':<20} {'path':<13} {'cold build s':>12} {'disk cache ms':>13} {'first GGUF ms':>13} "
            f"{'click p50 ms':>12} {'click max ms':>12}")
    print(head)
    print("-" * len(head))
    for name, path, cold, disk, first, p50, worst in rows:
        print(f"{name:<20} {path:<13} {cold:>12.2f} {disk:>13.1f} {first:>13.1f} {p50:>12.1f} {worst:>12.1f}")
    print(f"click = model_from_config + calculate over {len(PRECISIONS)} precisions, context varied per click")
    return 0


if __name__ == "__main__":
    sys.exit(main())
