"""Threat 25: a library below the release that fixed a known model-loading vulnerability is caught at start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.errors import QuantLensError
from core.versions import FLOORS, Floor, check_dependency_floors, is_below, parse_version, require_dependency_floors

OLD = {"onnx": "1.16.1", "onnxruntime": "1.17.0", "torch": "2.5.1", "transformers": "4.40.0",
       "streamlit": "1.30.0", "python": "3.11.4"}
NEW = {"onnx": "1.23.2", "onnxruntime": "1.32.0", "torch": "2.13.0+cpu", "transformers": "4.57.6",
       "streamlit": "1.67.0", "python": "3.12.12"}


@pytest.mark.parametrize(("installed", "minimum", "below"), [
    ("1.20.9", "1.21.0", True), ("1.21.0", "1.21.0", False), ("1.21", "1.21.0", False), ("2.13.0+cpu", "2.10.0", False),
    ("1.21.0rc2", "1.21.0", True), ("1.21.0.post1", "1.21.0", False), ("10.0", "9.9.9", False), ("garbage", "1.0", True),
])
def test_version_comparison(installed, minimum, below):
    assert is_below(installed, minimum) is below


def test_parse_version_reads_local_and_pre_release_tags():
    assert parse_version("2.13.0+cpu") == ((2, 13), True)
    assert parse_version("1.26.0rc1") == ((1, 26), False)


def test_every_library_that_opens_models_has_a_floor():
    assert {f.name for f in FLOORS} >= {"onnx", "onnxruntime", "torch", "transformers", "streamlit", "python"}


def test_old_libraries_are_each_reported_in_one_sentence():
    problems = check_dependency_floors(version_of=OLD.get)
    assert len(problems) == len(OLD)
    assert all(p.count(". ") == 0 and p.endswith(".") for p in problems)
    assert any(p.startswith("onnx 1.16.1 must be upgraded to 1.21.0") for p in problems)


def test_current_pins_pass():
    assert check_dependency_floors(version_of=NEW.get) == []


def test_blocking_floors_refuse_and_python_only_warns():
    with pytest.raises(QuantLensError) as caught:
        require_dependency_floors(version_of=OLD.get)
    assert caught.value.code == "dependency_too_old" and "python" not in caught.value.message.split(" ")[0]
    warnings = require_dependency_floors(version_of=dict(NEW, python="3.11.7").get)
    assert len(warnings) == 1 and warnings[0].startswith("python 3.11.7 should be upgraded")


def test_python_312_has_its_own_floor():
    floor = [f for f in FLOORS if f.name == "python"]
    assert check_dependency_floors(floor, {"python": "3.12.10"}.get) and not check_dependency_floors(
        floor, {"python": "3.12.11"}.get)


def test_missing_libraries_are_not_reported():
    assert check_dependency_floors([Floor("not-installed-lib", "1.0", "x")]) == []


def test_the_installed_environment_meets_every_blocking_floor():
    """The pinned requirements themselves: CI fails here if a pin drifts below a floor."""
    require_dependency_floors()


def test_the_check_imports_no_heavy_library():
    code = ("import sys; from core.versions import check_dependency_floors; check_dependency_floors(); "
            "print([m for m in ('torch', 'onnx', 'onnxruntime', 'transformers', 'streamlit') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
