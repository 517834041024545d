"""A hostile Hub (bench/hostile_hub.py on 127.0.0.1, reached through HF_ENDPOINT) gets one line and nothing more.

Threats round three (issue 20): each case below once cost a lookup ~1 GB, ran past 50 s, contacted another host or
asked for a path outside the repo. Each is now refused with a stable code, within a 512 MB budget; the lookups run
in a fresh Python each (bench/hostile_hub.measure_lookup), whose peak RSS above its RSS before the lookup is the
generous bound checked. No timing is asserted: the trickle cases run with a 3 s deadline (their first byte comes
after 5 s) and must end with `hub_deadline`; every other case gets a 300 s deadline, so a loaded machine cannot turn
its answer into a deadline.
"""

from __future__ import annotations

import pytest

from bench import hostile_hub as hh
from core.errors import QuantLensError

BUDGET_MIB = 512
SLACK_S = 300  # the deadline where the deadline is not what is tested

EXPECTED = {
    "gguf-string-arrays": "hub_header_too_large",
    "gguf-199k-tensors": "hub_bad_gguf",
    "safetensors-lists": "hub_too_large",
    "gzip-info": "hub_too_large",
    "trickle-info": "hub_deadline",
    "trickle-config": "hub_deadline",
    "trickle-headers": "hub_deadline",
    "redirect-config": "hub_redirect_refused",
    "redirect-info": "hub_redirect_refused",
    "passwd-gguf": "hub_bad_file_name",
}


@pytest.fixture(scope="module")
def hostile():
    server = hh.start(trickle_s=5.0)
    yield server
    server.close()


def test_every_hostile_case_has_an_expected_refusal():
    assert set(EXPECTED) == set(hh.CASES)


@pytest.mark.slow
@pytest.mark.parametrize("case", hh.CASES)
def test_a_hostile_hub_answer_is_refused_in_one_line_within_the_memory_budget(hostile, case):
    result = hh.measure_lookup(hostile.url, f"hostile/{case}", deadline_s=3 if case.startswith("trickle") else SLACK_S)
    assert result["code"] == EXPECTED[case], result
    assert "\n" not in result["message"] and result["message"].endswith(f"[{EXPECTED[case]}]")
    assert "Traceback" not in result["stderr"]
    assert result["rss_delta_mib"] < BUDGET_MIB, result
    assert hostile.elsewhere_log == []  # no case ever makes the client contact another host


@pytest.mark.slow
def test_the_honest_control_repo_is_sized_by_the_same_measured_lookup(hostile):
    result = hh.measure_lookup(hostile.url, "honest/tiny", deadline_s=SLACK_S)
    assert result["code"] == "ok", result


@pytest.mark.slow
def test_a_redirect_elsewhere_is_refused_naming_the_host_and_the_token_never_leaves_the_endpoint(hostile):
    hostile.log.clear()
    result = hh.measure_lookup(hostile.url, "hostile/redirect-config", token=hh.TOKEN, deadline_s=SLACK_S)
    assert result["code"] == "hub_redirect_refused"
    other_port = hostile.elsewhere_url.rsplit(":", 1)[1]
    assert f"127.0.0.1:{other_port}" in result["message"]
    assert hh.TOKEN not in result["message"]
    assert hostile.elsewhere_log == []  # refused before it is contacted: no request, so no token, reaches it
    assert any(r.authorization == f"Bearer {hh.TOKEN}" for r in hostile.log)  # the endpoint itself did get it


@pytest.mark.slow
def test_a_file_list_naming_a_path_outside_the_repo_is_never_requested(hostile):
    hostile.log.clear()
    result = hh.measure_lookup(hostile.url, "hostile/passwd-gguf", deadline_s=SLACK_S)
    assert result["code"] == "hub_bad_file_name"
    assert "passwd.gguf" in result["message"]
    assert [r.path.partition("?")[0] for r in hostile.log] == ["/api/models/hostile/passwd-gguf"]


# ---------------------------------------------------------------- in process: the rules, without a subprocess

@pytest.fixture
def hostile_endpoint(hostile, monkeypatch, online_hub):
    from core.sizing import hub

    monkeypatch.setenv("HF_ENDPOINT", hostile.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    hub.clear_cache()
    hostile.log.clear()
    yield hostile
    hub.clear_cache()


def test_a_failed_lookup_is_answered_from_the_cache_for_a_minute_without_asking_again(hostile_endpoint, monkeypatch):
    from core.sizing import hub

    for _ in range(3):  # a page rerun asks again each time
        with pytest.raises(QuantLensError) as err:
            hub.lookup("hostile/redirect-info")
        assert err.value.code == "hub_redirect_refused"
    assert len(hostile_endpoint.log) == 1
    assert hub.cached_failure(hub.parse_hub_ref("hostile/redirect-info")).code == "hub_redirect_refused"
    monkeypatch.setattr(hub, "FAILURE_TTL_S", 0.0)  # once the failure is old, the next lookup asks again
    with pytest.raises(QuantLensError):
        hub.lookup("hostile/redirect-info")
    assert len(hostile_endpoint.log) == 2


def test_a_lookup_with_a_token_is_never_answered_by_a_cached_token_less_failure(hostile_endpoint):
    from core.sizing import hub

    with pytest.raises(QuantLensError):
        hub.lookup("hostile/passwd-gguf")
    with pytest.raises(QuantLensError):
        hub.lookup("hostile/passwd-gguf", token=hh.TOKEN)
    assert len(hostile_endpoint.log) == 2


def test_the_failure_cache_is_bounded(hostile_endpoint, monkeypatch):
    from core.sizing import hub

    monkeypatch.setattr(hub, "FAILURE_CACHE_SIZE", 3)
    for n in range(6):
        with pytest.raises(QuantLensError):
            hub.lookup(f"nobody/missing-{n}")
    assert len(hub._failures) == 3


def test_the_deadline_is_configurable_and_ends_a_trickling_lookup(hostile_endpoint, monkeypatch):
    from core.sizing import hub

    monkeypatch.setenv("QUANTLENS_HUB_DEADLINE_S", "1.5")
    with pytest.raises(QuantLensError) as err:
        hub.lookup("hostile/trickle-headers")
    assert err.value.code == "hub_deadline"
    assert "within its 1.5 s budget" in err.value.message


@pytest.mark.slow
@pytest.mark.parametrize("case", hh.AT_CAP_CASES)
def test_a_repo_just_under_every_limit_is_read_within_the_memory_budget(hostile, case):
    result = hh.measure_lookup(hostile.url, f"at-cap/{case}", deadline_s=SLACK_S)
    assert result["code"] == "ok", result  # under the limits, a lookup is sized, not refused
    assert result["rss_delta_mib"] < BUDGET_MIB, result


def test_lookups_past_the_concurrent_slots_wait_then_say_the_server_is_busy(hostile_endpoint, monkeypatch):
    import threading

    from core.sizing import hub

    monkeypatch.setattr(hub, "_slots", threading.BoundedSemaphore(1))
    monkeypatch.setattr(hub, "SLOT_WAIT_S", 0.2)
    hub._slots.acquire()  # another session's lookup holds the only slot
    try:
        with pytest.raises(QuantLensError) as err:
            hub.lookup("honest/tiny")
        assert err.value.code == "hub_busy"
        assert hostile_endpoint.log == []
    finally:
        hub._slots.release()
    assert hub.lookup("honest/tiny").ref.repo_id == "honest/tiny"
