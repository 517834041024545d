"""Specification: the comparison process stays free of torch after export, and each step's measured memory
stays inside the budget the up-front check states (core.compare.common.memory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.compare.common.memory import GIB, estimated_peak_bytes
from core.compare.inputs.demo import demo_model_dir
from core.compare.inputs.feeds import FastTokenizer, load_tokenizer
from core.jobs.runner import JobLimits, job_directory

TEXTS = ["Hello world, this is a test.", "A much longer text " * 100, "", "naïve café ünïcode 東京"]


def test_the_tokenizer_loads_without_importing_torch():
    code = ("import sys; from core.compare.inputs.feeds import load_tokenizer; from core.compare.inputs.demo import demo_model_dir;"
            "t = load_tokenizer(demo_model_dir()); t('hello', truncation=True, max_length=8);"
            "print(type(t).__name__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert out == ["FastTokenizer", "False"]


def test_the_tokenizer_gives_transformers_ids_pad_and_text():
    from transformers import AutoTokenizer

    ours = load_tokenizer(Path(demo_model_dir()))
    theirs = AutoTokenizer.from_pretrained(demo_model_dir(), local_files_only=True)
    assert isinstance(ours, FastTokenizer) and ours.pad_token_id == theirs.pad_token_id
    for text in TEXTS:
        ids = ours(text, truncation=True, max_length=128)["input_ids"]
        assert ids == theirs(text, truncation=True, max_length=128)["input_ids"]
        assert ours.decode(ids) == theirs.decode(ids)


@pytest.mark.slow
def test_each_steps_measured_peak_stays_inside_the_stated_budget(tmp_path: Path):
    from core.jobs.runner import run_job

    root = tmp_path / "jobs"
    root.mkdir(mode=0o700)
    with job_directory(root) as job_dir:
        report = run_job("core.compare.pipeline:run_comparison_job",
                         {"source": "demo", "options": {"runs": 2, "warmup": 1}}, job_dir=job_dir,
                         limits=JobLimits(timeout_s=300, memory_bytes=2 * GIB))
    memory = report["environment"]["memory_mib"]
    assert {"prepare", "quantize_fp16", "quantize_int8", "quantize_int4", "comparison"} <= set(memory)
    assert not report["failed"]
    budget_mib = estimated_peak_bytes(report["model"]["parameters"]) >> 20
    # the limit is on address space (RLIMIT_AS), so that is what the budget must cover
    assert all(step["address_space_peak"] <= budget_mib for step in memory.values()), (budget_mib, memory)
    # the comparison process itself never loaded torch: well under what torch alone maps (about 1 GiB)
    assert memory["comparison"]["address_space_peak"] < memory["prepare"]["address_space_peak"]
