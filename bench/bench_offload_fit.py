"""Print QuantLens's llama.cpp offload plans next to llama.cpp's own (`llama-fit-params`, b11434).

The llama.cpp answers are read from tests/core/data/llamacpp_truth/fit_params/fit_params.json (recorded by
`make truth-fit`, bench/truth/fit_params.py: llama-fit-params with pretend GPUs of the catalog card's usable
memory, on shape-exact sparse GGUFs); QuantLens's come from core.sizing.offload.plan_offload for the same model
config, GGUF type, context and cards. "MoE in RAM" is the number of layers whose routed experts are not wholly on
the card (llama.cpp may keep part of one layer's experts on the card; --n-cpu-moe counts whole layers).

Run: `.venv/bin/python bench/bench_offload_fit.py` (a second; no llama.cpp needed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import sizing  # noqa: E402
from core.sizing import catalog  # noqa: E402
from core.sizing.custom_card import parse_custom_card  # noqa: E402
from core.sizing.offload import plan_offload  # noqa: E402

DATA = ROOT / "tests/core/data/llamacpp_truth"


def main() -> None:
    fit = json.loads((DATA / "fit_params" / "fit_params.json").read_text())
    print(f"llama.cpp {fit['llama_cpp']['tag']}: {fit['llama_cpp']['tool']}")
    head = (f"{'model':<16} {'type':<8} {'ctx':>6} {'cards (free MiB)':<32} {'-ngl pred':>9} {'-ngl llama':>10} "
            f"{'MoE in RAM pred':>15} {'llama':>5} {'-ts pred':>8} {'-ts llama':>9} {'GPU MiB pred':>12} "
            f"{'llama':>6}")
    print(head)
    print("-" * len(head))
    same = 0
    for case in fit["cases"]:
        if "error" in case:
            print(f"{case['case']}: llama-fit-params failed: {case['error'][:100]}")
            continue
        record = DATA / f"{case['model']}.json"
        model = sizing.model_from_config(json.loads(record.read_text())["config"] if record.exists() else case["config"])
        est = sizing.estimate(model, case["ftype"], case["context"], 1, "fp16", "llama.cpp")
        p = plan_offload(model, est, [parse_custom_card(c) if "," in c else catalog.find_hardware(c) for c in case["cards"]])
        llama_moe = len(case["expert_layers_in_ram"]) + len(case["partial_layers"])
        pred_moe = p.n_cpu_moe if p and p.kind == "experts" else 0
        cards = "+".join(f"{c.split(',')[0].replace('-12gb', '').replace('-10gb', '')}({m})" for c, m in
                         zip(case["cards"], case["free_mib"], strict=True))
        used = sum(d["used_mib"] for d in {d["device"]: d for d in case["devices"]}.values())
        ngl = p.n_gpu_layers if p else "fits"
        ts_pred = ",".join(str(int(x)) for x in p.tensor_split) if p and p.tensor_split else "-"
        ts_llama = ",".join(map(str, case["tensor_split"])) or "-"
        same += ngl == case["n_gpu_layers"] and pred_moe == llama_moe and ts_pred == ts_llama
        print(f"{case['model']:<16} {case['ftype']:<8} {case['context']:>6} {cards:<32} {ngl!s:>9} "
              f"{case['n_gpu_layers']:>10} {pred_moe:>15} {llama_moe:>5} {ts_pred:>8} {ts_llama:>9} "
              f"{(p.gpu_bytes >> 20) if p else '-'!s:>12} {used:>6}")
    n = sum(1 for c in fit["cases"] if "error" not in c)
    print(f"\nsame plan as llama-fit-params: {same}/{n}; the others are one layer apart "
          "(tests/core/test_offload_truth.py says why for each)")


if __name__ == "__main__":
    main()
