"""How long one calculator interaction takes server-side (target: well under 100 ms).

One interaction = what pages/calculator.py computes on each rerun: resolve the model(s) from the catalog,
then `core.sizing.calculate` (every model x precision estimate, the fit matrix over the chosen hardware,
per-device max context by binary search and decode ceilings, and the memory-against-context sweep).
"cold" clears every engine cache first (the first click on a new model); "warm" repeats the same
interaction (a widget change that keeps the model). Drawing the page (pandas, altair) is not included.

Run: .venv/bin/python bench/bench_calculator.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import sizing
from core.sizing import (
    architecture,
    catalog,
    gguf,
    weights,  # noqa: E402
)
from core.sizing.precisions import DEFAULT_NAMES, PRECISIONS  # noqa: E402

HARDWARE_IDS = ("rtx-4090", "rtx-3060-12gb", "h100-sxm-80gb", "apple-m3-max-64gb")
ALL = tuple(p.name for p in PRECISIONS)
SCENARIOS = [
    ("Llama 3.1 8B, 7 precisions, ctx 4k, 4 devices", ("meta-llama/Llama-3.1-8B",), DEFAULT_NAMES, 4096, 1),
    ("Llama 3.1 70B, all 45 precisions, ctx 32k, 4 devices", ("meta-llama/Llama-3.1-70B",), ALL, 32768, 1),
    ("DeepSeek V3 (MLA+MoE), all precisions, ctx 32k, batch 8", ("deepseek-ai/DeepSeek-V3",), ALL, 32768, 8),
    ("Gemma 2 27B (sliding window), all precisions, ctx 8k", ("google/gemma-2-27b",), ALL, 8192, 1),
    ("3 models x 7 precisions, ctx 8k, 4 devices",
     ("meta-llama/Llama-3.1-8B", "mistralai/Mixtral-8x7B-v0.1", "Qwen/Qwen3-30B-A3B"), DEFAULT_NAMES, 8192, 1),
]


def clear_caches() -> None:
    for fn in (architecture.tensor_inventory, architecture.parameter_count, architecture.active_parameter_count,
               gguf.plan, gguf.file_bytes, weights.weights_bytes, weights.gguf_bits_per_weight,
               sizing.engine._catalog_spec, catalog.load_models, catalog.load_hardware):
        fn.cache_clear()


def interaction(model_ids, precisions, context, batch) -> sizing.CalculatorResult:
    hardware = tuple(catalog.find_hardware(h) for h in HARDWARE_IDS)
    models = [sizing.model_from_catalog(m) for m in model_ids]
    return sizing.calculate(models, precisions, context, batch, "fp16", "llama.cpp", hardware)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    rows = []
    for label, model_ids, precisions, context, batch in SCENARIOS:
        def run(model_ids=model_ids, precisions=precisions, context=context, batch=batch):
            return interaction(model_ids, precisions, context, batch)

        clear_caches()
        cold = timed(run)
        result = run()
        warm = sorted(timed(run) for _ in range(args.repeat))
        n_estimates = sum(len(es) for es in result.estimates) + len(result.sweep) + len(result.fits)
        rows.append((label, n_estimates, cold, statistics.median(warm), warm[max(0, int(0.95 * len(warm)) - 1)]))
    head = ("interaction", "estimates+fits", "cold ms", "warm p50 ms", "warm p95 ms")
    width = max(len(r[0]) for r in rows)
    print(f"{head[0]:<{width}}  {head[1]:>14}  {head[2]:>8}  {head[3]:>11}  {head[4]:>11}")
    for label, n, cold, p50, p95 in rows:
        print(f"{label:<{width}}  {n:>14}  {cold:>8.1f}  {p50:>11.1f}  {p95:>11.1f}")
    print(f"\n{args.repeat} warm repeats per interaction; cold = all engine caches cleared first. Python "
          f"{sys.version.split()[0]}. Target: well under 100 ms per interaction.")
    page_rerun_table(max(5, args.repeat // 3))
    return 0


def page_rerun_table(repeat: int) -> None:
    """The whole page script on each interaction (engine + building tables, charts and widgets), as Streamlit
    reruns it server-side; only the browser's drawing is left out. An upper bound: AppTest waits for the script
    thread by polling in 5 ms sleeps, which is counted too."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    page = str(Path(__file__).resolve().parents[1] / "pages" / "calculator.py")
    at = AppTest.from_file(page, default_timeout=60).run()
    steps = [("change context", lambda: at.text_input(key="w_ctx").set_value("8192")),
             ("change context back", lambda: at.text_input(key="w_ctx").set_value("4096")),
             ("change batch", lambda: at.number_input(key="w_batch").set_value(4)),
             ("change batch back", lambda: at.number_input(key="w_batch").set_value(1))]
    times: dict[str, list[float]] = {name: [] for name, _ in steps}
    for _ in range(repeat):
        for name, change in steps:
            change()
            started = time.perf_counter()
            at.run()
            times[name].append((time.perf_counter() - started) * 1000)
            assert not at.exception, at.exception
    print(f"\nWhole page rerun (AppTest, default page: Llama 3.1 8B, 7 precisions, 4 devices), {repeat} repeats;"
          " an upper bound (includes AppTest's 5 ms polling)")
    print(f"{'interaction':<22}  {'p50 ms':>8}  {'p95 ms':>8}")
    for name, values in times.items():
        values.sort()
        print(f"{name:<22}  {statistics.median(values):>8.1f}  {values[max(0, int(0.95 * len(values)) - 1)]:>8.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
