"""Causal LMs measured the way people use them: read a prompt once (prefill), then one token at a time (decode).

Why not one forward pass: a 128-token forward pass is compute-bound, so 4-bit weights that must be unpacked look
slower than FP32 there (MatMulNBits 0.82x on a Qwen2.5-0.5B shape); decoding reads every weight once per token
at batch 1, which is memory-bound, and that is where smaller weights pay. The exported graph carries the KV cache
(optimum's `text-generation-with-past`: inputs `past_key_values.<i>.key|value`, outputs `present.<i>.key|value`),
so a prompt runs with an empty past and each decode step feeds back the previous step's `present`.

Per variant this module gives: prefill latency of the latency prompt, decode tokens/s, perplexity on the user's
texts (the default texts when none), greedy continuations, and weights + KV memory (the KV bytes measured from
the `present` tensors, and predicted from config.json by core.sizing's kv_cache). Variants are timed turn by
turn in shuffled order, like the forward-pass latency, so a busy machine slows them all alike.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.compare.inputs.feeds import PAST_PREFIX, empty_past
from core.compare.measure.generation_stats import GenerationStats
from core.errors import QuantLensError

PRESENT_PREFIX = "present."
MAX_ROUNDS = 10  # each round is a whole prefill + decode per variant: 10 give a stable median


@dataclass(frozen=True)
class GenerationPlan:
    """What every variant generates for timing: the same prompt, the same number of decode steps."""

    prompt_ids: np.ndarray  # [1, prompt_tokens] int64
    steps: int
    rounds: int


@dataclass
class GenerationTiming:
    """Raw timings of one variant (milliseconds) and the KV cache it held after prompt + decode."""

    prefill_ms: list[float] = field(default_factory=list)
    decode_ms: list[float] = field(default_factory=list)  # one entry per decoded token, all rounds
    kv_cache_bytes: int = 0
    kv_dtype: str = "float32"


def past_names(input_names) -> list[str]:
    return [n for n in input_names if n.startswith(PAST_PREFIX)]


def _step_feed(input_names: set[str], ids: np.ndarray, past: dict[str, np.ndarray], past_len: int) -> dict:
    n = ids.shape[1]
    feed: dict[str, Any] = {"input_ids": ids.astype(np.int64)}
    if "attention_mask" in input_names:
        feed["attention_mask"] = np.ones((1, past_len + n), np.int64)
    if "position_ids" in input_names:
        feed["position_ids"] = np.arange(past_len, past_len + n, dtype=np.int64)[None, :]
    if "token_type_ids" in input_names:
        feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
    feed.update(past)
    return feed


def _next_past(output_names: list[str], outputs: list) -> dict[str, np.ndarray]:
    return {PAST_PREFIX + n[len(PRESENT_PREFIX):]: v for n, v in zip(output_names, outputs, strict=True)
            if n.startswith(PRESENT_PREFIX)}


def _empty_past_of(session) -> dict[str, np.ndarray]:
    from core.compare.inputs.user_data import input_specs

    return empty_past(input_specs(session))


def greedy_tokens(session, feed: dict, steps: int, eos_token_id: int | None = None) -> list[int]:
    """Greedy tokens after the prompt in `feed`: through the KV cache when the graph has one, else full passes."""
    from core.compare.measure.evaluate import greedy_continuation

    names = {i.name for i in session.get_inputs()}
    if not past_names(names):
        return greedy_continuation(session, feed, steps, eos_token_id)
    output_names = [o.name for o in session.get_outputs()]
    ids = np.asarray(feed["input_ids"])
    past, past_len, tokens = _empty_past_of(session), 0, []
    for _ in range(steps):
        outputs = session.run(None, _step_feed(names, ids, past, past_len))
        past_len += ids.shape[1]
        past = _next_past(output_names, outputs)
        token = int(np.asarray(outputs[0])[0, -1].argmax())
        tokens.append(token)
        if eos_token_id is not None and token == eos_token_id:
            break
        ids = np.array([[token]], np.int64)
    return tokens


def _generate_timed(session, plan: GenerationPlan, timing: GenerationTiming) -> None:
    names = {i.name for i in session.get_inputs()}
    output_names = [o.name for o in session.get_outputs()]
    ids, past, past_len = plan.prompt_ids, _empty_past_of(session), 0
    for step in range(plan.steps + 1):
        feed = _step_feed(names, ids, past, past_len)
        t0 = time.perf_counter()
        outputs = session.run(None, feed)
        elapsed = (time.perf_counter() - t0) * 1000
        (timing.prefill_ms if step == 0 else timing.decode_ms).append(elapsed)
        past_len += ids.shape[1]
        past = _next_past(output_names, outputs)
        ids = np.array([[int(np.asarray(outputs[0])[0, -1].argmax())]], np.int64)
    timing.kv_cache_bytes = int(sum(v.nbytes for v in past.values()))
    timing.kv_dtype = str(next(iter(past.values())).dtype) if past else "float32"


def time_generation(sessions: dict[str, Any], plan: GenerationPlan) -> dict[str, GenerationTiming]:
    """Prefill + `plan.steps` decode steps per variant, `plan.rounds` rounds, variants shuffled every round.

    Each variant decodes its own greedy tokens: the work per step is the same shape whatever the token is.
    """
    names = list(sessions)
    timings = {name: GenerationTiming() for name in names}
    order = random.Random(0)
    for _ in range(max(1, plan.rounds)):
        shuffled = names[:]
        order.shuffle(shuffled)
        for name in shuffled:
            _generate_timed(sessions[name], plan, timings[name])
    return timings


def make_plan(latency_ids: np.ndarray, steps: int, runs: int, max_positions: int) -> GenerationPlan:
    """The latency prompt, shortened if needed so that prompt + decoded tokens fit the model's positions."""
    steps = max(1, min(steps, max_positions - 1))
    prompt = np.asarray(latency_ids, dtype=np.int64)[:, : max(1, max_positions - steps)]
    return GenerationPlan(prompt, steps, max(1, min(runs, MAX_ROUNDS)))


