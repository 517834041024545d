"""Object detection quality for YOLO-style heads: the boxes a user would get, matched between two runs.

Why: a YOLO head puts box coordinates (0-640 pixels) and class scores (0-1) in one tensor. Cosine over that
tensor is dominated by the coordinates, so an INT8 file whose every score became 0 or 1.25 still scores 0.999
(nudenet's YOLOv8n: 5 of 6 detections gone at cosine 0.9993). Here each run's boxes are decoded the way the
model's own post-processing does (score threshold, per-class NMS), and the variant's boxes are matched to the
reference's at IoU 0.5: F1 of the matches says whether the detections survive, the score shift of matched boxes
says how much their confidences moved. Where the reference detects nothing at all (synthetic pictures), the
threshold drops to keep each input's ten best candidates, and `score_threshold` says so.

Two layouts are read, detected from the shape:
- [N, 4+C, A] (YOLOv8/v11, anchors last): rows cx, cy, w, h, then C class scores;
- [N, A, 5+C] (YOLOv5/v7/YOLOX, anchors first): cx, cy, w, h, objectness, then C class scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SCORE_THRESHOLD = 0.25  # ultralytics' default `conf` (docs.ultralytics.com/modes/predict, "conf 0.25")
NMS_IOU = 0.45  # the IoU most exported YOLO pipelines suppress at (nudenet, YOLOv5 detect.py `iou_thres=0.45`)
MATCH_IOU = 0.5  # PASCAL VOC's match threshold
MAX_CANDIDATES = 1000  # boxes kept before NMS, best scores first
MIN_ANCHORS = 64  # fewer rows than this is not a dense detection head
ANCHORS_LAST = "anchors-last"  # [N, 4+C, A]
ANCHORS_FIRST = "anchors-first"  # [N, A, 5+C]


@dataclass(frozen=True)
class Boxes:
    xyxy: np.ndarray  # [K, 4]
    scores: np.ndarray  # [K]
    classes: np.ndarray  # [K]


def yolo_layout(output: np.ndarray) -> str | None:
    """Which YOLO layout `output` has, from its shape and values, or None when it is not a YOLO head."""
    a = np.asarray(output)
    if a.ndim != 3 or a.dtype.kind != "f" or a.shape[0] < 1:
        return None
    first = a[0].astype(np.float64)
    rows, cols = first.shape
    if cols >= MIN_ANCHORS and 5 <= rows < cols and _looks_like_boxes_and_scores(first[:4].T, first[4:].T):
        return ANCHORS_LAST
    if rows >= MIN_ANCHORS and 6 <= cols < rows and _looks_like_boxes_and_scores(first[:, :4], first[:, 4:]):
        return ANCHORS_FIRST
    return None


def _looks_like_boxes_and_scores(coords: np.ndarray, scores: np.ndarray) -> bool:
    """Coordinates in pixels (non-negative widths, most values above 1) and scores inside [0, 1]."""
    if not np.isfinite(coords).all() or not np.isfinite(scores).all():
        return False
    sizes = coords[:, 2:4]
    return bool(sizes.min() >= 0 and np.median(coords) > 1.0 and scores.min() >= -1e-3 and scores.max() <= 1 + 1e-3)


def decode(output: np.ndarray, layout: str, score_threshold: float = SCORE_THRESHOLD,
           nms_iou: float = NMS_IOU) -> Boxes:
    """The boxes above `score_threshold` after per-class NMS, from one image's head output (batch item 0)."""
    a = np.asarray(output, np.float64)[0]
    rows = a.T if layout == ANCHORS_LAST else a
    if layout == ANCHORS_LAST:
        cls = rows[:, 4:]
        scores, classes = cls.max(1), cls.argmax(1)
    else:
        cls = rows[:, 5:]
        best = cls.max(1) if cls.shape[1] else np.ones(len(rows))
        scores, classes = rows[:, 4] * best, cls.argmax(1) if cls.shape[1] else np.zeros(len(rows), int)
    keep = scores > score_threshold
    if keep.sum() > MAX_CANDIDATES:  # ultralytics caps NMS input too (max_nms); also bounds the IoU matrix's memory
        keep &= scores >= np.sort(scores)[-MAX_CANDIDATES]
    cx, cy, w, h = rows[keep, 0], rows[keep, 1], rows[keep, 2], rows[keep, 3]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) if keep.any() else np.zeros((0, 4))
    return _nms(Boxes(xyxy, scores[keep], classes[keep]), nms_iou)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _nms(boxes: Boxes, iou: float) -> Boxes:
    order = np.argsort(-boxes.scores, kind="stable")
    kept: list[int] = []
    ious = iou_matrix(boxes.xyxy, boxes.xyxy)
    for i in order:
        if all(boxes.classes[j] != boxes.classes[i] or ious[i, j] <= iou for j in kept):
            kept.append(int(i))
    idx = np.array(kept, dtype=int)
    return Boxes(boxes.xyxy[idx].reshape(-1, 4), boxes.scores[idx], boxes.classes[idx])


