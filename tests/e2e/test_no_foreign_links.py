"""No page shows a link or an image to another host, whatever a link, an upload or the Hub puts in it (threat 29).

Anyone can send a QuantLens link. Its values (and the names a Hub repo gives its files, and the `model_type` of a
config in the link) are echoed in warnings, verdicts, tables and captions; if any of them reached Streamlit's
Markdown live, the page would show the sender's "Session expired: sign in" link or load their image. This walks
every page in a real Chromium with hostile values for every query key the pages read (tests/security/page_keys.py
finds them in the source, so a new key is walked too), plus a hostile Hub stand-in and a hostile config, and fails
on any anchor, image, srcset, iframe, embed, CSS url() or network request whose host is not this server's.

One server (with HF_ENDPOINT at the hostile Hub) and one browser page serve the whole walk: it runs on a busy
2-core CI machine.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode, urlsplit

import pytest

from bench._shared import hub_server as hs
from tests.e2e.conftest import assert_no_exception, running_app, wait_for_app
from tests.security.page_keys import PAYLOADS, hostile_query, query_keys

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OUR_HOSTS = {"127.0.0.1", "localhost"}
OUR_SCHEMES = {"data", "blob", "about"}  # Streamlit's own inline assets
PAGES = ("", "calculator", "compare")  # home is the root

MARKDOWN_MODEL_TYPE = "x` ![t](https://evil.example/cfg.png) [Session expired: sign in](https://evil.example/cfg) `"

# Every URL-bearing place in the DOM, resolved against the page; CSS url() from computed styles of every element.
COLLECT = """() => {
  const out = [];
  const add = (what, v) => { if (v) out.push([what, new URL(v, location.href).href]); };
  for (const el of document.querySelectorAll('a, area')) add('a', el.getAttribute('href') || el.getAttribute('xlink:href'));
  for (const el of document.querySelectorAll('img, image, source, video, audio, track, iframe, frame, embed, script, input')) {
    add(el.tagName, el.getAttribute('src') || el.getAttribute('href') || el.getAttribute('xlink:href'));
    add(el.tagName, el.getAttribute('poster'));
    for (const part of (el.getAttribute('srcset') || '').split(',')) add('srcset', part.trim().split(/\\s+/)[0]);
  }
  for (const el of document.querySelectorAll('object')) add('object', el.getAttribute('data'));
  for (const el of document.querySelectorAll('link')) add('link', el.getAttribute('href'));
  for (const el of document.querySelectorAll('form')) add('form', el.getAttribute('action'));
  for (const el of document.querySelectorAll('*')) {
    const s = getComputedStyle(el);
    for (const prop of ['backgroundImage', 'listStyleImage', 'borderImageSource', 'maskImage', 'content', 'cursor']) {
      for (const m of (s[prop] || '').matchAll(/url\\(["']?([^"')]+)["']?\\)/g)) add('css ' + prop, m[1]);
    }
  }
  return out;
}"""


def foreign(urls: list[list[str]]) -> list[list[str]]:
    return [[what, url] for what, url in urls
            if urlsplit(url).scheme not in OUR_SCHEMES and urlsplit(url).hostname not in OUR_HOSTS]


def _cfg(model_type: str) -> str:
    cfg = dict(hs.TINY_LLAMA, model_type=model_type)
    return base64.urlsafe_b64encode(json.dumps(cfg).encode()).decode().rstrip("=")


def _hostile_hub(tmp) -> hs.FakeHub:
    """Repos whose names and file names are Markdown: what a real Hub lets anyone publish."""
    fake = hs.FakeHub()
    cfg = dict(hs.TINY_LLAMA)
    weights = hs.safetensors_file(hs.llama_tensor_shapes(cfg))
    fake.add("evil/www.evil.example", hs.HubRepo({"config.json": hs.HubFile(json.dumps(cfg).encode(), 0),
                                                  "model.safetensors": weights}))
    md_cfg = dict(cfg, model_type=MARKDOWN_MODEL_TYPE)
    fake.add("evil/md-config", hs.HubRepo({"config.json": hs.HubFile(json.dumps(md_cfg).encode(), 0),
                                           "model.safetensors": weights}))
    gguf = hs.gguf_file(tmp, cfg)
    fake.add("evil/gguf", hs.HubRepo({"[Session expired - sign in](https:evil.example).gguf": gguf,
                                      "![x](https:evil.example?img.png)-Q8_0.gguf": gguf}))
    fake.add("evil/gguf-html", hs.HubRepo({"<img src=https:evil.example?tt.png> Q8_0.gguf": gguf}))
    for repo in fake.repos.values():  # HubFile(size=0) above: the real length
        for name, f in repo.files.items():
            if f.size == 0:
                repo.files[name] = hs.HubFile(f.head, len(f.head))
    return fake


@pytest.fixture(scope="module")
def walk(tmp_path_factory, browser):
    """(base URL, browser page, foreign requests seen): one server, one hostile Hub, one page for the walk. The
    session's browser is reused: a second sync_playwright() in the same process fails once the first has started."""
    tmp = tmp_path_factory.mktemp("links")
    fake = _hostile_hub(tmp)
    hub_server, _thread = hs.start(fake)
    env = {"HF_ENDPOINT": fake.url, "HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None, "HF_TOKEN": None,
           "NO_PROXY": "127.0.0.1,localhost"}
    requests: list[str] = []
    try:
        with running_app(tmp, env) as url:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})

            def route(r):
                if urlsplit(r.request.url).hostname in OUR_HOSTS or urlsplit(r.request.url).scheme in OUR_SCHEMES:
                    r.continue_()
                else:  # never leaves the machine, but is counted
                    requests.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield url, page, requests
            context.close()
    finally:
        fake.released.set()
        hub_server.shutdown()
        hub_server.server_close()


