"""Hugging Face folder -> one ONNX file, with optimum's exporter.

Why optimum and not a hand-written torch.onnx.export: it knows each architecture's inputs, dynamic axes and
quirks (position ids, token type ids, attention-mask handling), so an uploaded BERT, GPT-2 or Llama-shaped
folder exports without model-specific code here.

Safety: the folder has been validated by core.gate.ingest before this runs (in a worker process). We still load
with `local_files_only=True`, `use_safetensors=True`, `trust_remote_code=False`, and re-save the graph under a
fixed name with every tensor inside the file, so nothing the folder says decides where we write.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import QuantLensError

# Opset 20: the newest torch's TorchScript exporter supports. INT4 embedding tables are dequantized after a plain
# Gather with standard ops (techniques/int4.py), so no technique needs a newer opset.
EXPORT_OPSET = 20
FP32_NAME = "model_fp32.onnx"

TASK_FEATURES = "feature-extraction"
TASK_CLASSIFICATION = "text-classification"
TASK_GENERATION = "text-generation"
TASK_OTHER = "other"  # an uploaded ONNX model that is none of the above (or unknown)


@dataclass(frozen=True)
class ExportedModel:
    """The FP32 ONNX file every other precision is derived from, plus what we learned on the way."""

    onnx_path: Path
    task: str
    model_dir: Path | None  # the HF folder (tokenizer files live there); None for an uploaded .onnx
    config: dict
    architecture: str | None
    seconds: float


def read_config(model_dir: Path) -> dict:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise QuantLensError("unsupported_file", "The model folder has no config.json.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QuantLensError("invalid_config", f"config.json is not valid JSON ({exc.__class__.__name__}).") from None
    if not isinstance(config, dict):
        raise QuantLensError("invalid_config", "config.json must hold a JSON object.")
    return config


def detect_task(config: dict, model_dir: Path | None = None) -> str:
    """Pick the export task from `architectures`, the way the Hub's pipeline tags do.

    *ForCausalLM / *LMHeadModel -> text-generation (exported with its KV cache, see core.compare.measure.generation);
    *ForSequenceClassification -> text-classification; anything else (BertModel, sentence encoders) ->
    feature-extraction. Image/audio classifiers and token taggers: core.compare.inputs.media_tasks.modality_task.
    """
    from core.compare.inputs.media_tasks import modality_task

    special = modality_task(config, model_dir)
    if special:
        return special
    architectures = config.get("architectures") or []
    names = [a for a in architectures if isinstance(a, str)]
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in names):
        return TASK_GENERATION
    if any(a.endswith("ForSequenceClassification") for a in names):
        return TASK_CLASSIFICATION
    return TASK_FEATURES


def _auto_class(task: str):
    import transformers

    from core.compare.inputs.media_tasks import LABEL_TASKS, auto_class

    if task in LABEL_TASKS:
        return auto_class(task)
    return {
        TASK_GENERATION: transformers.AutoModelForCausalLM,
        TASK_CLASSIFICATION: transformers.AutoModelForSequenceClassification,
        TASK_FEATURES: transformers.AutoModel,
    }[task]


def export_hf_folder(model_dir: Path, out_dir: Path, *, opset: int = EXPORT_OPSET) -> ExportedModel:
    """Export a validated HF folder to `out_dir/model_fp32.onnx` (FP32, dynamic batch and sequence axes)."""
    import onnx

    from core.compare.common.onnx_io import save_model_fixed
    from core.compare.prepare.limits import check_fits_single_file

    started = time.perf_counter()
    model_dir, out_dir = Path(model_dir).resolve(), Path(out_dir)
    config = read_config(model_dir)
    if "auto_map" in config:
        raise QuantLensError("remote_code_forbidden", "config.json asks for custom code (auto_map); QuantLens never runs it.")
    task = detect_task(config, model_dir)
    check_fits_single_file(model_dir, config)
    try:
        model = _auto_class(task).from_pretrained(
            str(model_dir), local_files_only=True, use_safetensors=True, trust_remote_code=False,
            dtype="float32",
        )
    except QuantLensError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise QuantLensError("export_failed", f"transformers could not build the model from this folder: {_short(exc)}") from None
    model.eval()

    from optimum.exporters.onnx import onnx_export_from_model

    staging = out_dir / "export-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        # A causal LM is exported with its KV cache (one graph that also reads a prompt from an empty cache):
        # generation is what users run, and optimum allows "-with-past" only without monolith.
        with_past = task == TASK_GENERATION
        onnx_export_from_model(model, str(staging), task=task + "-with-past" if with_past else task, opset=opset,
                               do_validation=False, monolith=not with_past)
    except (ValueError, KeyError, RuntimeError, TypeError, NotImplementedError) as exc:
        raise QuantLensError("export_failed", f"optimum could not export this model to ONNX: {_short(exc)}") from None
    del model  # the torch weights: freed before the graph is read back, not held on top of it
    from core.compare.common.memory import release_memory

    release_memory()
    exported = staging / "model.onnx"
    if not exported.is_file():
        raise QuantLensError("export_failed", "optimum produced no model.onnx for this model.")
    target = out_dir / FP32_NAME
    if _single_file(staging, exported):  # every tensor already inside: moved, not parsed and written again
        target.unlink(missing_ok=True)
        (out_dir / (FP32_NAME + ".data")).unlink(missing_ok=True)
        shutil.move(str(exported), str(target))
    else:
        save_model_fixed(onnx.load(str(exported), load_external_data=True), target)
    shutil.rmtree(staging, ignore_errors=True)
    architecture = next((a for a in config.get("architectures") or [] if isinstance(a, str)), None)
    return ExportedModel(target, task, model_dir, config, architecture, time.perf_counter() - started)


def _single_file(staging: Path, exported: Path) -> bool:
    """optimum wrote one self-contained graph under 2 GB: nothing beside it but its JSON/text side files (an
    external-data export leaves `model.onnx_data` or one file per tensor)."""
    from core.compare.common.onnx_io import MAX_SINGLE_FILE_BYTES

    others = [p for p in staging.iterdir() if p != exported]
    return exported.stat().st_size < MAX_SINGLE_FILE_BYTES and all(
        p.is_file() and p.suffix in (".json", ".txt", ".model") for p in others)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else (text or exc.__class__.__name__)
