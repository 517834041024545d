"""Run one model variant with onnxruntime and measure it; compare its outputs with the reference's.

What each number measures (so the page can say it plainly):
- load_ms: InferenceSession creation (graph optimisation, weight pre-packing) on the CPU execution provider.
- peak_memory_bytes: the peak resident memory (VmHWM) of the measuring process while the session is created
  and all inputs and warm-up runs go through it, minus the resident memory just before. Linux lets a process
  reset its own peak (`/proc/self/clear_refs` = 5); where that is not allowed (the job sandbox) a thread
  samples the resident memory every 5 ms instead, which can miss spikes shorter than that (`memory_method`
  says which). It includes weights, ORT's pre-packed copies and
  its arena, i.e. what you pay to load and run the model, not just the file size.
- latency_ms_p50 / p95: wall time of `session.run` on one fixed input (batch 1, the sequence length given),
  after warm-up runs, with `intra_op_num_threads` threads; variants are timed turn by turn (interleaved)
  when they fit in memory together, so a busy machine slows them all alike.
Quality is task-aware: embeddings (cosine, nearest-neighbour survival), classifiers (label agreement,
probability shift), causal LMs (top-1 next-token agreement, KL divergence), anything else (abs/rel errors).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.compare.common.onnx_io import make_session

MEMORY_PEAK = "peak_rss_delta"  # VmHWM after resetting it, minus RSS before
MEMORY_SAMPLED = "sampled_rss_delta"  # fallback: highest RSS seen by a 5 ms sampler thread, minus RSS before


@dataclass
class VariantRun:
    """Timings and outputs of one variant. `outputs[i]` are the output arrays for feed i."""

    load_ms: float
    peak_memory_bytes: int
    memory_method: str
    latency_ms_p50: float
    latency_ms_p95: float
    latency_runs: int
    threads: int
    output_names: list[str]
    outputs: list[list[np.ndarray]] = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict)


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_bytes() -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+)\s+kB", status)
    return int(match.group(1)) * 1024 if match else None


class _RssSampler:
    """Highest resident memory seen while running, polled every 5 ms on a daemon thread."""

    def __init__(self, interval_s: float = 0.005) -> None:
        import threading

        self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _rss_bytes())


def _release_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc only: hand freed arenas back to the OS
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_variant(path: Path, feeds: list[dict], latency_feed: dict, *, runs: int = 20, warmup: int = 3,
                threads: int = 2, after=None, keep_session: bool = False) -> VariantRun:
    """Load `path`, run every feed once (outputs kept), warm up on `latency_feed`, then time `runs` runs.

    With `keep_session=True` the timing is left to `time_interleaved` (the session stays loaded in
    `extra["session"]`), so several variants can be timed turn by turn: on a shared machine, load changes
    over seconds, and timing variants one after another would fold that drift into their ratios.
    `after(session)` runs while the session is loaded (e.g. greedy generation); its result is `extra["after"]`.
    """
    _release_memory()
    before = _rss_bytes()
    method = MEMORY_PEAK if _reset_peak() else MEMORY_SAMPLED
    sampler = None if method == MEMORY_PEAK else _RssSampler()
    started = time.perf_counter()
    session = make_session(path, threads)
    load_ms = (time.perf_counter() - started) * 1000
    names = [o.name for o in session.get_outputs()]
    outputs = [session.run(None, feed) for feed in feeds]
    for _ in range(max(1, warmup)):
        session.run(None, latency_feed)
    extra: dict[str, Any] = {"after": after(session)} if after else {}
    peak = _peak_bytes() if method == MEMORY_PEAK else sampler.stop()  # read before timing: no sampler running then
    if peak is None:
        method, peak = MEMORY_SAMPLED, _rss_bytes()
    times = [] if keep_session else time_session(session, latency_feed, runs)
    result = VariantRun(load_ms, max(0, peak - before), method, 0.0, 0.0, 0, threads, names, outputs, extra)
    if times:
        set_latency(result, times)
    if keep_session:
        extra["session"] = session
    else:
        del session
        _release_memory()
    return result


def time_session(session, feed: dict, runs: int) -> list[float]:
    times = []
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def time_interleaved(sessions: dict[str, Any], feed: dict, runs: int) -> dict[str, list[float]]:
    """Time each session once per round, `runs` rounds: every variant sees the same machine load.

    The order is shuffled every round (seeded, so runs are repeatable): a rotation keeps the cyclic order,
    so each variant would always run right after the same one and inherit its cache and thread state.
    """
    import random

    names = list(sessions)
    times: dict[str, list[float]] = {name: [] for name in names}
    order = random.Random(0)
    for _ in range(max(1, runs)):
        shuffled = names[:]
        order.shuffle(shuffled)
        for name in shuffled:
            t0 = time.perf_counter()
            sessions[name].run(None, feed)
            times[name].append((time.perf_counter() - t0) * 1000)
    return times


def set_latency(result: VariantRun, times: list[float]) -> None:
    result.latency_ms_p50 = float(np.percentile(times, 50))
    result.latency_ms_p95 = float(np.percentile(times, 95))
    result.latency_runs = len(times)


# ----------------------------------------------------------------------------------------------------------
# Quality metrics. Each returns (metrics: dict of floats, samples: list of per-input dicts, worst first).
# ----------------------------------------------------------------------------------------------------------


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if denom == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.dot(a, b) / denom)


def pooled_embeddings(outputs: list[list[np.ndarray]], names: list[str], masks: list[np.ndarray | None]) -> np.ndarray:
    """One vector per input: `sentence_embedding` if the model has it, else mean-pooled token states (mask-aware)."""
    index = names.index("sentence_embedding") if "sentence_embedding" in names else 0
    vectors = []
    for out, mask in zip(outputs, masks, strict=True):
        value = np.asarray(out[index], dtype=np.float64)
        if value.ndim == 3:  # [batch=1, seq, hidden]
            tokens = value[0]
            if mask is not None:
                weights = np.asarray(mask, dtype=np.float64).reshape(-1)[: tokens.shape[0], None]
                value = (tokens * weights).sum(0) / max(weights.sum(), 1.0)
            else:
                value = tokens.mean(0)
        vectors.append(value.reshape(-1))
    return np.stack(vectors)


def _ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return 1.0
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom else 1.0


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def embedding_quality(ref: np.ndarray, var: np.ndarray, labels: list[str]) -> tuple[dict, list[dict]]:
    """Cosine per input, plus whether each input's nearest neighbour (among the inputs) is still the same."""
    cos = np.array([_cosine(r, v) for r, v in zip(ref, var, strict=True)])
    metrics: dict[str, Any] = {"cosine_similarity_mean": float(cos.mean()), "cosine_similarity_min": float(cos.min())}
    n = len(ref)
    ref_nn = var_nn = None
    if n >= 3:
        sr, sv = _normalise(ref) @ _normalise(ref).T, _normalise(var) @ _normalise(var).T
        np.fill_diagonal(sr, -np.inf)
        np.fill_diagonal(sv, -np.inf)
        ref_nn, var_nn = sr.argmax(1), sv.argmax(1)
        metrics["neighbour_top1_agreement"] = float((ref_nn == var_nn).mean())
        upper = np.triu_indices(n, 1)
        metrics["similarity_rank_spearman"] = spearman(sr[upper], sv[upper])
    samples = []
    for i in range(n):
        sample = {"index": i, "input": labels[i], "cosine_similarity": float(cos[i])}
        if ref_nn is not None:
            sample["reference"] = f"nearest: {labels[ref_nn[i]]}"
            sample["variant"] = f"nearest: {labels[var_nn[i]]}"
            sample["neighbour_kept"] = bool(ref_nn[i] == var_nn[i])
        samples.append(sample)
    samples.sort(key=lambda s: (s.get("neighbour_kept", True), s["cosine_similarity"]))
    return metrics, samples


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def classification_quality(ref_logits: list[np.ndarray], var_logits: list[np.ndarray], labels: list[str],
                           id2label: dict[int, str] | None = None) -> tuple[dict, list[dict]]:
    """Does each input keep its predicted label, and how far do the probabilities move?"""
    names = id2label or {}
    agree, shifts, cosines, samples = [], [], [], []
    for i, (r, v) in enumerate(zip(ref_logits, var_logits, strict=True)):
        pr, pv = _softmax(r.reshape(-1)), _softmax(v.reshape(-1))
        lr, lv = int(pr.argmax()), int(pv.argmax())
        shift = float(np.abs(pr - pv).max())
        agree.append(lr == lv)
        shifts.append(shift)
        cosines.append(_cosine(r, v))
        samples.append({
            "index": i, "input": labels[i], "label_kept": lr == lv, "probability_shift": shift,
            "cosine_similarity": cosines[-1],
            "reference": f"{names.get(lr, lr)} ({pr[lr]:.3f})", "variant": f"{names.get(lv, lv)} ({pv[lv]:.3f})",
        })
    samples.sort(key=lambda s: (s["label_kept"], -s["probability_shift"]))
    metrics = {
        "top1_agreement": float(np.mean(agree)), "label_agreement": float(np.mean(agree)),
        "probability_shift_max": float(np.max(shifts)), "probability_shift_mean": float(np.mean(shifts)),
        "cosine_similarity_mean": float(np.mean(cosines)), "cosine_similarity_min": float(np.min(cosines)),
    }
    return metrics, samples


