"""A real `streamlit run app.py` and Debian's Chromium driven by Playwright.

The server is started once per test session on a free loopback port; every test gets a fresh browser page.
Screenshots land in test-artifacts/screenshots/ (CI keeps them; the README's screenshot is made from them).
Outside CI a missing /usr/bin/chromium skips these tests with a reason; in CI it fails them, so a broken
install step cannot hide behind a skip.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

# Playwright's expect() waits 5 s by default; on a busy 2-core machine a Streamlit rerun can take longer.
expect.set_options(timeout=30_000)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("streamlit did not become healthy in time")


@contextlib.contextmanager
def running_app(log_dir: Path, env_overrides: dict[str, str | None] | None = None) -> Iterator[str]:
    """`streamlit run app.py` on a free loopback port; fails the test if the server logged a traceback.
    `env_overrides` sets (or, with None, removes) environment variables for this server only."""
    port = _free_port()
    log_path = log_dir / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    for key, value in (env_overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()  # reaped: nothing is still writing the log we read next
        server_log = log_path.read_text(errors="replace")
        assert "Traceback" not in server_log, f"the server logged a traceback:\n{server_log[-4000:]}"


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture()
def fresh_server_url(tmp_path: Path) -> Iterator[str]:
    """A server no session has visited yet (some routing only goes wrong on a fresh process)."""
    with running_app(tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (/usr/bin/chromium); `make browser` installs it")
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium); `make browser` installs it as root")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, server_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def save_screenshot(pg, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # Streamlit scrolls inside its main container, so a "full page" screenshot would stop at the viewport:
    # grow the viewport to the content's height for the picture, then put it back.
    size = pg.viewport_size or {"width": 1400, "height": 1000}
    height = pg.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], [data-testid=\"stAppViewContainer\"]')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    pg.set_viewport_size({"width": size["width"], "height": min(max(int(height) + 40, size["height"]), 8000)})
    pg.wait_for_timeout(700)
    pg.screenshot(path=str(path), full_page=True)
    pg.set_viewport_size(size)
    return path


def wait_for_app(pg, timeout_ms: int = 60_000) -> None:
    """Streamlit renders after the websocket connects; wait until no element is still running."""
    pg.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    pg.wait_for_selector("[data-testid='stMain'] [data-testid='stElementContainer']", timeout=timeout_ms)
    pg.evaluate("() => { window.__qlSettle = undefined; }")
    # Settled = no run in progress, no element greyed out as stale, and the same number of elements on two polls
    # in a row (250 ms apart): a condition, not a fixed pause, so a busy machine only makes it wait longer.
    pg.wait_for_function(
        """() => {
            const busy = document.querySelector('[data-testid="stStatusWidget"]')
                || document.querySelector('[data-stale="true"]');
            const n = document.querySelectorAll('[data-testid="stElementContainer"]').length;
            const s = window.__qlSettle || (window.__qlSettle = {n: -1, same: 0});
            if (busy || n !== s.n) { s.n = n; s.same = 0; return false; }
            s.same += 1;
            return s.same >= 2;
        }""",
        polling=250,
        timeout=timeout_ms,
    )


def assert_no_exception(pg) -> None:
    assert pg.locator("[data-testid='stException']").count() == 0, "the page shows an exception"
