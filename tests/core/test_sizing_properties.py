"""Property tests: memory never shrinks when context, batch or bits grow; bad input is always a QuantLensError."""

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import sizing
from core.errors import QuantLensError
from core.sizing.architecture import architecture_from_config, parameter_count, parse_config_json, parse_param_count
from core.sizing.kv_cache import KV_PRECISIONS
from core.sizing.overhead import RUNTIMES
from core.sizing.precisions import PRECISIONS, get_precision, parse_precision_list
from tests.core.sizing_reference import CONFIGS

MODELS = [sizing.model_from_config(c, name) for name, c in CONFIGS.items()] + [sizing.model_from_params("13B")]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

models = st.sampled_from(MODELS)
precisions = st.sampled_from([p.name for p in PRECISIONS])
runtimes = st.sampled_from(sorted(RUNTIMES))
kv_precisions = st.sampled_from(sorted(KV_PRECISIONS))
contexts = st.integers(min_value=0, max_value=1_000_000)
batches = st.integers(min_value=1, max_value=256)


@FAST
@given(models, precisions, runtimes, kv_precisions, contexts, contexts, batches)
def test_total_memory_never_shrinks_as_context_grows(model, precision, runtime, kv, c1, c2, batch):
    lo, hi = sorted((c1, c2))
    a = sizing.estimate(model, precision, lo, batch, kv, runtime)
    b = sizing.estimate(model, precision, hi, batch, kv, runtime)
    assert a.kv_cache_bytes <= b.kv_cache_bytes
    assert a.total_min_bytes <= b.total_min_bytes
    assert a.total_bytes <= b.total_bytes
    assert a.total_max_bytes <= b.total_max_bytes


@FAST
@given(models, precisions, runtimes, kv_precisions, st.integers(1, 200_000), batches, batches)
def test_total_memory_never_shrinks_as_batch_grows(model, precision, runtime, kv, context, b1, b2):
    lo, hi = sorted((b1, b2))
    a = sizing.estimate(model, precision, context, lo, kv, runtime)
    b = sizing.estimate(model, precision, context, hi, kv, runtime)
    assert a.total_bytes <= b.total_bytes and a.kv_cache_bytes <= b.kv_cache_bytes


@FAST
@given(models, runtimes, st.integers(0, 200_000), batches)
def test_more_bits_per_weight_never_needs_less_memory(model, runtime, context, batch):
    ideal = sorted((p for p in PRECISIONS if p.is_ideal), key=lambda p: p.bits_per_weight)
    totals = [sizing.estimate(model, p, context, batch, "fp16", runtime).total_bytes for p in ideal]
    assert totals == sorted(totals)


@FAST
@given(models, st.integers(1, 200_000), batches)
def test_more_kv_bits_never_needs_less_memory(model, context, batch):
    order = ["q4_0", "fp8", "q8_0", "fp16", "fp32"]
    kv = [sizing.estimate(model, "int4", context, batch, k).kv_cache_bytes for k in order]
    assert kv == sorted(kv)


@FAST
@given(models, precisions, contexts, batches)
def test_min_typical_max_are_ordered_and_bytes_are_integers(model, precision, context, batch):
    e = sizing.estimate(model, precision, context, batch)
    assert e.total_min_bytes <= e.total_bytes <= e.total_max_bytes
    assert e.total_bytes == e.weights_bytes + e.kv_cache_bytes + e.overhead_bytes
    assert all(isinstance(v, int) for v in (e.weights_bytes, e.kv_cache_bytes, e.overhead_bytes, e.total_bytes))


@FAST
@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(), st.none(), st.booleans(), st.lists(st.integers())))
def test_any_parameter_count_input_gives_a_number_or_a_quantlens_error(value):
    try:
        n = parse_param_count(value)
    except QuantLensError:
        return
    assert isinstance(n, int) and n >= 1


@FAST
@given(models, st.one_of(st.integers(), st.floats(), st.text(max_size=8), st.none()),
       st.one_of(st.integers(), st.floats(), st.none()), st.text(max_size=10), st.text(max_size=10),
       st.text(max_size=12))
def test_bad_estimate_arguments_are_quantlens_errors_never_crashes(model, context, batch, kv, runtime, precision):
    with contextlib.suppress(QuantLensError):
        sizing.estimate(model, precision, context, batch, kv, runtime)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
config_keys = st.sampled_from(sorted({k for c in CONFIGS.values() for k in c} | {
    "head_dim", "layer_types", "n_routed_experts", "kv_lora_rank", "q_lora_rank", "text_config", "auto_map",
    "moe_intermediate_size", "mlp_only_layers", "first_k_dense_replace", "num_experts"}))


@FAST
@given(st.sampled_from(sorted(CONFIGS)), st.dictionaries(config_keys, json_values, max_size=4))
def test_mutated_configs_give_an_architecture_or_a_quantlens_error(base, patch):
    try:
        arch = architecture_from_config(CONFIGS[base] | patch)
    except QuantLensError:
        return
    assert parameter_count(arch) >= 1
    model = sizing.model_from_config(CONFIGS[base] | patch)
    for p in ("int4", "Q4_K_M", "AWQ-INT4"):
        assert sizing.estimate(model, p, 4096, 2).total_bytes > 0


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_upload_bytes_never_crash_the_config_parser(data):
    try:
        cfg = parse_config_json(data)
        sizing.model_from_config(json.loads(json.dumps(cfg)))
    except QuantLensError:
        pass


@FAST
@given(st.text(max_size=40))
def test_any_precision_text_is_a_precision_or_a_quantlens_error(text):
    try:
        get_precision(text)
        parse_precision_list(text)
    except QuantLensError:
        pass
