"""A shared link cannot make one page view (or one session) fan out into many Hub requests (threats round three)."""

from __future__ import annotations

import re

from tests.app.test_calculator_hub import page, shown


def _info_requests(local_hub) -> int:
    return sum(1 for r in local_hub.log if r.path.startswith("/api/models/"))


def test_a_link_naming_many_hub_ids_looks_up_only_the_first_eight_and_says_so(local_hub):
    at = page(hf=[f"nobody/model-{n}" for n in range(12)])
    assert not at.exception
    assert _info_requests(local_hub) == 8
    assert any(re.search(r"Only the first 8 .*4 more were left out", w) for w in shown(w.value for w in at.warning))
    assert len([e for e in shown(e.value for e in at.error) if "[hub_not_found]" in e]) == 8


def test_a_failed_lookup_is_not_asked_again_on_reruns(local_hub):
    at = page(hf="nobody/nothing", ctx="4096")
    assert any("[hub_not_found]" in e for e in shown(e.value for e in at.error))
    for ctx in ("8192", "16384", "32768"):
        at.text_input(key="w_ctx").set_value(ctx).run()
        assert any("[hub_not_found]" in e for e in shown(e.value for e in at.error))
    assert _info_requests(local_hub) == 1


def test_a_session_past_its_lookups_per_minute_is_told_to_wait(local_hub, monkeypatch):
    from core.sizing import hub_limits

    monkeypatch.setattr(hub_limits, "MAX_LOOKUPS_PER_MINUTE", 2)
    at = page(hf=["nobody/a", "nobody/b", "nobody/c"])
    errors = shown(e.value for e in at.error)
    assert sum("[hub_not_found]" in e for e in errors) == 2
    assert any("[hub_lookup_limit]" in e and "try again in" in e for e in errors)
    assert _info_requests(local_hub) == 2
