"""QuantLens' defaults vs the plain onnxruntime scripts on a small causal LM that generates, measured side by side.

What runs:
1. A SmolLM2-135M-shaped Llama folder (30 layers, hidden 576, 9 heads / 3 KV heads, vocabulary 49152, tied
   embeddings) built here from its config with random weights (no download; random weights prove speed and
   fidelity to FP32, not language quality), or a smaller shape with --layers.
2. `python -m core compare FOLDER --precisions fp32,int8,int4 --reference fp32` in a fresh process, as a user
   runs it: export with the KV cache, QuantLens INT8 and INT4.
3. Plain-ORT baselines quantized from the same FP32 export: `quantize_dynamic(fp32, out)` with its defaults,
   `MatMulNBitsQuantizer(model)` with its defaults and with accuracy_level=4.
4. Every variant loaded at once; per round (shuffled order) each reads the same 128-token prompt (prefill) and
   decodes --decode tokens one at a time through the KV cache (core.compare.measure.generation.time_generation).
   Speed-ups are paired: median over rounds of fp32_ms / variant_ms within the same round.
5. Fidelity to FP32 on the default texts: top-1 next-token agreement and mean KL(FP32 || variant).

Targets: QuantLens never behind the plain script it replaces on the trade-off it recommends (speed within the
noise floor, fidelity at least as good); INT4 decode faster than FP32 (decode is memory-bound). Printed as
met/missed, never asserted.

Run: .venv/bin/python bench/bench_generation.py [--rounds 10] [--decode 32] [--layers 30] [--threads 2]
(also: .venv/bin/python bench/bench_compare.py --causal-lm)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPT_TOKENS = 128
CONTROL = "control: QuantLens int4 loaded twice"


def build_model(dest: Path, layers: int) -> Path:
    from bench._shared.causal_lm_models import build_causal_lm_folder

    return build_causal_lm_folder(dest, "llama", hidden=576, layers=layers, heads=9, kv_heads=3, intermediate=1536,
                                  positions=2048, tie=True, model_vocab=49152)


def run_quantlens(folder: Path, out_dir: Path, threads: int) -> tuple[float, dict]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core", "compare", str(folder), "--precisions", "fp32,int8,int4",
                           "--reference", "fp32", "--out", str(out_dir), "--format", "json", "--threads", str(threads),
                           "--runs", "3", "--decode-tokens", "8", "--quiet", "--memory-gib", "12"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"QuantLens run failed:\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout)


def plain_baselines(fp32: Path, out_dir: Path) -> dict[str, Path]:
    """The same plain ORT one-liners as bench_compare.py (one copy of the baseline, so both benches agree)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_compare import plain_baselines as plain

    return plain(fp32, out_dir)


