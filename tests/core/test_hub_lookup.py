"""Specification of sizing a model by its Hugging Face id, against a local Hub on 127.0.0.1 (bench/_shared/hub_server.py).

Nothing here touches the internet: HF_ENDPOINT points huggingface_hub at the local server, which serves files made
by the real safetensors and gguf writers and counts every request and byte.
"""

from __future__ import annotations

import math

import pytest

from bench._shared import hub_server as hs
from core import sizing
from core.errors import QuantLensError
from core.sizing import hub
from core.units import GB
from tests.hub_fixtures import BIG_SHA, big_llama_config


def _tiny_weights_bytes() -> int:
    """FP16 bytes of the tiny Llama the local Hub serves (2 bytes per element of every tensor)."""
    return 2 * sum(math.prod(shape) for shape in hs.llama_tensor_shapes(hs.TINY_LLAMA).values())


def test_a_single_file_safetensors_repo_is_sized_in_at_most_three_requests_and_under_one_megabyte(local_hub):
    model = hub.lookup("tiny/llama")
    assert local_hub.requests <= 3, [r.path for r in local_hub.log]
    assert local_hub.body_bytes < 1_000_000
    assert model.requests == local_hub.requests
    assert model.kind == "safetensors"
    assert model.commit == "0123456789abcdef0123456789abcdef01234567"
    assert model.parameters_by_dtype == {"F16": _tiny_weights_bytes() // 2}
    assert model.spec.parameters == _tiny_weights_bytes() // 2
    assert model.stored_precision == "fp16"
    assert model.spec.architecture is not None and model.spec.architecture.num_kv_heads == 2


def test_a_repeated_lookup_makes_no_request(local_hub):
    first = hub.lookup("tiny/llama")
    local_hub.reset_log()
    again = hub.lookup("tiny/llama")
    assert local_hub.requests == 0
    assert again.requests == 0
    assert again.spec == first.spec


def test_the_cache_is_keyed_by_the_resolved_commit_so_another_revision_is_looked_up_afresh(local_hub):
    hub.lookup("tiny/llama")
    local_hub.reset_log()
    other = hub.lookup("tiny/llama", revision="v1")
    assert other.commit == "1" * 40
    assert local_hub.requests >= 1


def test_predicted_and_published_sizes_sit_side_by_side_and_agree_for_an_unquantized_repo(local_hub):
    model = hub.lookup("tiny/llama")
    weights = next(c for c in model.checks if c.label.startswith("Weights"))
    assert weights.published_bytes == _tiny_weights_bytes()
    assert weights.predicted_bytes == weights.published_bytes  # the engine's count from config.json is exact here
    files = next(c for c in model.checks if c.label.startswith("Files"))
    assert files.predicted_bytes == files.published_bytes


def test_a_sharded_8b_repo_is_sized_from_its_headers_without_reading_its_16_gb_of_weights(local_hub):
    model = hub.lookup("big/llama-8b")
    assert model.commit == BIG_SHA
    assert model.spec.parameters == 8_030_261_248  # Llama-3.1-8B's published parameter count
    assert model.parameters_by_dtype == {"BF16": 8_030_261_248}
    assert model.stored_weights_bytes == 2 * 8_030_261_248
    assert sum(size for _, size in model.weight_files) > 16 * GB
    assert local_hub.body_bytes < 1_000_000
    assert all(r.range is not None for r in local_hub.log if "/resolve/" in r.path)
    est = sizing.estimate(model.spec, "bf16", context=8192)
    assert est.kv_cache_bytes == 8192 * 32 * 2 * 8 * 128 * 2  # layers x (K,V) x kv heads x head_dim x 2 bytes


def test_an_awq_repo_is_sized_from_its_architecture_and_checked_against_the_bytes_it_really_holds(local_hub):
    model = hub.lookup("quant/llama-8b-awq")
    assert model.stored_precision == "AWQ-INT4"
    assert model.spec.parameters == 8_030_261_248  # packed int32 tensors would undercount
    check = next(c for c in model.checks if c.label.startswith("Weights"))
    assert check.published_bytes == model.stored_weights_bytes
    assert abs(check.error_percent) < 1.0
    assert set(model.parameters_by_dtype) == {"F16", "I32"}


def test_a_repo_without_a_config_still_gets_its_weights_sized(local_hub):
    model = hub.lookup("tiny/no-config")
    assert model.spec.parameters == _tiny_weights_bytes() // 2
    assert model.spec.architecture is None
    assert model.stored_weights_bytes == _tiny_weights_bytes()


def test_a_gguf_repo_lists_every_file_with_its_real_size_split_files_summed(local_hub):
    model = hub.lookup("tiny/llama-GGUF")
    assert model.kind == "gguf"
    names = {f.name: f for f in model.gguf_files}
    assert set(names) == {"tiny-llama-Q8_0.gguf", "split/tiny-llama-Q8_0-00001-of-00002.gguf"}
    split = names["split/tiny-llama-Q8_0-00001-of-00002.gguf"]
    repo = local_hub.repos["tiny/llama-GGUF"]
    assert split.size_bytes == sum(repo.files[p].size for p in split.parts)
    assert len(split.parts) == 2


def test_a_gguf_file_is_sized_from_its_own_header_kv_cache_included(local_hub):
    model = hub.lookup("https://huggingface.co/tiny/llama-GGUF/blob/main/tiny-llama-Q8_0.gguf")
    assert model.gguf_file == "tiny-llama-Q8_0.gguf"
    assert model.stored_precision == "Q8_0"
    assert model.stored_weights_bytes == hs.gguf_tensor_bytes(hs.TINY_LLAMA)
    assert model.gguf_types == {"Q8_0": hs.gguf_tensor_bytes(hs.TINY_LLAMA) - (64 + 2 * 64 * 2) * 4, "F32": (64 * 5) * 4}
    a = model.spec.architecture
    assert a is not None and (a.num_layers, a.hidden_size, a.num_kv_heads, a.vocab_size) == (2, 64, 2, 1000)
    # llama.cpp (the default runtime) allocates cells in multiples of 256: 1024 is exact under every rule
    assert sizing.estimate(model.spec, "Q8_0", context=1024).kv_cache_bytes == 1024 * 2 * 2 * 2 * 16 * 2
    header_check = model.checks[0]
    assert header_check.predicted_bytes == model.stored_weights_bytes
    assert header_check.published_bytes == local_hub.repos["tiny/llama-GGUF"].files["tiny-llama-Q8_0.gguf"].size


def test_a_split_gguf_is_sized_from_every_part(local_hub):
    model = hub.lookup("tiny/llama-GGUF", filename="split/tiny-llama-Q8_0-00002-of-00002.gguf")
    assert model.gguf_file == "split/tiny-llama-Q8_0-00001-of-00002.gguf"
    assert model.stored_weights_bytes == hs.gguf_tensor_bytes(hs.TINY_LLAMA)
    assert [f for f, _ in model.weight_files] == ["split/tiny-llama-Q8_0-00001-of-00002.gguf",
                                                  "split/tiny-llama-Q8_0-00002-of-00002.gguf"]


def test_a_gated_repo_without_a_token_says_what_to_do(local_hub):
    with pytest.raises(QuantLensError) as err:
        hub.lookup("gated/llama")
    assert err.value.code == "hub_gated"
    assert "licence" in err.value.message and "token" in err.value.message


def test_a_gated_repo_with_a_token_is_sized_and_the_token_is_not_kept(local_hub):
    model = hub.lookup("gated/llama", token=hs.TOKEN)
    assert model.spec.parameters == _tiny_weights_bytes() // 2
    assert all(r.authorization == f"Bearer {hs.TOKEN}" for r in local_hub.log)
    assert hs.TOKEN not in repr(model)
    assert hs.TOKEN not in repr(hub._results) and hs.TOKEN not in repr(hub._resolved)
    # a result that needed the user's token is not served to the next user without one
    local_hub.reset_log()
    with pytest.raises(QuantLensError) as err:
        hub.lookup("gated/llama")
    assert err.value.code == "hub_gated"


def test_a_private_repo_reads_as_not_found_without_a_token_and_is_sized_with_one(local_hub):
    with pytest.raises(QuantLensError) as err:
        hub.lookup("secret/llama")
    assert err.value.code == "hub_not_found"
    assert hub.lookup("secret/llama", token=hs.TOKEN).spec.parameters == _tiny_weights_bytes() // 2


@pytest.mark.parametrize(("status", "code"), [(429, "hub_rate_limited"), (500, "hub_unavailable"), (503, "hub_unavailable")])
def test_hub_failures_are_one_sentence_with_a_stable_code(local_hub, status, code):
    local_hub.fail_status = status
    with pytest.raises(QuantLensError) as err:
        hub.lookup("tiny/llama")
    assert err.value.code == code
    assert "\n" not in err.value.message and "http" not in err.value.message.lower()


def test_unknown_repo_revision_and_file_are_not_found(local_hub):
    for kwargs in ({"text": "nobody/nothing"}, {"text": "tiny/llama", "revision": "nope"},
                   {"text": "tiny/llama", "filename": "missing.gguf"}):
        with pytest.raises(QuantLensError) as err:
            hub.lookup(**kwargs)
        assert err.value.code == "hub_not_found", kwargs


def test_an_unreachable_hub_is_reported_as_offline(monkeypatch, online_hub):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    hub.clear_cache()
    with pytest.raises(QuantLensError) as err:
        hub.lookup("tiny/llama")
    assert err.value.code == "hub_offline"


def test_a_hostile_100_mb_header_is_refused_without_reading_it(local_hub):
    with pytest.raises(QuantLensError) as err:
        hub.lookup("hostile/huge-header")
    assert err.value.code == "hub_header_too_large"
    assert local_hub.body_bytes < 1_000_000


def test_a_server_that_ignores_range_still_costs_only_the_bytes_asked_for(local_hub):
    local_hub.ignore_range = True
    model = hub.lookup("big/llama-8b")
    assert model.spec.parameters == 8_030_261_248


def test_a_big_repo_predicted_bf16_matches_the_published_headers(local_hub):
    model = hub.lookup("big/llama-8b")
    spec = sizing.model_from_config(big_llama_config())
    check = next(c for c in model.checks if c.label.startswith("Weights"))
    assert check.predicted_bytes == sizing.weights_bytes(spec, "bf16") == check.published_bytes


def test_a_hub_that_does_not_answer_is_a_timeout(local_hub, monkeypatch):
    monkeypatch.setattr(hub, "TIMEOUT_S", 0.5)
    local_hub.stall.set()
    with pytest.raises(QuantLensError) as err:
        hub.lookup("tiny/llama")
    assert err.value.code == "hub_timeout"


def test_a_repo_with_too_many_files_to_list_is_refused(local_hub, monkeypatch):
    monkeypatch.setattr(hub, "MAX_FILES", 2)
    with pytest.raises(QuantLensError) as err:
        hub.lookup("big/llama-8b")
    assert err.value.code == "hub_repo_too_large"
    assert local_hub.requests == 1  # refused after the file list, before any file is read


def test_a_gguf_type_after_the_repo_id_picks_that_file_the_way_llama_cpp_and_ollama_name_it(local_hub):
    from core.sizing.hub_quant import lookup

    for text in ("tiny/llama-GGUF:Q8_0", "hf.co/tiny/llama-GGUF:q8_0", "https://huggingface.co/tiny/llama-GGUF:Q8_0"):
        model = lookup(text)
        assert model.gguf_file == "tiny-llama-Q8_0.gguf" and model.stored_precision == "Q8_0"  # not the split copy
        assert model.ref.quant == "Q8_0"
    with pytest.raises(QuantLensError) as err:
        lookup("tiny/llama-GGUF:Q4_K_M")
    assert err.value.code == "hub_not_found" and "it has Q8_0" in err.value.message
