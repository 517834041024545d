"""Quality of a variant against the reference, by task: embeddings, labels, next tokens, or raw tensors."""

from __future__ import annotations

from core.compare.inputs.feeds import Feeds

MAX_CONTINUATION_PROMPTS = 3


def measure_quality(task: str, ref, var, feeds: Feeds, config: dict) -> tuple[dict, list[dict]]:
    from core.compare.inputs.media_tasks import LABEL_TASKS
    from core.compare.measure import evaluate
    from core.compare.measure.label_quality import measure_label_quality
    from core.compare.prepare.export import TASK_CLASSIFICATION, TASK_FEATURES, TASK_GENERATION

    if task in LABEL_TASKS:
        return measure_label_quality(task, ref, var, feeds, config)
    if task == TASK_FEATURES:
        r = evaluate.pooled_embeddings(ref.outputs, ref.output_names, feeds.masks)
        v = evaluate.pooled_embeddings(var.outputs, var.output_names, feeds.masks)
        return evaluate.embedding_quality(r, v, feeds.labels)
    if task == TASK_CLASSIFICATION:
        id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items() if str(k).isdigit()}
        return evaluate.classification_quality([o[0] for o in ref.outputs], [o[0] for o in var.outputs], feeds.labels, id2label)
    if task == TASK_GENERATION:
        metrics, samples = evaluate.causal_lm_quality([o[0] for o in ref.outputs], [o[0] for o in var.outputs],
                                                      feeds.masks, feeds.labels)
        ref_text, var_text = ref.extra.get("after") or {}, var.extra.get("after") or {}
        for sample in samples:
            i = sample["index"]
            if i in ref_text:
                sample["reference"], sample["variant"] = ref_text[i], var_text.get(i, "")
                sample["continuation_kept"] = ref_text[i] == var_text.get(i)
        if ref_text:
            kept = [ref_text[i] == var_text.get(i) for i in ref_text]
            metrics["greedy_continuation_agreement"] = sum(kept) / len(kept)
        return metrics, samples
    return evaluate.tensor_error_quality(ref.outputs, var.outputs, ref.output_names, feeds.labels)


def continuation_hook(feeds: Feeds, steps: int, config: dict, max_positions: int):
    """`after` hook for causal LMs: greedy continuations of the first prompts, decoded to text."""
    from core.compare.measure.generation import greedy_tokens

    tokenizer = feeds.tokenizer
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else config.get("eos_token_id")

    def run(session) -> dict[int, str]:
        texts = {}
        for i, feed in enumerate(feeds.per_input[:MAX_CONTINUATION_PROMPTS]):
            room = max(0, min(steps, max_positions - feed["input_ids"].shape[1]))
            tokens = greedy_tokens(session, feed, room, eos)
            texts[i] = tokenizer.decode(tokens) if tokenizer is not None else " ".join(map(str, tokens))
        return texts

    return run