def perplexity(logits: list[np.ndarray], input_ids: list[np.ndarray]) -> tuple[float | None, int]:
    """exp(mean negative log-likelihood) of each text's own next tokens; (None, 0) when no text has two tokens.

    Texts are scored one by one, each from its first token (the first token itself is not predicted).
    """
    total, count = 0.0, 0
    for lg, ids in zip(logits, input_ids, strict=True):
        lg = np.asarray(lg, dtype=np.float64).reshape(-1, np.asarray(lg).shape[-1])
        ids = np.asarray(ids).reshape(-1)
        if len(ids) < 2:
            continue
        pred, target = lg[:-1], ids[1:]
        z = pred - pred.max(-1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))
        total -= float(log_probs[np.arange(len(target)), target].sum())
        count += len(target)
    if not count:
        return None, 0
    return float(np.exp(total / count)), count


_KV_PRECISION = {"float32": "fp32", "float16": "fp16"}


def predicted_kv_cache_bytes(config: dict, context: int, kv_dtype: str) -> int | None:
    """What core.sizing's kv_cache predicts for this config and context (None if it cannot read the config)."""
    precision = _KV_PRECISION.get(kv_dtype)
    if not config or precision is None:
        return None
    try:
        from core.sizing.architecture import architecture_from_config
        from core.sizing.kv_cache import kv_cache_bytes

        return int(kv_cache_bytes(architecture_from_config(config), context, 1, precision))
    except (QuantLensError, KeyError, ValueError, TypeError):
        return None


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else 0.0


def generation_stats(timing: GenerationTiming, plan: GenerationPlan, *, logits: list[np.ndarray],
                     input_ids: list[np.ndarray], continuation: str, prompt: str, weights_bytes: int,
                     config: dict, text_source: str, fp32: GenerationTiming | None):
    """One variant's GenerationStats (report.py), with speed-ups against FP32 measured in the same rounds."""
    ppl, tokens = perplexity(logits, input_ids)
    prefill, decode = _median(timing.prefill_ms), _median(timing.decode_ms)
    context = plan.prompt_ids.shape[1] + plan.steps
    fp32_prefill = _median(fp32.prefill_ms) if fp32 else 0.0
    fp32_decode = _median(fp32.decode_ms) if fp32 else 0.0
    return GenerationStats(
        prompt_tokens=int(plan.prompt_ids.shape[1]), decode_tokens=plan.steps, rounds=plan.rounds,
        prefill_ms=prefill, decode_ms_per_token=decode,
        decode_tokens_per_s=1000.0 / decode if decode else 0.0,
        prefill_speedup_vs_fp32=fp32_prefill / prefill if prefill and fp32_prefill else 0.0,
        decode_speedup_vs_fp32=fp32_decode / decode if decode and fp32_decode else 0.0,
        perplexity=ppl, perplexity_tokens=tokens, perplexity_text=text_source,
        prompt=prompt, continuation=continuation,
        weights_bytes=int(weights_bytes), kv_cache_bytes=timing.kv_cache_bytes, kv_cache_context_tokens=context,
        kv_cache_predicted_bytes=predicted_kv_cache_bytes(config, context, timing.kv_dtype),
        kv_dtype=timing.kv_dtype, weights_plus_kv_bytes=int(weights_bytes) + timing.kv_cache_bytes,
    )


def timed_hook(inner, plan: GenerationPlan, sink: dict[str, GenerationTiming], name: str):
    """An `after` hook for run_variant that also times generation while the session is loaded.

    Used when the variants are too large to hold together: they are then timed one after another.
    """
    def run(session):
        sink[name] = time_generation({name: session}, plan)[name]
        return inner(session) if inner else None

    return run


def stats_for(precision: str, timings: dict[str, GenerationTiming], plan: GenerationPlan, run, feeds,
              weights_bytes: int, config: dict):
    """GenerationStats of one variant from its run (logits on every text, continuations) and its timing."""
    continuations = (run.extra.get("after") or {}) if isinstance(run.extra.get("after"), dict) else {}
    return generation_stats(
        timings[precision], plan, logits=[o[0] for o in run.outputs],
        input_ids=[f["input_ids"] for f in feeds.per_input], continuation=continuations.get(0, ""),
        prompt=feeds.labels[0] if feeds.labels else "", weights_bytes=weights_bytes, config=config,
        text_source=feeds.source, fp32=timings.get("fp32"))