def causal_lm_quality(ref_logits: list[np.ndarray], var_logits: list[np.ndarray], masks: list[np.ndarray | None],
                      labels: list[str]) -> tuple[dict, list[dict]]:
    """Top-1 next-token agreement and KL(reference || variant), over every real token position."""
    agree_all, kl_all, dp_all, cosines, samples = [], [], [], [], []
    for i, (r, v, mask) in enumerate(zip(ref_logits, var_logits, masks, strict=True)):
        r2, v2 = r.reshape(-1, r.shape[-1]), v.reshape(-1, v.shape[-1])
        keep = np.asarray(mask).reshape(-1).astype(bool)[: len(r2)] if mask is not None else np.ones(len(r2), bool)
        r2, v2 = r2[keep], v2[keep]
        agree = r2.argmax(-1) == v2.argmax(-1)
        lr, lv = _log_softmax(r2), _log_softmax(v2)
        kl = (np.exp(lr) * (lr - lv)).sum(-1)
        top = lr.argmax(-1)[:, None]  # llama.cpp's Δp: the variant's probability of the reference's top token, moved
        dp_all.append(np.exp(np.take_along_axis(lv, top, -1)) - np.exp(np.take_along_axis(lr, top, -1)))
        agree_all.append(agree)
        kl_all.append(kl)
        cosines.append(_cosine(r2, v2))
        samples.append({"index": i, "input": labels[i], "top1_agreement": float(agree.mean()),
                        "kl_divergence": float(kl.mean()), "next_token_kept": bool(agree[-1]) if len(agree) else True,
                        "cosine_similarity": cosines[-1]})
    samples.sort(key=lambda s: (s["top1_agreement"], -s["kl_divergence"]))
    agree_cat, kl_cat, dp_cat = np.concatenate(agree_all), np.concatenate(kl_all), np.concatenate(dp_all).ravel()
    metrics = {
        "top1_agreement": float(agree_cat.mean()), "kl_divergence_mean": float(kl_cat.mean()),
        "kl_divergence_max": float(kl_cat.max()),
        # the depth of llama.cpp's `perplexity --kl-divergence` report: KL percentiles and the top token's Δp
        "kl_divergence_p50": float(np.percentile(kl_cat, 50)), "kl_divergence_p90": float(np.percentile(kl_cat, 90)),
        "kl_divergence_p99": float(np.percentile(kl_cat, 99)),
        "delta_p_top_mean": float(dp_cat.mean()), "delta_p_top_rms": float(np.sqrt((dp_cat ** 2).mean())),
        "cosine_similarity_mean": float(np.mean(cosines)), "cosine_similarity_min": float(np.min(cosines)),
    }
    return metrics, samples


