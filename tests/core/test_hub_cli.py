"""Specification of `python -m core size --hf ID`, run as a real subprocess against the local Hub on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench._shared import hub_server as hs

ROOT = Path(__file__).resolve().parents[2]


def _run(hub, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env |= {"HF_ENDPOINT": hub.url, "NO_PROXY": "127.0.0.1", "HF_HOME": str(ROOT / ".no-hf-home")}
    return subprocess.run([sys.executable, "-m", "core", "size", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_size_hf_prints_the_repos_own_format_first_with_predicted_and_published_sizes(local_hub):
    proc = _run(local_hub, "--hf", "big/llama-8b", "--context", "8192", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["model"]["source"] == "hub"
    assert report["model"]["parameters"] == 8_030_261_248
    assert report["estimates"][0]["precision"] == "bf16"
    assert report["estimates"][0]["weights_bytes"] == 2 * 8_030_261_248
    assert report["estimates"][0]["kv_cache_bytes"] == 8192 * 32 * 2 * 8 * 128 * 2
    hub = report["hub"]
    assert hub["commit"] == "fedcba9876543210fedcba9876543210fedcba98"
    assert hub["parameters_by_dtype"] == {"BF16": 8_030_261_248}
    weights = next(c for c in hub["checks"] if c["label"].startswith("Weights"))
    assert weights["predicted_bytes"] == weights["published_bytes"]
    assert hub["link"] == "/calculator?hf=big/llama-8b"


def test_size_hf_with_a_gguf_file_reads_the_files_header(local_hub):
    proc = _run(local_hub, "--hf", "tiny/llama-GGUF", "--file", "tiny-llama-Q8_0.gguf", "--context", "1000")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("tiny/llama-GGUF (tiny-llama-Q8_0.gguf): ")
    assert "stored as Q8_0" in proc.stdout
    assert "link: /calculator?hf=tiny/llama-GGUF&file=tiny-llama-Q8_0.gguf" in proc.stdout


def test_size_hf_errors_are_one_line_with_a_code(local_hub):
    proc = _run(local_hub, "--hf", "gated/llama")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.rstrip().endswith("[hub_gated]")
    assert "Traceback" not in proc.stderr


def test_size_hf_refuses_another_host_before_any_request(local_hub):
    proc = _run(local_hub, "--hf", "https://evil.example/org/name")
    assert proc.returncode == 1 and proc.stderr.rstrip().endswith("[hub_bad_id]")
    assert local_hub.requests == 0


def test_size_hf_reads_a_token_from_hf_token_without_it_on_the_command_line(local_hub):
    env_token = {"HF_TOKEN": hs.TOKEN}
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_ENDPOINT": local_hub.url, "NO_PROXY": "127.0.0.1", **env_token}
    proc = subprocess.run([sys.executable, "-m", "core", "size", "--hf", "secret/llama", "--format", "json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert hs.TOKEN not in proc.stdout + proc.stderr
