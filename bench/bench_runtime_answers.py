"""Predicted vs published, per component, for the runtime answers of issue 18 (prints tables; no timing asserts).

1. Published load logs (tests/core/data/logs, sources in each file's first lines) beside the engine's prediction.
2. llama.cpp offload plans (-ngl / --n-cpu-moe) for common "does not fit one card" cases, with the RAM they need
   and the decode ceiling from both bandwidths. These models are too large for the sparse-GGUF harness; llama.cpp's
   own `llama-fit-params` answers for models it could plan are in bench/bench_offload_fit.py (`make truth-fit`);
   put other -ngl values beside ours with `--fit-params FILE` (lines `model,precision,ctx,card,ngl`).

Run: .venv/bin/python bench/bench_runtime_answers.py [--fit-params FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import sizing  # noqa: E402
from core.sizing import catalog  # noqa: E402
from core.sizing.offload import plan_offload  # noqa: E402
from core.sizing.reconcile import parse_log, predicted_components, reconcile  # noqa: E402
from core.units import GIB  # noqa: E402

LOGS = ROOT / "tests" / "core" / "data" / "logs"
QWEN3_14B = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 5120,
             "intermediate_size": 17408, "num_hidden_layers": 40, "num_attention_heads": 40, "num_key_value_heads": 8,
             "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 40960, "tie_word_embeddings": False}
CASES = [  # log, model, precision, extra prediction settings
    ("ollama_llama31_8b_q4km.log", "meta-llama/Llama-3.1-8B", "Q4_K_M", {}),
    ("vllm_v0_llama31_8b_rtx3090.log", "meta-llama/Llama-3.1-8B", "bf16",
     {"total_memory_bytes": int(23.58 * GIB), "max_num_batched_tokens": 20000}),
    ("vllm_v1_qwen3_14b.log", QWEN3_14B, "bf16", {}),
]
OFFLOAD = [("meta-llama/Llama-3.1-70B", "Q4_K_M", 8192, ["rtx-4090"]),
           ("meta-llama/Llama-3.1-70B", "Q4_K_M", 8192, ["rtx-4090", "rtx-3060-12gb"]),
           ("Qwen/Qwen3-30B-A3B", "Q8_0", 32768, ["rtx-4090"]),
           ("Qwen/Qwen3-235B-A22B", "Q4_K_M", 8192, ["rtx-4090"]),
           ("openai/gpt-oss-120b", "MXFP4_MOE", 32768, ["rtx-4090"]),
           ("deepseek-ai/DeepSeek-V3", "Q4_K_M", 8192, ["h100-sxm-80gb"])]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit-params", type=Path, help="llama-fit-params results: model,precision,ctx,card,ngl per line")
    args = ap.parse_args()
    print("Published logs: predicted vs measured")
    print(f"{'log':34} {'component':28} {'predicted':>14} {'measured':>14} {'gap %':>8}")
    for name, model_id, precision, extra in CASES:
        model = sizing.model_from_config(model_id) if isinstance(model_id, dict) else sizing.model_from_catalog(model_id)
        parsed = parse_log((LOGS / name).read_text())
        for r in reconcile(parsed, predicted_components(model, precision, parsed, **extra)):
            unit = 1 if r.unit == "tokens" else 1e9
            p = "—" if r.predicted_bytes is None else f"{r.predicted_bytes / unit:,.3f}"
            gap = "—" if r.gap_percent is None else f"{r.gap_percent:+.1f}"
            print(f"{name[:34]:34} {r.component[:28]:28} {p:>14} {r.measured_bytes / unit:>14,.3f} {gap:>8}")
    fit = {}
    recorded = ROOT / "tests/core/data/llamacpp_truth/fit_params/fit_params.json"  # make truth-fit
    if recorded.exists():
        for c in json.loads(recorded.read_text())["cases"]:
            for model_id, *_ in OFFLOAD:
                if model_id.split("/")[-1].lower() == c["model"] and "error" not in c:
                    ts = f" -ts {','.join(map(str, c['tensor_split']))}" if c["tensor_split"] else ""
                    moe = len(c["expert_layers_in_ram"]) + len(c["partial_layers"])
                    ts += f", experts of {moe} layers in RAM (-ot)" if moe else ""
                    fit[(model_id, c["ftype"], c["context"], "+".join(c["cards"]))] = f"-ngl {c['n_gpu_layers']}{ts}"
    if args.fit_params:
        for line in args.fit_params.read_text().splitlines():
            m, p, c, card, ngl = (x.strip() for x in line.split(","))
            fit[(m, p, int(c), card)] = ngl
    print("\nllama.cpp offload plans (GB = 10^9 bytes; RAM bandwidth 89.6 GB/s)")
    print(f"{'model':28} {'prec':9} {'ctx':>6} {'cards':22} {'flags':34} {'RAM GB':>7} {'tok/s':>6}  llama-fit-params")
    for model_id, precision, ctx, cards in OFFLOAD:
        m = sizing.model_from_catalog(model_id)
        e = sizing.estimate(m, precision, ctx, 1, "fp16", "llama.cpp")
        plan = plan_offload(m, e, [catalog.find_hardware(c) for c in cards])
        ref = fit.get((model_id, precision, ctx, "+".join(cards)), "not run")
        if plan is None:
            print(f"{model_id[:28]:28} {precision:9} {ctx:>6} {'+'.join(cards)[:22]:22} fits, no offload")
            continue
        print(f"{model_id[:28]:28} {precision:9} {ctx:>6} {'+'.join(cards)[:22]:22} {plan.flags[:34]:34} "
              f"{plan.ram_bytes / 1e9:>7.1f} {plan.tokens_per_s:>6.1f}  {ref}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