def tensor_error_quality(ref_outputs: list[list[np.ndarray]], var_outputs: list[list[np.ndarray]], names: list[str],
                         labels: list[str]) -> tuple[dict, list[dict]]:
    """Per output: max/mean absolute error, and relative error against the reference's magnitude.

    Relative errors are |var - ref| over the reference's max (resp. mean) magnitude, not element-wise, because
    element-wise ratios explode wherever the reference is near zero.
    """
    per_output: dict[str, dict[str, float]] = {}
    all_cos: list[float] = []
    sample_cos = [1.0] * len(ref_outputs)
    for k, name in enumerate(names):
        ref = [np.asarray(o[k]) for o in ref_outputs]
        var = [np.asarray(o[k]) for o in var_outputs]
        if not all(r.dtype.kind == "f" for r in ref):
            exact = float(np.mean([np.array_equal(r, v) for r, v in zip(ref, var, strict=True)]))
            per_output[name] = {"exact_match": exact}
            continue
        diffs = np.concatenate([np.abs(r.astype(np.float64) - v.astype(np.float64)).ravel() for r, v in zip(ref, var, strict=True)])
        mags = np.concatenate([np.abs(r.astype(np.float64)).ravel() for r in ref])
        cos = [_cosine(r, v) for r, v in zip(ref, var, strict=True)]
        sample_cos = [min(a, b) for a, b in zip(sample_cos, cos, strict=True)]
        all_cos.extend(cos)
        per_output[name] = {
            "max_abs_error": float(diffs.max()) if diffs.size else 0.0,
            "mean_abs_error": float(diffs.mean()) if diffs.size else 0.0,
            "max_rel_error": float(diffs.max() / mags.max()) if mags.size and mags.max() > 0 else 0.0,
            "mean_rel_error": float(diffs.mean() / mags.mean()) if mags.size and mags.mean() > 0 else 0.0,
            "cosine_similarity_mean": float(np.mean(cos)),
        }
    metrics: dict[str, Any] = {"per_output": per_output}
    floats = [v for v in per_output.values() if "max_abs_error" in v]
    if floats:
        metrics["max_abs_error"] = max(v["max_abs_error"] for v in floats)
        metrics["mean_abs_error"] = float(np.mean([v["mean_abs_error"] for v in floats]))
        metrics["max_rel_error"] = max(v["max_rel_error"] for v in floats)
        metrics["mean_rel_error"] = float(np.mean([v["mean_rel_error"] for v in floats]))
        metrics["cosine_similarity_mean"] = float(np.mean(all_cos))
        metrics["cosine_similarity_min"] = float(np.min(all_cos))
    samples = []
    for i, o in enumerate(ref_outputs):
        first_ref = np.asarray(o[0]).ravel()[:4]
        first_var = np.asarray(var_outputs[i][0]).ravel()[:4]
        samples.append({"index": i, "input": labels[i], "cosine_similarity": float(sample_cos[i]),
                        "reference": _fmt_values(first_ref), "variant": _fmt_values(first_var)})
    samples.sort(key=lambda s: s["cosine_similarity"])
    return metrics, samples


def _fmt_values(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(x):.4g}" for x in values) + (", ...]" if values.size >= 4 else "]")


def greedy_continuation(session, feed: dict, steps: int, eos_token_id: int | None = None) -> list[int]:
    """A few greedy tokens by repeated full forward passes (no KV cache: the exported graph has none)."""
    ids = np.asarray(feed["input_ids"])
    input_names = {i.name for i in session.get_inputs()}
    new_tokens: list[int] = []
    for _ in range(steps):
        length = ids.shape[1]
        step_feed = {"input_ids": ids}
        if "attention_mask" in input_names:
            step_feed["attention_mask"] = np.ones_like(ids)
        if "position_ids" in input_names:
            step_feed["position_ids"] = np.arange(length, dtype=np.int64)[None, :]
        if "token_type_ids" in input_names:
            step_feed["token_type_ids"] = np.zeros_like(ids)
        logits = session.run(None, step_feed)[0]
        token = int(np.asarray(logits)[0, -1].argmax())
        new_tokens.append(token)
        if eos_token_id is not None and token == eos_token_id:
            break
        ids = np.concatenate([ids, np.array([[token]], dtype=ids.dtype)], axis=1)
    return new_tokens
