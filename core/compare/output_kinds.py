"""Quality metrics chosen by what the user says an output is, for ONNX models QuantLens cannot classify itself.

Why: tensor errors and cosine mislead on real models. A text detector's probability map for an empty image is
all near-zero; two such maps have a cosine of 0.58 while their masks agree on 99.8% of pixels. So:
- class logits -> top-1 label kept and probability shift (the classification metric);
- detection map -> mask IoU at a threshold (empty vs empty counts as 1.0) and pixel agreement;
- CTC sequence -> greedy CTC decoding (argmax, repeats merged, blank 0 removed) and whether the decoded
  sequence is exactly the same;
- decision score -> the score's absolute change and whether the decision at 0.5 is kept.
The first output is the one described (the model's main output for all of the above).
"""

from __future__ import annotations

from typing import Any

import numpy as np

AUTO = "auto"
CLASS_LOGITS = "class-logits"
DETECTION_MAP = "detection-map"
CTC_SEQUENCE = "ctc-sequence"
DECISION_SCORE = "decision-score"
OUTPUT_KINDS = (AUTO, CLASS_LOGITS, DETECTION_MAP, CTC_SEQUENCE, DECISION_SCORE)
MASK_THRESHOLD = 0.3  # PaddleOCR DB's binarisation threshold
DECISION_THRESHOLD = 0.5

# (column title, quality key, format) per kind, for the CLI table and the page
HEADLINES: dict[str, tuple[tuple[str, str, str], ...]] = {
    CLASS_LOGITS: (("labels kept", "top1_agreement", "{:.0%}"), ("max p shift", "probability_shift_max", "{:.3f}"),
                   ("cosine", "cosine_similarity_mean", "{:.4f}")),
    DETECTION_MAP: (("mask IoU", "mask_iou_mean", "{:.3f}"), ("worst IoU", "mask_iou_min", "{:.3f}"),
                    ("pixels kept", "pixel_agreement_mean", "{:.2%}")),
    CTC_SEQUENCE: (("text kept", "sequence_match", "{:.0%}"), ("edit dist", "edit_distance_mean", "{:.2f}"),
                   ("cosine", "cosine_similarity_mean", "{:.4f}")),
    DECISION_SCORE: (("decision kept", "decision_agreement", "{:.0%}"), ("max shift", "score_shift_max", "{:.3f}"),
                     ("mean shift", "score_shift_mean", "{:.4f}")),
}


def mask_quality(ref_maps: list[np.ndarray], var_maps: list[np.ndarray], labels: list[str],
                 threshold: float = MASK_THRESHOLD) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Mask IoU and pixel agreement of the maps binarised at `threshold`."""
    ious, agree, samples = [], [], []
    for i, (r, v) in enumerate(zip(ref_maps, var_maps, strict=True)):
        mr, mv = np.asarray(r) > threshold, np.asarray(v) > threshold
        union = int(np.logical_or(mr, mv).sum())
        iou = 1.0 if union == 0 else float(np.logical_and(mr, mv).sum() / union)
        pixels = float((mr == mv).mean()) if mr.size else 1.0
        ious.append(iou)
        agree.append(pixels)
        samples.append({"index": i, "input": labels[i], "mask_iou": iou, "pixel_agreement": pixels,
                        "reference": f"{mr.mean():.2%} of pixels above {threshold}",
                        "variant": f"{mv.mean():.2%} of pixels above {threshold}"})
    samples.sort(key=lambda s: s["mask_iou"])
    return ({"mask_iou_mean": float(np.mean(ious)), "mask_iou_min": float(np.min(ious)),
             "pixel_agreement_mean": float(np.mean(agree)), "mask_threshold": threshold}, samples)


def ctc_greedy_decode(logits: np.ndarray, blank: int = 0) -> list[int]:
    """Best path: argmax per time step, repeats merged, blanks dropped. logits: [time, classes] (batch squeezed)."""
    path = np.asarray(logits).reshape(-1, np.asarray(logits).shape[-1]).argmax(-1)
    decoded, previous = [], None
    for token in path.tolist():
        if token != previous and token != blank:
            decoded.append(int(token))
        previous = token
    return decoded


def edit_distance(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


def ctc_quality(ref_logits: list[np.ndarray], var_logits: list[np.ndarray],
                labels: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Whether the greedily decoded sequence is unchanged, and how many edits apart it is when not."""
    from core.compare.evaluate import _cosine

    matches, distances, cosines, samples = [], [], [], []
    for i, (r, v) in enumerate(zip(ref_logits, var_logits, strict=True)):
        dr, dv = ctc_greedy_decode(r), ctc_greedy_decode(v)
        distance = edit_distance(dr, dv)
        matches.append(dr == dv)
        distances.append(distance)
        cosines.append(_cosine(r, v))
        samples.append({"index": i, "input": labels[i], "sequence_kept": dr == dv, "edit_distance": distance,
                        "reference": " ".join(map(str, dr[:24])), "variant": " ".join(map(str, dv[:24]))})
    samples.sort(key=lambda s: (s["sequence_kept"], -s["edit_distance"]))
    return ({"sequence_match": float(np.mean(matches)), "edit_distance_mean": float(np.mean(distances)),
             "cosine_similarity_mean": float(np.mean(cosines))}, samples)


def score_quality(ref_scores: list[np.ndarray], var_scores: list[np.ndarray], labels: list[str],
                  threshold: float = DECISION_THRESHOLD) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A decision score per input (e.g. speech probability): its shift and whether the decision flips."""
    shifts, kept, samples = [], [], []
    for i, (r, v) in enumerate(zip(ref_scores, var_scores, strict=True)):
        rs, vs = np.asarray(r, np.float64).ravel(), np.asarray(v, np.float64).ravel()
        shift = float(np.abs(rs - vs).max()) if rs.size else 0.0
        same = bool(np.array_equal(rs > threshold, vs > threshold))
        shifts.append(shift)
        kept.append(same)
        samples.append({"index": i, "input": labels[i], "decision_kept": same, "score_shift": shift,
                        "reference": ", ".join(f"{x:.3f}" for x in rs[:4]),
                        "variant": ", ".join(f"{x:.3f}" for x in vs[:4])})
    samples.sort(key=lambda s: (s["decision_kept"], -s["score_shift"]))
    return ({"decision_agreement": float(np.mean(kept)), "score_shift_max": float(np.max(shifts)),
             "score_shift_mean": float(np.mean(shifts)), "decision_threshold": threshold}, samples)


def output_quality(kind: str, ref, var, labels: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Dispatch on the declared kind of the first output; ref/var are evaluate.VariantRun."""
    from core.compare.evaluate import classification_quality

    ref_first = [np.asarray(o[0]) for o in ref.outputs]
    var_first = [np.asarray(o[0]) for o in var.outputs]
    if kind == CLASS_LOGITS:
        return classification_quality(ref_first, var_first, labels)
    if kind == DETECTION_MAP:
        return mask_quality(ref_first, var_first, labels)
    if kind == CTC_SEQUENCE:
        return ctc_quality(ref_first, var_first, labels)
    if kind == DECISION_SCORE:
        return score_quality(ref_first, var_first, labels)
    raise ValueError(f"unknown output kind {kind!r}")
