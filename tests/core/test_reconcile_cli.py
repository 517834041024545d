"""`python -m core reconcile LOGFILE`: a published log beside the prediction, as a script sees it."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOGS = Path(__file__).parent / "data" / "logs"


def reconcile(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "reconcile", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, input=stdin, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_an_ollama_log_reads_its_gguf_type_and_shows_each_component_with_its_gap():
    out = reconcile(str(LOGS / "ollama_llama31_8b_q4km.log"), "--model", "meta-llama/Llama-3.1-8B", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["runtime"] == "ollama" and doc["precision"] == "Q4_K_M" and doc["facts"]["n_ctx"] == 8192
    rows = {c["component"]: c for c in doc["components"]}
    assert rows["KV cache"]["gap"] == 0 and abs(rows["Weights"]["gap_percent"]) < 1
    assert doc["link_value"].startswith("ollama.")


def test_a_vllm_v0_log_on_its_card_lands_within_fifteen_percent_when_told_what_it_profiled():
    # github.com/vllm-project/vllm/issues/10517: V0 profiled max_model_len (20000) tokens on an RTX 3090
    out = reconcile(str(LOGS / "vllm_v0_llama31_8b_rtx3090.log"), "--model", "meta-llama/Llama-3.1-8B",
                    "--gpu", "rtx-3090", "--max-num-batched-tokens", "20000", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = {c["component"]: c for c in json.loads(out.stdout)["components"]}
    # 10.7% here: the catalog's 24 GiB is more than the 23.58 GiB the driver reported in that log (with its total,
    # tests/core/test_sizing_reconcile.py lands within 10%)
    assert abs(rows["vLLM KV cache tokens"]["gap_percent"]) < 15


def test_a_log_from_stdin_and_a_log_with_nothing_to_read_are_one_line_each():
    out = reconcile("-", "--model", "meta-llama/Llama-3.1-8B", stdin="hello\n[link](http://x)\n")
    assert out.returncode == 1 and out.stderr.strip().endswith("[log_no_memory_lines]")
    out = reconcile(str(LOGS / "missing.log"), "--model", "meta-llama/Llama-3.1-8B")
    assert out.returncode == 1 and out.stderr.strip().endswith("[log_not_found]")
