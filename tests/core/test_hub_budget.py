"""The Hub lookup's budget rules, each on its own: which hosts a redirect may reach, who gets the token, which file
names are plain paths, how JSON is counted before it is parsed, and the per-view / per-session lookup limits."""

from __future__ import annotations

import pytest

from core.errors import QuantLensError
from core.sizing import hub
from core.sizing.hub_http import HubHttp, count_json_tokens, deadline_s, redirect_allowed, sends_token
from core.sizing.hub_limits import MAX_IDS_PER_VIEW, SessionLookupLimit, capped_ids

HF = "https://huggingface.co"


@pytest.mark.parametrize("target", [
    "https://huggingface.co/api/models/a/b", "https://cdn-lfs.hf.co/repos/x", "https://cdn-lfs-us-1.hf.co/x",
    "https://cas-bridge.xethub.hf.co/xet-bridge-us/x", "https://cdn-lfs.huggingface.co/x", "https://hf.co/a/b"])
def test_the_real_hub_may_redirect_to_its_own_cdn_hosts(target):
    assert redirect_allowed(HF, target)


@pytest.mark.parametrize("target", [
    "https://evil.example/x", "http://cdn-lfs.hf.co/x", "https://hf.co.evil.example/x", "https://evilhf.co/x",
    "file:///etc/passwd", "https://169.254.169.254/latest/meta-data", "ftp://cdn-lfs.hf.co/x"])
def test_the_real_hub_may_not_redirect_anywhere_else(target):
    assert not redirect_allowed(HF, target)


def test_a_mirror_or_local_endpoint_may_redirect_only_within_its_own_origin():
    local = "http://127.0.0.1:8123"
    assert redirect_allowed(local, "http://127.0.0.1:8123/other/path")
    for target in ("http://127.0.0.1:8124/x", "http://localhost:8123/x", "https://127.0.0.1:8123/x",
                   "https://cdn-lfs.hf.co/x"):
        assert not redirect_allowed(local, target), target


def test_the_token_goes_only_to_the_endpoint_never_to_a_cdn_or_other_host():
    assert sends_token(HF, "https://huggingface.co/a/b/resolve/main/config.json")
    assert not sends_token(HF, "https://cdn-lfs.hf.co/repos/x")
    assert not sends_token("http://127.0.0.1:8123", "http://127.0.0.1:8124/x")
    http = HubHttp(HF, "hf_secret_token_for_this_test_only")
    assert http._headers_for("https://huggingface.co/api/models/a/b", None)["authorization"].endswith("only")
    cdn = http._headers_for("https://cas-bridge.xethub.hf.co/x", None)
    assert not any(k.lower() == "authorization" for k in cdn)
    assert cdn["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("name", ["config.json", "model-00001-of-00002.safetensors", "sub/dir/m-Q4_K_M.gguf",
                                  "weird name (1).gguf", "a.b/c..d.gguf"])
def test_plain_file_names_inside_the_repo_are_accepted(name):
    assert hub.plain_repo_path(name)


@pytest.mark.parametrize("name", ["../../../../etc/passwd.gguf", "/etc/passwd.gguf", "a/../../b.gguf", "a\\b.gguf",
                                  "a\0.gguf", "a\n.gguf", "", "a//b.gguf", "./a.gguf", "a/.", None, 7, "x" * 1001])
def test_file_names_that_leave_the_repo_or_hide_something_are_refused(name):
    assert not hub.plain_repo_path(name)


def test_json_values_are_counted_as_an_upper_bound_without_parsing():
    import json

    for text in ('{"a":[[],[],[]]}', '{"a":{"b":1,"c":[1,2]}}', "[]", '{"t":{"dtype":"F16","shape":[2,3]}}'):
        values = 0
        stack = [json.loads(text)]
        while stack:
            v = stack.pop()
            values += 1
            stack.extend(v.values() if isinstance(v, dict) else v if isinstance(v, list) else ())
        assert count_json_tokens(text.encode()) >= values, text


def test_the_deadline_comes_from_the_environment_within_sane_bounds(monkeypatch):
    monkeypatch.setenv("QUANTLENS_HUB_DEADLINE_S", "12.5")
    assert deadline_s() == 12.5
    for bad in ("0", "-3", "nope", "100000"):
        monkeypatch.setenv("QUANTLENS_HUB_DEADLINE_S", bad)
        assert deadline_s() == 30.0


def test_one_view_looks_up_at_most_eight_distinct_ids_and_says_how_many_were_left_out():
    ids = [f"org/model-{n}" for n in range(300)]
    kept, warning = capped_ids(ids + ids)
    assert kept == ids[:MAX_IDS_PER_VIEW] and "292 more" in warning
    assert capped_ids(["a/b", "a/b", "c/d"]) == (["a/b", "c/d"], None)


def test_a_session_starts_at_most_its_share_of_lookups_per_minute():
    limit = SessionLookupLimit(per_minute=3)
    for t in (0.0, 1.0, 2.0):
        limit.take(now=t)
    with pytest.raises(QuantLensError) as err:
        limit.take(now=30.0)
    assert err.value.code == "hub_lookup_limit" and "31 s" in err.value.message
    limit.take(now=60.5)  # the first one has left the window
