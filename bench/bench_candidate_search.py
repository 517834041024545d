"""How long the INT8 candidate search takes on small convolutional models, and what it judges them by.

Why: DNSMOS, a 1.1 MB speech-quality CNN, took 7.5 minutes (INT8 candidates 134 s, timing 184 s). The search now
builds and measures one recipe at a time, stops early when one is clearly best, and skips the rest past a time
budget (core.compare.techniques.int8_auto). Target: a ~1 MB model finishes well under a minute on this machine.

Models (random weights, built here with torch; no download, nothing taken from tests/):
- "dnsmos-like": ~1 MB CNN over a [1, 1, 120, 96] spectrogram, one score out (regression);
- "yolo-like": conv backbone with a YOLOv8-style head [1, 4+3, 256] (coordinates and scores in one tensor);
- "crnn-like": conv stack + bidirectional LSTM + linear to [1, T, 40] CTC scores (a text recognizer's shape).

Per model: `compare_model` in-process with fp32 + int8 (the page's defaults otherwise) and a printed table:
the output kind guessed, candidates measured / skipped, the INT8 step's seconds, the whole comparison's seconds,
the recipe kept and its judgment.

Run: .venv/bin/python bench/bench_candidate_search.py [--runs 10]
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


def _export(module, example, path: Path, names: tuple[str, str]) -> Path:
    import torch

    torch.onnx.export(module.eval(), example, str(path), input_names=[names[0]], output_names=[names[1]],
                      opset_version=17, dynamo=False)
    return path


def build_dnsmos_like(path: Path) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers, cin = [], 1
    for cout in (32, 64, 64, 128):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        cin = cout
    net = nn.Sequential(*layers, nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))
    return _export(net, torch.rand(1, 1, 120, 96), path, ("spectrogram", "mos"))


def build_yolo_like(path: Path) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Yolo(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                          nn.Conv2d(32, 32, 3, 1, 1), nn.ReLU())
            self.box, self.cls = nn.Conv2d(32, 4, 1), nn.Conv2d(32, 3, 1)
            nn.init.normal_(self.cls.weight, 0.0, 1.0)
            nn.init.constant_(self.cls.bias, -2.0)

        def forward(self, x):
            f = self.backbone(x)
            return torch.cat([torch.sigmoid(self.box(f)) * 320.0, torch.sigmoid(self.cls(f))], 1).flatten(2)

    return _export(Yolo(), torch.rand(1, 3, 64, 64), path, ("images", "output0"))


def build_crnn_like(path: Path) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Crnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d((2, 2)),
                                      nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d((2, 2)),
                                      nn.Conv2d(64, 96, 3, 1, 1), nn.ReLU(), nn.MaxPool2d((8, 1)))
            self.rnn = nn.LSTM(96, 64, bidirectional=True, batch_first=True)
            self.head = nn.Linear(128, 40)
            nn.init.constant_(self.head.bias, 0.0)
            self.head.bias.data[0] = 3.0  # blank-heavy, like a trained CTC head

        def forward(self, x):
            f = self.conv(x).squeeze(2).transpose(1, 2)  # [1, T, 96]
            return torch.softmax(self.head(self.rnn(f)[0]), -1)

    return _export(Crnn(), torch.rand(1, 3, 32, 128), path, ("x", "softmax"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    from core.compare.common.settings import CompareOptions
    from core.compare.pipeline import compare_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (("dnsmos-like", build_dnsmos_like), ("yolo-like", build_yolo_like),
                            ("crnn-like", build_crnn_like)):
            model = build(Path(tmp) / f"{name}.onnx")
            started = time.perf_counter()
            report = compare_model(model, CompareOptions(precisions=("int8",), reference="fp32", runs=args.runs),
                                   Path(tmp) / name)
            total = time.perf_counter() - started
            int8 = report.result("int8")
            settings = int8.settings
            rows.append((name, f"{model.stat().st_size / 1e6:.2f}", report.model["output_kind"],
                         str(len(settings.get("candidates", []))), str(len(settings.get("skipped", []))),
                         f"{report.timings.get('quantize_int8_seconds', 0):.1f}", f"{total:.1f}",
                         str(settings.get("chosen", settings.get("method_used", "-"))),
                         (int8.judgment or {}).get("sentence", "-")))
    header = ("model", "MB", "judged as", "measured", "skipped", "int8 s", "total s", "kept", "judgment")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
