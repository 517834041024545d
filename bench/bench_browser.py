"""Input change to new numbers on screen, in Chromium, for the calculator's default view.

What a visitor feels: from pressing Enter in the context box (or adding a precision) until the memory table shows
the new total. The engine's share is ~20 ms (bench_calculator.py); the rest is Streamlit rerunning the page and the
browser redrawing it. Each run opens a fresh page, waits until it has settled, changes one input and waits (polling
every animation frame) for the expected number to appear in a table cell.

Pass several app folders to compare them side by side on the same machine, interleaved run by run so a change in
load hits both alike, e.g. the current branch and main exported with `git archive main | tar -x -C /tmp/main`:

    .venv/bin/python bench/bench_browser.py --runs 7 . /tmp/main

Prints a table (median, min, max per app and change) and the paired ratio of medians against the first app.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import sizing  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
MODEL = "meta-llama/Llama-3.1-8B"
CELLS = '[data-testid="stDataFrame"] td, [data-testid="stTable"] td'
CELL_JS = """(text) => [...document.querySelectorAll('CELLS')]
    .some(td => td.textContent.trim() === text)""".replace("CELLS", CELLS)
NUMBER_JS = """(value) => [...document.querySelectorAll('CELLS')]
    .some(td => Math.abs(parseFloat(td.textContent) - value) < 0.0051)""".replace("CELLS", CELLS)


def start(app_dir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"], cwd=app_dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"{app_dir}: streamlit did not start")


def settle(pg) -> None:
    pg.wait_for_selector(CELLS, state="attached", timeout=60_000)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    pg.wait_for_function(CELL_JS, arg="GGUF Q4_K_M", timeout=60_000)


def total_gb(precision: str, context: int) -> float:
    e = sizing.estimate(sizing.model_from_catalog(MODEL), precision, context)
    return e.total_bytes / 1e9


def change_context(pg, url: str, run: int) -> float:
    new = 8192 + 1024 * run
    expected = total_gb("fp16", new)
    pg.goto(url + "/calculator")
    settle(pg)
    box = pg.get_by_label(re.compile(r"^Context")).and_(pg.locator("input"))
    box.fill(str(new))
    started = time.perf_counter()
    box.press("Enter")
    pg.wait_for_function(NUMBER_JS, arg=expected, polling="raf", timeout=60_000)
    return (time.perf_counter() - started) * 1000


def change_precision(pg, url: str, run: int) -> float:
    pg.goto(url + "/calculator")
    settle(pg)
    box = pg.get_by_label(re.compile(r"^Precisions")).and_(pg.locator("input"))
    box.click()
    box.fill("Q6_K")
    pg.get_by_role("option", name="GGUF Q6_K", exact=True).wait_for()
    started = time.perf_counter()
    box.press("Enter")
    pg.wait_for_function(CELL_JS, arg="GGUF Q6_K", polling="raf", timeout=60_000)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("apps", nargs="*", default=["."], help="app folders (each holds app.py)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    apps = [Path(a).resolve() for a in args.apps]
    servers = [start(a) for a in apps]
    changes = {"context": change_context, "precision": change_precision}
    times: dict[tuple[int, str], list[float]] = {(i, c): [] for i in range(len(apps)) for c in changes}
    load_before = os.getloadavg()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            pg = ctx.new_page()
            for _, url in servers:  # warm-up: first render, caches
                change_context(pg, url, -1)
            for run in range(args.runs):
                for name, fn in changes.items():
                    for i, (_, url) in enumerate(servers):
                        times[(i, name)].append(fn(pg, url, run))
            browser.close()
    finally:
        for proc, _ in servers:
            proc.terminate()
    load_after = os.getloadavg()
    print(f"Input change -> new numbers in Chromium, {args.runs} runs each, {os.cpu_count()} CPUs, load average "
          f"{load_before[0]:.1f} before / {load_after[0]:.1f} after")
    print(f"{'app':<28} {'change':<10} {'median ms':>10} {'min':>7} {'max':>7} {'vs first':>9}")
    for name in changes:
        base = statistics.median(times[(0, name)])
        for i, app in enumerate(apps):
            t = times[(i, name)]
            med = statistics.median(t)
            print(f"{str(app)[-28:]:<28} {name:<10} {med:>10.0f} {min(t):>7.0f} {max(t):>7.0f} {med / base:>8.2f}x")


if __name__ == "__main__":
    main()
