"""First load of the home page: time to run app.py + the home page in a fresh process, next to the heavy imports
it avoids (torch, transformers, onnxruntime), measured side by side in one run.

    .venv/bin/python bench/bench_first_load.py [--rounds 5]

Each row is a fresh interpreter, so import caches of one row never help another.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "home page (app.py + pages/home.py, AppTest)": (
        "from streamlit.testing.v1 import AppTest; import sys;"
        f"at = AppTest.from_file({str(ROOT / 'app.py')!r}, default_timeout=60).run(); assert not at.exception;"
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules]; assert not heavy, heavy"
    ),
    "calculator page (AppTest)": (
        "from streamlit.testing.v1 import AppTest;"
        f"at = AppTest.from_file({str(ROOT / 'pages' / 'calculator.py')!r}, default_timeout=60).run();"
        "assert not at.exception"
    ),
    "import streamlit only": "import streamlit",
    "import torch (avoided at start-up)": "import torch",
    "import transformers (avoided)": "import transformers",
    "import onnxruntime (avoided)": "import onnxruntime",
}


def time_case(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    timings: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(rounds):  # interleaved, so background load hits every row alike
        for name, code in CASES.items():
            timings[name].append(time_case(code))
    print(f"First-load timings, fresh interpreter each, {rounds} rounds interleaved (seconds)")
    print(f"{'case':46} {'median':>8} {'min':>8} {'max':>8}")
    for name, values in timings.items():
        print(f"{name:46} {statistics.median(values):8.2f} {min(values):8.2f} {max(values):8.2f}")


if __name__ == "__main__":
    main()
