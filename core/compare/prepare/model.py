"""Any accepted source (the demo, a validated HF folder, a validated .onnx) → one FP32 ONNX file under a fixed name."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from core.compare.common.onnx_io import load_model_checked, save_model_fixed
from core.compare.common.settings import FILE_NAMES
from core.errors import QuantLensError


@dataclass
class PreparedModel:
    fp32_path: Path
    task: str
    name: str
    source_kind: str
    model_dir: Path | None
    config: dict
    architecture: str | None
    export_seconds: float


def prepare_model(source: Path | str, out_dir: Path, name: str | None) -> PreparedModel:
    from core.compare.prepare import export

    if str(source) == "demo":
        from core.compare.inputs.demo import DEMO_NAME, demo_model_dir

        exported = export.export_hf_folder(demo_model_dir(), out_dir)
        return PreparedModel(exported.onnx_path, exported.task, DEMO_NAME, "demo", exported.model_dir, exported.config,
                         exported.architecture, exported.seconds)
    path = Path(source)
    if path.is_dir():
        exported = export.export_hf_folder(path, out_dir)
        return PreparedModel(exported.onnx_path, exported.task, name or exported.architecture or "Hugging Face model",
                         "hf_folder", exported.model_dir, exported.config, exported.architecture, exported.seconds)
    if path.is_file():
        started = time.perf_counter()
        try:
            model = load_model_checked(path)
        except QuantLensError:
            raise
        except Exception as exc:  # onnx's protobuf parser: DecodeError and friends
            raise QuantLensError("invalid_onnx", f"The file is not a readable ONNX model ({exc.__class__.__name__}).") from None
        target = out_dir / FILE_NAMES["fp32"]
        save_model_fixed(model, target)
        return PreparedModel(target, export.TASK_OTHER, name or "uploaded ONNX model", "onnx", None, {}, None,
                         time.perf_counter() - started)
    raise QuantLensError("file_not_found", f"Model {path.name} does not exist.")