def fidelity(sessions: dict, feeds: list[dict]) -> dict[str, tuple[float, float]]:
    """(top-1 agreement, mean KL) of each variant's next-token distribution against FP32's, every position."""
    import numpy as np

    from core.compare.measure.evaluate import causal_lm_quality

    logits = {name: [s.run(None, f)[0][0] for f in feeds] for name, s in sessions.items()}
    ref = logits["QuantLens fp32"]
    out = {}
    for name, values in logits.items():
        metrics, _ = causal_lm_quality(ref, values, [np.ones(len(r)) for r in ref], ["" for _ in ref])
        out[name] = (metrics["top1_agreement"], metrics["kl_divergence_mean"])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds of prefill + decode (default 10)")
    parser.add_argument("--decode", type=int, default=32, help="tokens decoded per round (default 32)")
    parser.add_argument("--layers", type=int, default=30, help="decoder layers (SmolLM2-135M: 30)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import numpy as np

    from core.compare.common.onnx_io import make_session
    from core.compare.inputs.feeds import load_tokenizer, text_feeds
    from core.compare.inputs.user_data import DEFAULT_TEXTS, input_specs
    from core.compare.measure.generation import make_plan, time_generation

    with tempfile.TemporaryDirectory(prefix="quantlens-bench-lm-") as tmp:
        tmp = Path(tmp)
        folder = build_model(tmp / "model", args.layers)
        wall, report = run_quantlens(folder, tmp / "out", args.threads)
        variants = {f"QuantLens {r['precision']}": tmp / "out" / r["file_name"] for r in report["results"]}
        fp32 = variants["QuantLens fp32"]
        variants.update(plain_baselines(fp32, tmp))
        variants[CONTROL] = variants["QuantLens int4"]

        sessions = {name: make_session(path, args.threads) for name, path in variants.items()}
        load = os.getloadavg()[0]
        specs = input_specs(sessions["QuantLens fp32"])
        config = json.loads((folder / "config.json").read_text())
        feeds = text_feeds(list(DEFAULT_TEXTS), specs, load_tokenizer(folder), config, PROMPT_TOKENS)
        quality = fidelity(sessions, feeds.per_input)
        plan = make_plan(feeds.latency["input_ids"], args.decode, args.rounds, 2048)
        plan = type(plan)(plan.prompt_ids, plan.steps, args.rounds)
        time_generation(sessions, type(plan)(plan.prompt_ids, 2, 1))  # warm-up
        timings = time_generation(sessions, plan)
        sizes = {name: path.stat().st_size for name, path in variants.items()}

    def per_round(name: str) -> tuple[np.ndarray, np.ndarray]:
        t = timings[name]
        return np.array(t.prefill_ms), np.array(t.decode_ms).reshape(args.rounds, plan.steps).mean(1)

    base_prefill, base_decode = per_round("QuantLens fp32")
    rows = {}
    for name in variants:
        prefill, decode = per_round(name)
        rows[name] = {"size": sizes[name], "prefill": float(np.median(prefill)), "decode": float(np.median(decode)),
                      "prefill_x": float(np.median(base_prefill / prefill)),
                      "decode_x": float(np.median(base_decode / decode)),
                      "top1": quality[name][0], "kl": quality[name][1]}

    def paired(a: str, b: str, kind: str) -> float:
        return float(np.median(per_round(b)[kind == "decode"] / per_round(a)[kind == "decode"]))

    print(f"SmolLM2-135M-shaped Llama ({args.layers} layers, random weights) | prompt {plan.prompt_ids.shape[1]} tokens, "
          f"then {plan.steps} decoded through the KV cache | {args.threads} intra-op threads | {args.rounds} interleaved "
          f"rounds | CPU EP | load average at start {load:.2f} on {os.cpu_count()} cores")
    print("x = median over rounds of fp32_ms / variant_ms (paired within each round); sizes in MB (10^6 bytes); "
          "top-1 / KL vs QuantLens FP32 on the default texts")
    print(f"{'variant':44s} {'size MB':>8s} {'prefill ms':>10s} {'x':>6s} {'decode ms/tok':>13s} {'tok/s':>7s} "
          f"{'x':>6s} {'top-1':>6s} {'KL':>8s}")
    for name, r in rows.items():
        print(f"{name:44s} {r['size'] / 1e6:8.1f} {r['prefill']:10.1f} {r['prefill_x']:5.2f}x {r['decode']:13.2f} "
              f"{1000 / r['decode']:7.1f} {r['decode_x']:5.2f}x {r['top1']:6.1%} {r['kl']:8.4f}")
    control = paired("QuantLens int4", CONTROL, "decode")
    noise = max(0.05, abs(1 - control))
    q8, q4 = rows["QuantLens int8"], rows["QuantLens int4"]
    p8, p4 = rows["plain ORT int8 (quantize_dynamic defaults)"], rows["plain ORT int4 (accuracy_level=4)"]
    vs8 = paired("QuantLens int8", "plain ORT int8 (quantize_dynamic defaults)", "decode")
    vs4 = paired("QuantLens int4", "plain ORT int4 (accuracy_level=4)", "decode")
    vs4p = paired("QuantLens int4", "plain ORT int4 (accuracy_level=4)", "prefill")
    checks = [
        (f"noise floor: the same INT4 file in two sessions decoded at {control:.2f}x of itself (paired); speed "
         f"comparisons allow +-{noise:.0%}", True),
        (f"INT4 decode {q4['decode_x']:.2f}x FP32 (memory-bound: smaller weights pay here), prefill "
         f"{q4['prefill_x']:.2f}x", q4["decode_x"] > 1),
        (f"INT8 vs plain ORT: top-1 {q8['top1']:.1%} vs {p8['top1']:.1%}, KL {q8['kl']:.4f} vs {p8['kl']:.4f}, "
         f"QuantLens decodes at {vs8:.2f}x the plain speed (paired)", q8["kl"] <= p8["kl"] and vs8 >= 1 - noise),
        (f"INT4 vs plain ORT (al=4): top-1 {q4['top1']:.1%} vs {p4['top1']:.1%}, KL {q4['kl']:.4f} vs {p4['kl']:.4f}, "
         f"QuantLens decodes at {vs4:.2f}x and prefills at {vs4p:.2f}x the plain speed (paired), size "
         f"{q4['size'] / 1e6:.1f} vs {p4['size'] / 1e6:.1f} MB", q4["kl"] <= p4["kl"] and vs4 >= 1 - noise),
        (f"QuantLens run (export with KV cache, INT8, INT4, measuring) {wall:.1f} s", True),
    ]
    print()
    for text, ok in checks:
        print(f"[{'met' if ok else 'MISSED'}] {text}")


if __name__ == "__main__":
    main()