def visit(walk, path: str, query: list[tuple[str, str]]) -> str:
    """Open the page with this query; return its visible text (word joiners dropped). Fails on foreign URLs."""
    url, page, requests = walk
    requests.clear()
    page.goto(f"{url}/{path}?{urlencode(query)}")
    wait_for_app(page)
    assert_no_exception(page)
    offenders = foreign(page.evaluate(COLLECT))
    assert offenders == [], (path, query, offenders)
    assert requests == [], (path, query, requests)
    return page.inner_text("[data-testid='stMain']").replace("\u2060", "")


def hover_chart_tooltips(page) -> list[str]:
    """Moves the mouse over the first chart's bars; returns the text of each Vega tooltip that showed (checking the
    page for foreign URLs while each is open)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    chart = page.locator("[data-testid='stVegaLiteChart']").first
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    seen = []
    for fx in (0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85):
        for fy in (0.6, 0.8, 0.9):
            page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            try:
                page.wait_for_selector("#vg-tooltip-element.visible", timeout=1500)
            except PlaywrightTimeout:
                continue  # no bar under the mouse here
            seen.append(page.inner_text("#vg-tooltip-element"))
            assert foreign(page.evaluate(COLLECT)) == []
            if len(seen) >= 4:
                return seen
    return seen


def test_the_collector_sees_a_foreign_link_image_and_css_url(walk):
    """The oracle is not blind: a link, an image, a srcset and a CSS url() to another host are each reported."""
    _, page, _ = walk
    visit(walk, "", [])
    page.evaluate("""() => {
        const d = document.createElement('div');
        d.innerHTML = '<a href="https://evil.example/a">a</a><img srcset="https://evil.example/s.png 2x">'
            + '<span style="background-image:url(//evil.example/c.png)">c</span><a href="/calculator">ours</a>';
        document.body.appendChild(d);
    }""")
    kinds = sorted(what for what, _ in foreign(page.evaluate(COLLECT)))
    assert kinds == ["a", "css backgroundImage", "srcset"], kinds
    _, _, requests = walk
    for _ in range(600):  # the browser's requests for the srcset image and the CSS url(), aborted and counted
        if {urlsplit(r).path for r in requests} >= {"/s.png", "/c.png"}:
            break
        page.wait_for_timeout(100)  # lets Playwright dispatch the route handler; a deadline, not a pause
    assert {urlsplit(r).path for r in requests} >= {"/s.png", "/c.png"}, requests


@pytest.mark.parametrize("path", PAGES)
def test_hostile_values_for_every_query_key_show_no_foreign_link_or_image(walk, path):
    keys = query_keys()
    rounds = range(len(PAYLOADS)) if path else range(1)
    for shift in rounds:
        text = visit(walk, path, hostile_query(keys, shift))
        if path == "calculator":  # the values were echoed (as text), not dropped: the walk looked at them
            assert "evil.example" in text and "Ignored" in text
        elif path == "compare":
            assert "evil.example" in text and "not valid" in text


def test_hub_repos_and_gguf_files_named_with_markdown_show_as_text(walk):
    query = [("src", "hf"), ("hf", "evil/www.evil.example"), ("hf", "evil/md-config"), ("hf", "evil/gguf"),
             ("hf", "evil/gguf-html"), ("gpu", "rtx-4090")]
    text = visit(walk, "calculator", query)
    assert "evil/www.evil.example" in text and "evil/md-config" in text
    assert "evil/gguf (![x](https:evil.example?img.png)-Q8_0.gguf)" in text  # a file name, shown as the text it is
    assert "evil/gguf-html (<img src=https:evil.example?tt.png> Q8_0.gguf)" in text
    _, page, requests = walk
    tooltips = hover_chart_tooltips(page)  # the charts' tooltips name the models: shown as text too
    assert tooltips and all("evil" in t for t in tooltips), tooltips
    assert foreign(page.evaluate(COLLECT)) == [] and requests == []
    refused = visit(walk, "calculator", [("hf", "evil/gguf"), ("file", "[Session expired - sign in](https:evil.example).gguf")])
    assert "Ignored hf=" in refused


@pytest.mark.parametrize("mode", ["inference", "qlora"])
def test_a_config_whose_model_type_is_markdown_shows_as_text(walk, mode):
    text = visit(walk, "calculator", [("src", "config"), ("cfg", _cfg(MARKDOWN_MODEL_TYPE)), ("gpu", "rtx-4090"),
                                      ("mode", mode)])
    assert "Uploaded config.json" in text
    if mode == "inference":
        assert "evil.example/cfg" in text  # the model_type is shown, as text
