"""`python -m core size` as a script sees it: JSON shape, CSV, table, one-line errors and exit codes."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.sizing_reference import CONFIGS

ROOT = Path(__file__).resolve().parents[2]


def size(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", "size", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_json_has_the_documented_shape_with_integer_bytes():
    out = size("--params", "7B", "--precision", "fp16,int8,int4", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {"name", "parameters", "active_parameters"} <= set(doc["model"])
    assert doc["model"]["parameters"] == doc["model"]["active_parameters"] == 7 * 10**9
    rows = {e["precision"]: e for e in doc["estimates"]}
    assert [e["precision"] for e in doc["estimates"]] == ["fp16", "int8", "int4"]
    assert rows["int4"]["weights_bytes"] == 3_500_000_000 and rows["fp16"]["total_bytes"] == 14 * 10**9
    for e in doc["estimates"]:
        for key in ("weights_bytes", "kv_cache_bytes", "overhead_bytes", "total_bytes"):
            assert type(e[key]) is int


def test_config_file_with_context_gives_exact_kv_and_moe_active_parameters(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIGS["mixtral-8x7b"]))
    doc = json.loads(size("--config", str(path), "--precision", "fp16", "--context", "4096", "--format", "json").stdout)
    assert doc["model"]["parameters"] == 46_702_792_704
    assert doc["model"]["active_parameters"] == 12_879_925_248
    assert doc["estimates"][0]["kv_cache_bytes"] == 4096 * 131_072


def test_catalog_model_with_gpu_reports_fit_and_all_precisions():
    out = size("--model", "Llama 3.1 70B", "--precision", "all", "--context", "8192", "--gpu", "rtx-4090",
               "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert len(doc["estimates"]) > 40
    int4 = next(e for e in doc["estimates"] if e["precision"] == "int4")
    assert int4["hardware"][0]["fits"] is False
    assert any("70B" in n and "false" in n for n in doc["notes"])


def test_csv_has_a_header_and_one_row_per_precision():
    out = size("--params", "70B", "--precision", "fp16,int4", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["precision"] for r in rows] == ["fp16", "int4"]
    assert rows[1]["weights_bytes"] == "35000000000"


def test_table_labels_gb_and_gib():
    out = size("--params", "7B", "--precision", "int4")
    assert out.returncode == 0
    assert "GB = 10^9 bytes, GiB = 2^30 bytes" in out.stdout and "3.50" in out.stdout


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [(("--params", "seven"), 1, "invalid_param_count"),
     (("--params", "7B", "--precision", "int5"), 1, "unknown_precision"),
     (("--model", "no-such-model"), 1, "unknown_model"),
     (("--config", "/no/such/config.json"), 1, "config_not_found"),
     (("--params", "7B", "--context", "-5"), 2, "invalid_context"),
     (("--params", "7B", "--gpu", "rtx-9999"), 1, "unknown_hardware"),
     (("--params", "7B", "--model", "gpt2"), 2, "not allowed"),
     ((), 2, "required"),
     (("--params", "7B", "--context", "lots"), 2, "invalid_context"),
     (("--params", "-7B"), 1, "Parameter count must be at least 1, got '-7B'")],
)
def test_bad_arguments_exit_non_zero_with_one_clear_line(args, code, needle):
    out = size(*args)
    assert out.returncode == code
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr


def test_a_non_json_config_file_is_one_line_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("import os; os.system('echo pwned')")
    out = size("--config", str(path))
    assert out.returncode == 1 and "config_invalid_json" in out.stderr and len(out.stderr.splitlines()) == 1


def test_a_fit_verdict_for_a_bare_parameter_count_says_the_kv_cache_was_not_counted():
    out = json.loads(size("--params", "7B", "--context", "100000", "--gpu", "rtx-4090", "--precision", "fp16",
                          "--format", "json").stdout)
    assert out["estimates"][0]["hardware"][0]["kv_cache_counted"] is False
    table = size("--params", "7B", "--context", "100000", "--gpu", "rtx-4090", "--precision", "fp16").stdout
    assert "KV cache not counted" in table


def test_a_fit_verdict_for_a_real_architecture_counts_the_kv_cache():
    out = json.loads(size("--model", "Llama 3.1 8B", "--context", "100000", "--gpu", "rtx-4090", "--precision", "fp16",
                          "--format", "json").stdout)
    hw = out["estimates"][0]["hardware"][0]
    assert hw["kv_cache_counted"] is True and hw["fits"] is False  # 13 GB of KV on top of 16 GB of weights


def test_mxfp4_is_accepted_as_the_name_people_use():
    assert size("--model", "gpt-oss-20b", "--precision", "mxfp4").returncode == 0


def test_context_accepts_128k_and_the_json_names_the_kv_rule_and_the_imatrix_assumption():
    doc = json.loads(size("--model", "openai/gpt-oss-20b", "--precision", "Q4_0,fp16", "--context", "128k",
                          "--imatrix", "--runtime", "vllm", "--format", "json").stdout)
    assert doc["settings"]["context"] == 131_072 and doc["settings"]["imatrix"] is True
    q4, fp16 = doc["estimates"]
    assert q4["gguf_imatrix"] is True and fp16["gguf_imatrix"] is None
    assert q4["kv_cache_rule"].startswith("vLLM")
    # OpenAI's card counts gpt-oss's active parameters without the input embedding (3.6B): both figures agree
    assert doc["model"]["active_parameters_without_embeddings"] == doc["model"]["active_parameters"] == 3_608_307_264


def test_the_runtime_changes_the_kv_figure_on_the_command_line():
    kv = {rt: json.loads(size("--model", "mistralai/Mistral-7B-v0.1", "--precision", "Q4_K_M", "--context", "32k",
                              "--runtime", rt, "--format", "json").stdout)["estimates"][0]["kv_cache_bytes"]
          for rt in ("llama.cpp", "vllm")}
    assert kv["llama.cpp"] == 4096 * 2**20 and kv["vllm"] == 512 * 2**20


def test_without_imatrix_the_table_says_which_gguf_rows_assume_none():
    out = size("--params", "7B", "--precision", "Q4_0,IQ2_XXS").stdout
    assert "GGUF Q4_0 (no imatrix)" in out and "(imatrix)" in out


def _keys(value, out: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            out.add(key)
            _keys(item, out)
    elif isinstance(value, list):
        for item in value:
            _keys(item, out)
    return out


def test_every_json_key_the_command_prints_is_documented_in_the_readme():
    """The JSON shape is written once, in the README; a key the CLI adds without documenting it fails here."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### `python -m core size`"):readme.index("### `python -m core compare`")]
    documented = set(re.findall(r'"([a-z_0-9]+)"', section))
    proc = size("--model", "Llama 3.1 8B", "--precision", "fp16,Q4_K_M", "--context", "8k", "--gpu", "rtx-4090",
               "--format", "json")
    assert proc.returncode == 0, proc.stderr
    missing = sorted(_keys(json.loads(proc.stdout), set()) - documented)
    assert missing == [], f"keys printed by `python -m core size` but not in the README: {missing}"
