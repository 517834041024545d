"""Print how QuantLens agrees with llama.cpp's recorded answers (tests/core/data/llamacpp_truth/*.json).

Columns: tensors the converter wrote that gguf_tensor_plan names with the same shape and source type; tensor
types over all recorded GGUF types equal to llama-quantize's (gguf_tensor_plan, then the calculator's engine);
whether the engine's llama.cpp KV cache equals the KV buffers llama.cpp logged at every recorded context.

Run: .venv/bin/python bench/truth/compare_table.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._shared.llamacpp_records import hf_tensors  # noqa: E402
from core.sizing.architecture import architecture_from_config  # noqa: E402
from core.sizing.gguf import plan  # noqa: E402
from core.sizing.gguf_map import gguf_tensor_plan  # noqa: E402
from core.sizing.kv_cache import kv_cache_plan  # noqa: E402


def plan_from_record(rec: dict):
    cfg = rec["config"]
    text = cfg.get("text_config") or cfg
    blocks = {int(n.split(".")[1]) for n, *_ in rec["converter_tensors"] if n.startswith("blk.")}
    heads = text.get("num_attention_heads") or text.get("n_head") or 1
    kv = text.get("num_key_value_heads") or heads
    n_expert = text.get("num_local_experts") or text.get("num_experts") or text.get("n_routed_experts") or 0
    return gguf_tensor_plan(cfg["model_type"], hf_tensors(rec),
                            max(blocks) + 1 if blocks else 0, ftypes=tuple(rec["quantize"]), n_expert=n_expert,
                            gqa=max(1, heads // max(1, kv)), config=text)


def row(rec: dict) -> tuple:
    want = {n: (tuple(s), t) for n, s, t, _ in rec["converter_tensors"]}
    try:
        mine = {t.name: t for t in plan_from_record(rec) if not t.mmproj}
        err = ""
    except Exception as exc:  # noqa: BLE001 - a table row, not a crash
        mine, err = {}, str(exc)[:60]
    names = sum(1 for n in want if n in mine and (mine[n].shape, mine[n].source_type) == want[n])
    qt = qok = eok = 0
    engine_plans = {}
    try:
        arch = architecture_from_config(rec["config"])
    except Exception:  # noqa: BLE001
        arch = None
    for ftype, q in rec["quantize"].items():
        if "error" in q:
            continue
        if arch is not None:
            try:
                engine_plans = {p.name: p.ggml_type for p in plan(arch, ftype, imatrix=False)}
            except Exception:  # noqa: BLE001
                engine_plans = {}
        for n, _shape, t in q["tensors"]:
            qt += 1
            qok += n in mine and mine[n].types.get(ftype) == t
            eok += engine_plans.get(n) == t
    kv_equal = "-"
    if arch is not None and rec.get("load"):
        try:
            kv_equal = "yes" if all(
                "error" not in ld and abs(kv_cache_plan(arch, ld["context"], 1, "fp16", runtime="llama.cpp").bytes / 2**20
                                          - sum(c["mib"] for c in ld["kv_caches"])) <= 0.011
                for ld in rec["load"]) else "no"
        except Exception:  # noqa: BLE001
            kv_equal = "no"
    return names, len(want), qok, eok, qt, kv_equal, err


def main() -> None:
    data = ROOT / "tests/core/data/llamacpp_truth"
    print(f"{'model':<22} {'gguf arch':<13} {'names+shapes':>13} {'types (map)':>14} {'types (engine)':>15} {'KV':>4}")
    for p in sorted(data.glob("*.json")):
        rec = json.loads(p.read_text())
        if "error" in rec:
            print(f"{p.stem:<22} {'-':<13} llama.cpp refused: {rec['error'][:70]}")
            continue
        names, total, qok, eok, qt, kv, err = row(rec)
        print(f"{p.stem:<22} {rec['gguf_arch']:<13} {names:>6}/{total:<6} {qok:>7}/{qt:<6} {eok:>7}/{qt:<7} {kv:>4} {err}")


if __name__ == "__main__":
    main()
