"""Quality of a labelling model (image, audio or token classifier) against the reference, with its own label names.

Label agreement, top-5 overlap and the probability shift, per sample with the names from `id2label`: what a user of
a classifier sees change (core.compare.inputs.media_tasks names the tasks and builds their inputs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.compare.inputs.media_tasks import TASK_TOKEN_CLASSIFICATION

if TYPE_CHECKING:
    from core.compare.inputs.feeds import Feeds

TOP_K = 5


def _softmax(x):
    import numpy as np

    z = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def label_quality(task: str, ref_logits: list, var_logits: list, labels: list[str],
                  id2label: dict[int, str]) -> tuple[dict, list[dict]]:
    """Label agreement, top-5 overlap, max probability shift and logit cosine; per sample, names from id2label."""
    import numpy as np

    agree, overlap, shifts, cosines, samples = [], [], [], [], []
    for i, (r, v) in enumerate(zip(ref_logits, var_logits, strict=True)):
        r2 = np.asarray(r, np.float64).reshape(-1, np.asarray(r).shape[-1])
        v2 = np.asarray(v, np.float64).reshape(-1, np.asarray(v).shape[-1])
        pr, pv = _softmax(r2), _softmax(v2)
        k = min(TOP_K, r2.shape[-1])
        top_r, top_v = np.argsort(-pr, axis=-1)[:, :k], np.argsort(-pv, axis=-1)[:, :k]
        kept = pr.argmax(-1) == pv.argmax(-1)
        rows_overlap = [len(set(a) & set(b)) / k for a, b in zip(top_r, top_v, strict=True)]
        shift = float(np.abs(pr - pv).max())
        cos = float((r2.ravel() @ v2.ravel()) / max(np.linalg.norm(r2) * np.linalg.norm(v2), 1e-30))
        agree.append(kept)
        overlap += rows_overlap
        shifts.append(shift)
        cosines.append(cos)
        lr, lv = int(top_r[0, 0]), int(top_v[0, 0])
        sample = {"index": i, "input": labels[i], "label_kept": bool(kept.all()), "probability_shift": shift,
                  "top5_overlap": float(np.mean(rows_overlap)), "cosine_similarity": cos}
        if task == TASK_TOKEN_CLASSIFICATION:
            sample["token_labels_kept"] = float(kept.mean())
            sample["reference"] = " ".join(id2label.get(int(t), str(int(t))) for t in top_r[:, 0])
            sample["variant"] = " ".join(id2label.get(int(t), str(int(t))) for t in top_v[:, 0])
        else:
            sample["reference"] = f"{id2label.get(lr, lr)} ({pr[0, lr]:.3f})"
            sample["variant"] = f"{id2label.get(lv, lv)} ({pv[0, lv]:.3f})"
            sample["reference_top5"] = [id2label.get(int(t), str(int(t))) for t in top_r[0]]
            sample["variant_top5"] = [id2label.get(int(t), str(int(t))) for t in top_v[0]]
        samples.append(sample)
    samples.sort(key=lambda s: (s["label_kept"], s["top5_overlap"], -s["probability_shift"]))
    flat = np.concatenate(agree)
    metrics = {
        "top1_agreement": float(np.mean([a.all() for a in agree])), "label_agreement": float(flat.mean()),
        "top5_overlap": float(np.mean(overlap)),
        "probability_shift_max": float(np.max(shifts)), "probability_shift_mean": float(np.mean(shifts)),
        "cosine_similarity_mean": float(np.mean(cosines)), "cosine_similarity_min": float(np.min(cosines)),
    }
    if task == TASK_TOKEN_CLASSIFICATION:
        metrics["top1_agreement"] = float(flat.mean())  # per token: what a tagger's user sees
    return metrics, samples


def measure_label_quality(task: str, ref, var, feeds: Feeds, config: dict) -> tuple[dict, list[dict]]:
    id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items() if str(k).isdigit()}
    return label_quality(task, [o[0] for o in ref.outputs], [o[0] for o in var.outputs], feeds.labels, id2label)
