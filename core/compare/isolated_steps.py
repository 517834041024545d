"""The comparison's heavy steps (export, each quantizer) as forked children (step_process), with their results
rebuilt from JSON in the comparison process; see step_process for why."""

from __future__ import annotations

import resource
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.compare.common.memory import how_to_raise
from core.compare.common.step_process import StepCrashed, run_isolated
from core.compare.measure.variant_status import quantized_nothing
from core.compare.prepare.model import PreparedModel, prepare_model
from core.compare.techniques import QuantizedModel, quantize
from core.errors import QuantLensError

if TYPE_CHECKING:
    from core.compare.common.settings import CompareOptions
    from core.compare.inputs.feeds import Feeds


def _limit_text() -> str:
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return "" if limit == resource.RLIM_INFINITY else f" its {limit / 2**30:.1f} GiB memory limit"


def memory_error(what: str) -> QuantLensError:
    limit = _limit_text()
    return QuantLensError("resource_limit_memory", f"{what} needed more than{limit or ' the memory available'}; "
                                                   f"{how_to_raise()}, or try a smaller model.")


def _prepare_child(source: str, out_dir: str, name: str | None) -> dict[str, Any]:
    return asdict(prepare_model(source if source == "demo" else Path(source), Path(out_dir), name))


def export_error(exc: BaseException) -> QuantLensError:
    """An exporter failure as one sentence; protobuf's EncodeError (a graph over 2 GB) named as such."""
    kind = getattr(exc, "original_type", type(exc).__name__)
    text = " ".join(str(exc).split())
    if kind == "EncodeError" or "protobuf" in text.lower() or "2GB" in text or "2GiB" in text:
        return QuantLensError("model_too_large_single_file",
                              "The exported model is larger than ONNX's 2 GB single-file limit (protobuf could not "
                              "encode it); QuantLens compares models under 2 GB.")
    return QuantLensError("export_failed", f"Exporting the model failed with {kind}: {text[:200]}")


def prepare_isolated(source: Path | str, out_dir: Path, name: str | None) -> PreparedModel:
    """Export (torch, optimum) in a child: the comparison process never holds torch or the traced model."""
    try:
        data = run_isolated(_prepare_child, str(source), str(out_dir), name, uses_torch=True)
    except MemoryError:
        raise memory_error("Exporting the model to ONNX") from None
    except StepCrashed as exc:
        if exc.memory:
            raise memory_error(f"Exporting the model to ONNX ({exc.signal_name})") from None
        raise QuantLensError("export_failed", f"The exporter crashed ({exc.signal_name}) on this model.") from None
    except QuantLensError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the exporter raised, in the child or (torch loaded) here
        raise export_error(exc) from None
    data["fp32_path"] = Path(data["fp32_path"])
    data["model_dir"] = Path(data["model_dir"]) if data.get("model_dir") else None
    return PreparedModel(**data)


def _quantize_child(precision: str, fp32: str, out_dir: str, options: CompareOptions, feeds: Feeds) -> dict:
    from core.compare.judge.candidates import CandidateProbe  # numpy and the measuring: only in the child

    built = quantize(precision, Path(fp32), Path(out_dir), options, feeds, CandidateProbe)
    return {"model": asdict(built), "unchanged": quantized_nothing(Path(fp32), built.path, precision)}


def quantize_isolated(precision: str, fp32: Path, out_dir: Path, options: CompareOptions,
                      feeds: Feeds) -> tuple[QuantizedModel, bool]:
    """One precision's file and whether it converted nothing; raises what the quantizer raised (or StepCrashed)."""
    data = run_isolated(_quantize_child, precision, str(fp32), str(out_dir), options, feeds)
    model = data["model"]
    model["path"] = Path(model["path"])
    model["notes"] = tuple(model.get("notes") or ())
    return QuantizedModel(**model), bool(data["unchanged"])
