"""The one typed job a comparison is: what the page and `python -m core compare` hand to the worker.

Why a dataclass and not a dict built in two places: the page and the CLI each assembled the payload by hand
and could drift (a key spelled differently is a silent default in the worker). CompareJob says what a job is,
checks what a caller may put in it (the model and any inputs file must be inside the job folder, which is all
the confined worker can read), and turns into the JSON payload core.compare.pipeline.run_comparison_job reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import QuantLensError

TARGET = "core.compare.pipeline:run_comparison_job"


@dataclass(frozen=True)
class CompareJob:
    """One comparison: a model ("demo" or a validated file/folder in the job dir), options, inputs."""

    source: str | Path  # "demo", or the validated model inside job_dir
    options: dict  # CompareOptions.to_dict()
    texts: tuple[str, ...] | None = None  # None: the default texts (or generated inputs for an ONNX model)
    npz: Path | None = None  # arrays named after the model's inputs, inside job_dir
    files: tuple[Path, ...] | None = None  # images / WAVs (or zips of them) for image and audio models, in job_dir
    name: str | None = None  # shown as the model's name; never used for a path

    def payload(self, job_dir: Path) -> dict:
        """The JSON payload, refusing paths outside `job_dir` (the worker could not read them anyway)."""
        root = Path(job_dir).resolve()
        source = self.source
        if source != "demo":
            path = Path(source).resolve()
            if not path.is_relative_to(root):
                raise QuantLensError("bad_payload", "The model must be inside the job folder.")
            source = str(path)
        inputs: list[str] | dict | None = list(self.texts) if self.texts is not None else None
        if self.npz is not None:
            npz = Path(self.npz).resolve()
            if not npz.is_relative_to(root):
                raise QuantLensError("bad_payload", "The inputs file must be inside the job folder.")
            inputs = {"npz": str(npz)}
        if self.files is not None:
            staged = [Path(f).resolve() for f in self.files]
            if not all(f.is_relative_to(root) for f in staged):
                raise QuantLensError("bad_payload", "The input files must be inside the job folder.")
            inputs = {"files": [str(f) for f in staged]}
        return {"source": source, "options": dict(self.options), "inputs": inputs,
                "name": None if self.name is None else str(self.name)[:200]}
