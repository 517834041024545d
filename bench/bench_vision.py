"""QuantLens' INT8 vs the plain onnxruntime scripts on a CNN and a vision transformer, measured side by side.

Models (random weights, built here; no download): a ResNet-style CNN (Conv+BN+ReLU blocks, 224x224, ~2.8 M
parameters) exported with torch.onnx at opset 11 and with its weights behind Constant nodes, the way
PaddleOCR's published files are; and a ViT-Tiny-shaped image classifier (hidden 192, 12 layers, patch 16,
224x224, 1,000 labels) saved as a Hugging Face folder. `--onnx FILE` adds any published .onnx (e.g. the
rapidocr-onnxruntime wheel's PaddleOCR det/rec/cls files).

Per model: QuantLens' default INT8 (`compare_model`, fp32+int8, exactly what the page runs) against
- plain dynamic: `quantize_dynamic(model, out)` with its defaults, on the file as uploaded;
- plain static: `quantize_static(model, out, reader)` with its defaults (QDQ, per-tensor, every op, MinMax),
  calibrated on the same inputs QuantLens used.
A plain script that fails says so (PaddleOCR-style constants: "Expected ... to be an initializer").
All files are loaded at once and timed turn by turn (interleaved, shuffled per round); speed-ups are paired
(median over rounds of fp32_ms / variant_ms in the same round); cosine is per output vs FP32, over all inputs
at once, averaged over outputs.

Target (issue 12): QuantLens never behind the plain script on the trade-off it recommends: its INT8 at
least as accurate and no slower (within the noise floor) than each plain script that runs, or FP32
recommended by its verdict when no INT8 beats FP32.

Run: .venv/bin/python bench/bench_vision.py [--rounds 30] [--threads 2] [--onnx FILE ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_resnet_like(path: Path) -> Path:
    """A small ResNet (stem + 4 stages of 2 basic blocks, widths 32-256), exported with Constant-node weights."""
    import onnx
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.skip(x))

    widths, layers, cin = (32, 64, 128, 256), [], 32
    for i, w in enumerate(widths):
        layers += [Block(cin, w, 1 if i == 0 else 2), Block(w, w, 1)]
        cin = w
    net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), *layers,
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 1000)).eval()
    for m in net.modules():  # non-trivial BN statistics, as a trained net has
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    staged = path.with_suffix(".staged.onnx")
    torch.onnx.export(net, torch.zeros(1, 3, 224, 224), str(staged), opset_version=11, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}}, dynamo=False)
    model = onnx.load(str(staged))
    staged.unlink()
    consts = []
    for init in model.graph.initializer:  # weights as Constant nodes, as Paddle's exporter writes them
        consts.append(onnx.helper.make_node("Constant", [], [init.name], name=f"const_{init.name}", value=init))
    model.graph.ClearField("initializer")
    nodes = consts + list(model.graph.node)
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)
    onnx.save_model(model, str(path))
    return path


def build_vit_tiny(path: Path) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(image_size=224, patch_size=16, hidden_size=192, num_hidden_layers=12, num_attention_heads=3,
                       intermediate_size=768, num_labels=1000)
    ViTForImageClassification(config).save_pretrained(path, safe_serialization=True)
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(path)
    return path


def plain_variants(original: Path, feeds: list[dict], out_dir: Path) -> dict[str, Path | str]:
    """What ORT's one-liners give, each on the file as the user has it; a failure is kept as its message."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_dynamic, quantize_static

    from core.compare.common.onnx_io import quiet_ort_logging, short_error

    quiet_ort_logging()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    result: dict[str, Path | str] = {}
    for label, run in (("plain quantize_dynamic", lambda p: quantize_dynamic(str(original), str(p))),
                       ("plain quantize_static", lambda p: quantize_static(str(original), str(p), Reader()))):
        path = out_dir / (label.replace(" ", "_") + ".onnx")
        try:
            run(path)
            result[label] = path
        except Exception as exc:  # ORT's quantizers raise ValueError/RuntimeError/KeyError/AssertionError
            result[label] = short_error(exc)
    return result


