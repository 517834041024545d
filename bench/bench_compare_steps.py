"""QuantLens's per-step time beside the plain onnxruntime call, per model kind, timed in pairs.

For each model (ONNX files given on the command line; by default a small CNN and an MLP built here, plus the
demo's FP32 export when --demo is given) and each precision, the QuantLens technique (core.compare.techniques,
what a comparison runs) and the plain ORT call a user would write are run alternately `--repeats` times:
- FP16: `onnxruntime.transformers.float16.convert_float_to_float16(model, keep_io_types=True)` + onnx.save
- INT8: `onnxruntime.quantization.quantize_dynamic(src, dst)` with its defaults
- INT4: `MatMulNBitsQuantizer(model).process()` with its defaults + save
The ratio column is the median over repeats of QuantLens time / plain time within the same pair (so load on the
shared machine cancels out); "failed" means that call raised on this model (the message is printed below).
Printed, never asserted. Run: .venv/bin/python bench/bench_compare_steps.py [MODEL.onnx ...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def plain_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))


def plain_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(str(src), str(dst))


def plain_int4(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)))
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)


PLAIN = {"fp16": plain_fp16, "int8": plain_int8, "int4": plain_int4}


def quantlens(precision: str, src: Path, out: Path, feeds) -> None:
    from core.compare.common.settings import CompareOptions
    from core.compare.judge.candidates import CandidateProbe
    from core.compare.techniques import quantize

    quantize(precision, src, out, CompareOptions(), feeds, CandidateProbe)


def timed(fn) -> tuple[float | None, str]:
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - a failing call is a result of the bench
        return None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
    return time.perf_counter() - started, ""


def default_models(folder: Path) -> list[Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))
    from test_compare_partial_results import build_logistic_regression, build_small_cnn

    from bench._shared.onnx_models import build_gemm_relu_onnx

    return [build_small_cnn(folder / "cnn.onnx"), build_gemm_relu_onnx(folder / "mlp.onnx", 512, 1024, 256),
            build_logistic_regression(folder / "sklearn_logreg.onnx")]


def feeds_for(path: Path):
    from core.compare.common.onnx_io import make_session
    from core.compare.inputs.feeds import array_feeds
    from core.compare.inputs.user_data import generated_feeds, input_specs

    return array_feeds(generated_feeds(input_specs(make_session(path, 1)), count=4), "generated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--demo", action="store_true", help="also the demo's FP32 export (exports first)")
    args = parser.parse_args()
    from core.compare.common.onnx_io import quiet_ort_logging

    quiet_ort_logging()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = list(args.models) or default_models(folder)
        if args.demo:
            from core.compare.inputs.demo import demo_model_dir
            from core.compare.prepare.export import export_hf_folder

            models.append(export_hf_folder(demo_model_dir(), folder / "demo").onnx_path)
        print(f"load: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs; {args.repeats} pairs per cell")
        print(f"{'model':28} {'step':5} {'QuantLens s':>12} {'plain ORT s':>12} {'ratio QL/plain':>15}")
        problems = []
        for model in models:
            feeds = feeds_for(model)
            for precision, plain in PLAIN.items():
                ours, theirs, ratios = [], [], []
                for i in range(args.repeats):
                    a, why_a = timed(lambda p=precision, m=model, f=feeds, i=i: quantlens(p, m, folder / f"ql_{i}.onnx", f))
                    b, why_b = timed(lambda pl=plain, m=model, i=i: pl(m, folder / f"plain_{i}.onnx"))
                    if a is not None:
                        ours.append(a)
                    if b is not None:
                        theirs.append(b)
                    if a is not None and b is not None:
                        ratios.append(a / b)
                    for who, why in (("QuantLens", why_a), ("plain", why_b)):
                        if why and (model.name, precision, who) not in {p[:3] for p in problems}:
                            problems.append((model.name, precision, who, why))

                def cell(values):
                    return f"{statistics.median(values):.2f}" if values else "failed"

                ratio = f"{statistics.median(ratios):.2f}x" if ratios else "-"
                print(f"{model.name[:28]:28} {precision:5} {cell(ours):>12} {cell(theirs):>12} {ratio:>15}")
        for name, precision, who, why in problems:
            print(f"note: {name} {precision} {who}: {why}")


if __name__ == "__main__":
    main()