def match(ref: Boxes, var: Boxes, iou: float = MATCH_IOU) -> list[tuple[int, int]]:
    """Greedy one-to-one matches (reference index, variant index) of the same class at IoU >= `iou`."""
    ious = iou_matrix(ref.xyxy, var.xyxy)
    pairs, used = [], set()
    for i in np.argsort(-ref.scores, kind="stable"):
        best, best_iou = None, iou
        for j in range(len(var.scores)):
            if j in used or var.classes[j] != ref.classes[i] or ious[i, j] < best_iou:
                continue
            best, best_iou = j, ious[i, j]
        if best is not None:
            used.add(best)
            pairs.append((int(i), best))
    return pairs


def detection_quality(ref_outputs: list[np.ndarray], var_outputs: list[np.ndarray],
                      labels: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Matched-box F1 at IoU 0.5 against the reference's detections, and the score shift of matched boxes."""
    f1s, shifts, samples = [], [], []
    ref_total = var_total = matched_total = 0
    threshold = _threshold(ref_outputs)
    for i, (r, v) in enumerate(zip(ref_outputs, var_outputs, strict=True)):
        layout = yolo_layout(r) or ANCHORS_LAST
        br, bv = decode(r, layout, threshold), decode(v, layout, threshold)
        pairs = match(br, bv)
        n_r, n_v, n_m = len(br.scores), len(bv.scores), len(pairs)
        f1 = 1.0 if n_r + n_v == 0 else 2 * n_m / (n_r + n_v)
        shift = [abs(float(br.scores[a]) - float(bv.scores[b])) for a, b in pairs]
        f1s.append(f1)
        shifts += shift
        ref_total, var_total, matched_total = ref_total + n_r, var_total + n_v, matched_total + n_m
        samples.append({"index": i, "input": labels[i], "detection_f1": f1, "boxes_kept": n_m,
                        "reference": _describe(br), "variant": _describe(bv)})
    samples.sort(key=lambda s: s["detection_f1"])
    return ({"detection_f1_mean": float(np.mean(f1s)), "detection_f1_min": float(np.min(f1s)),
             "boxes_reference": ref_total, "boxes_variant": var_total, "boxes_matched": matched_total,
             "score_shift_mean": float(np.mean(shifts)) if shifts else 0.0,
             "score_shift_max": float(np.max(shifts)) if shifts else 0.0,
             "score_threshold": threshold, "match_iou": MATCH_IOU}, samples)


def _threshold(ref_outputs: list[np.ndarray], top: int = 10) -> float:
    """SCORE_THRESHOLD, or, when the reference detects nothing on any input at it (synthetic pictures), a threshold
    that keeps each input's ~`top` best candidates: then F1 says whether those survive, not "nothing == nothing"."""
    best = []
    for r in ref_outputs:
        layout = yolo_layout(r) or ANCHORS_LAST
        rows = np.asarray(r, np.float64)[0]
        rows = rows.T if layout == ANCHORS_LAST else rows
        scores = rows[:, 4:].max(1) if layout == ANCHORS_LAST else rows[:, 4] * (rows[:, 5:].max(1) if rows.shape[1] > 5 else 1)
        best.append(np.sort(scores)[::-1])
    if any(len(b) and b[0] > SCORE_THRESHOLD for b in best):
        return SCORE_THRESHOLD
    tenth = [float(b[min(top, len(b)) - 1]) for b in best if len(b)]
    return max(0.0, min(tenth) - 1e-6) if tenth else SCORE_THRESHOLD


def _describe(boxes: Boxes) -> str:
    if not len(boxes.scores):
        return "no boxes"
    shown = ", ".join(f"class {int(c)} ({s:.2f})" for c, s in zip(boxes.classes[:4], boxes.scores[:4], strict=True))
    return f"{len(boxes.scores)} box(es): {shown}" + (", ..." if len(boxes.scores) > 4 else "")
