"""Whatever goes wrong, `python -m core` answers with one line and a non-zero exit, never a traceback."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_an_unknown_subcommand_is_one_line_with_exit_2():
    result = run("resize")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unexpected_failure_inside_a_command_is_still_one_line(tmp_path):
    # a config.json that is a directory: the engine never planned for it, the CLI still answers in one line
    (tmp_path / "config.json").mkdir()
    result = run("size", "--config", str(tmp_path / "config.json"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