def bench_model(name: str, source: Path, work: Path, rounds: int, threads: int) -> list[str]:
    import numpy as np

    from core.compare.common.settings import CompareOptions
    from core.compare.measure.evaluate import make_session, time_interleaved
    from core.compare.pipeline import compare_model
    from core.compare.prepare.model import PreparedModel
    from core.compare.prepare.model_feeds import build_feeds

    out = work / "quantlens"
    started = time.perf_counter()
    report = compare_model(source, CompareOptions(precisions=("fp32", "int8"), reference="fp32", runs=5,
                                                  threads=threads), out)
    quantlens_s = time.perf_counter() - started
    int8 = report.result("int8")
    fp32 = out / report.result("fp32").file_name
    prepared = PreparedModel(fp32, report.model["task"], name, "onnx" if source.is_file() else "hf_folder",
                             source if source.is_dir() else None, _config(source), None, 0.0)
    feeds = build_feeds(prepared, None, CompareOptions())
    original = source if source.is_file() else fp32  # an HF folder's "upload" is its export
    variants: dict[str, Path | str] = {"FP32": fp32, f"QuantLens INT8 ({int8.label})": out / int8.file_name}
    variants.update(plain_variants(original, feeds.calibration, work))
    failed = {k: v for k, v in variants.items() if isinstance(v, str)}
    paths = {k: v for k, v in variants.items() if isinstance(v, Path)}
    sessions = {k: make_session(p, threads) for k, p in paths.items()}
    outputs = {k: [s.run(None, f) for f in feeds.per_input] for k, s in sessions.items()}
    for s in sessions.values():
        s.run(None, feeds.latency)
    load = os.getloadavg()[0]
    times = time_interleaved(sessions, feeds.latency, rounds)
    base = np.array(times["FP32"])
    lines = [f"\n{name} | input {[list(v.shape) for v in feeds.latency.values()]} | {threads} threads | {rounds} "
             f"interleaved rounds | load average {load:.2f} on {os.cpu_count()} cores | QuantLens run {quantlens_s:.0f} s",
             f"{'variant':52s} {'size MB':>8s} {'x smaller':>9s} {'p50 ms':>8s} {'speed-up':>8s} {'cosine':>8s}"]
    stats = {}
    for k, p in paths.items():
        # per output over all inputs at once (as QuantLens measures): a detector's all-zero map on one input
        # has no cosine of its own
        cos = np.mean([_cosine(np.concatenate([np.ravel(o[j]) for o in outputs["FP32"]]),
                               np.concatenate([np.ravel(o[j]) for o in outputs[k]]))
                       for j in range(len(outputs["FP32"][0]))])
        speed = float(np.median(base / np.array(times[k])))
        ratio = fp32.stat().st_size / p.stat().st_size
        stats[k] = (speed, float(cos), ratio)
        lines.append(f"{k:52s} {p.stat().st_size / 1e6:8.2f} {ratio:9.2f} {np.median(times[k]):8.2f} "
                     f"{speed:7.2f}x {cos:8.4f}")
    for k, message in failed.items():
        lines.append(f"{k:52s} FAILED: {message[:110]}")
    ql = next(k for k in stats if k.startswith("QuantLens"))
    lines.append(f"QuantLens verdict: {int8.verdict} - {int8.verdict_note}")
    for k in stats:
        if k.startswith("plain"):
            pair = float(np.median(np.array(times[k]) / np.array(times[ql])))
            ok = (stats[ql][1] >= stats[k][1] - 1e-3 and pair >= 0.95) or int8.verdict in ("use_fp32",)
            lines.append(f"[{'met' if ok else 'MISSED'}] QuantLens vs {k}: {pair:.2f}x its speed (paired), cosine "
                         f"{stats[ql][1]:.4f} vs {stats[k][1]:.4f}, {stats[ql][2]:.2f}x vs {stats[k][2]:.2f}x smaller")
    for k in failed:
        lines.append(f"[met] {k} failed on this model; QuantLens INT8 ran ({stats[ql][0]:.2f}x FP32, cosine "
                     f"{stats[ql][1]:.4f})")
    del sessions
    return lines


def _config(source: Path) -> dict:
    import json

    path = source / "config.json"
    return json.loads(path.read_text()) if source.is_dir() and path.is_file() else {}


def _cosine(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def run(rounds: int = 30, threads: int = 2, extra_onnx: list[Path] | None = None) -> None:
    print("INT8 on vision models: QuantLens default vs plain onnxruntime scripts (random weights: plumbing and "
          "speed, not accuracy on real images)")
    with tempfile.TemporaryDirectory(prefix="quantlens-bench-vision-") as tmp:
        tmp = Path(tmp)
        models = [("ResNet-style CNN, Paddle-style constants, opset 11", build_resnet_like(tmp / "cnn.onnx")),
                  ("ViT-Tiny-shaped image classifier (HF folder)", build_vit_tiny(tmp / "vit"))]
        models += [(p.name, p) for p in extra_onnx or []]
        for i, (name, source) in enumerate(models):
            work = tmp / f"work{i}"
            work.mkdir()
            for line in bench_model(name, source, work, rounds, threads):
                print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--onnx", type=Path, nargs="*", default=[], help="more published .onnx files to bench")
    args = parser.parse_args()
    run(args.rounds, args.threads, args.onnx)


if __name__ == "__main__":
    main()
