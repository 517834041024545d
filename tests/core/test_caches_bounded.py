"""Every in-process cache has a ceiling: a stream of distinct lookups cannot grow the server's memory for ever.

(Issue 20: the resolved-revision cache held 2,001 entries after 2,000 lookups.) Against the local Hub of
bench/_shared/hub_server.py; the ceiling is lowered so that a few lookups reach it.
"""

from __future__ import annotations

from core.sizing import hub


def test_the_resolved_revision_cache_keeps_only_the_most_recent_lookups(local_hub, monkeypatch):
    monkeypatch.setattr(hub, "CACHE_SIZE", 2)
    hub.clear_cache()
    hub.lookup("tiny/llama")
    hub.lookup("tiny/llama", revision="v1")
    hub.lookup("big/llama-8b")
    assert len(hub._resolved) == 2 and len(hub._results) == 2
    assert ("tiny/llama", "") not in hub._resolved  # the least recently used went first
    local_hub.reset_log()
    hub.lookup("big/llama-8b")  # still cached: no request
    assert local_hub.requests == 0
    for _ in range(5):
        hub.lookup("tiny/llama")
        hub.lookup("tiny/llama", revision="v1")
    assert len(hub._resolved) <= 2 and len(hub._results) <= 2
