"""Quality metrics chosen by what the user says an output is, for ONNX models QuantLens cannot classify itself.

Why: tensor errors and cosine mislead on real models. A text detector's probability map for an empty image is
all near-zero; two such maps have a cosine of 0.58 while their masks agree on 99.8% of pixels. So:
- class logits -> top-1 label kept and probability shift (the classification metric);
- detection map -> mask IoU at a threshold (empty vs empty counts as 1.0) and pixel agreement;
- CTC sequence -> greedy CTC decoding (argmax, repeats merged, blank 0 removed) and whether the decoded
  sequence is exactly the same;
- decision score -> the score's absolute change and whether the decision at 0.5 is kept;
- detection boxes (YOLO heads) -> matched-box F1 at IoU 0.5 and score shift (core.compare.measure.detection);
- regression -> the shift in the output's own units, against the spread of the reference's values;
- embedding -> cosine and nearest-neighbour agreement among the inputs;
- tensors -> tensor errors and cosine: the fallback when nothing above fits, shown as such.
The first output is the one described (the model's main output for all of the above). With `auto`, the kind is
guessed from the graph and the reference's outputs (`guess_output_kind`), and the guess is shown with how to
change it (`--output-kind`, the page's selector).
"""

from __future__ import annotations

from typing import Any

import numpy as np

AUTO = "auto"
CLASS_LOGITS = "class-logits"
DETECTION_MAP = "detection-map"
CTC_SEQUENCE = "ctc-sequence"
DECISION_SCORE = "decision-score"
DETECTION_BOXES = "detection-boxes"
REGRESSION = "regression"
EMBEDDING = "embedding"
TENSORS = "tensors"
OUTPUT_KINDS = (AUTO, CLASS_LOGITS, DETECTION_BOXES, DETECTION_MAP, CTC_SEQUENCE, DECISION_SCORE, REGRESSION,
                EMBEDDING, TENSORS)
REGRESSION_MAX_SHIFT = 0.05  # of the reference's value spread (std, or |mean| for one value): "kept" below this
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
    DETECTION_BOXES: (("boxes F1", "detection_f1_mean", "{:.0%}"), ("worst F1", "detection_f1_min", "{:.0%}"),
                      ("score shift", "score_shift_mean", "{:.3f}")),
    REGRESSION: (("shift / spread", "relative_shift", "{:.2%}"), ("mean shift", "value_shift_mean", "{:.4g}"),
                 ("max shift", "value_shift_max", "{:.4g}")),
    EMBEDDING: (("NN kept", "neighbour_top1_agreement", "{:.0%}"), ("cosine", "cosine_similarity_mean", "{:.4f}"),
                ("worst cos", "cosine_similarity_min", "{:.4f}")),
    TENSORS: (("cosine (fallback)", "cosine_similarity_mean", "{:.4f}"), ("max abs err", "max_abs_error", "{:.3g}"),
              ("mean rel err", "mean_rel_error", "{:.2%}")),
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
    from core.compare.measure.evaluate import _cosine

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


def regression_quality(ref_values: list[np.ndarray], var_values: list[np.ndarray],
                       labels: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Scores and measurements (a speech-quality MOS, an age, a depth): the shift in the output's own units, and
    that shift over the scale of the reference's values (the larger of their std and their mean magnitude)."""
    ref = np.concatenate([np.asarray(r, np.float64).ravel() for r in ref_values])
    var = np.concatenate([np.asarray(v, np.float64).ravel() for v in var_values])
    # the values' scale: their spread over inputs, or their magnitude where inputs barely move them (a MOS of ~3)
    spread = max(float(ref.std()) if ref.size > 1 else 0.0, float(np.abs(ref).mean())) or 1.0
    samples = []
    for i, (r, v) in enumerate(zip(ref_values, var_values, strict=True)):
        rs, vs = np.asarray(r, np.float64).ravel(), np.asarray(v, np.float64).ravel()
        samples.append({"index": i, "input": labels[i], "value_shift": float(np.abs(rs - vs).max()) if rs.size else 0.0,
                        "reference": ", ".join(f"{x:.4g}" for x in rs[:4]),
                        "variant": ", ".join(f"{x:.4g}" for x in vs[:4])})
    samples.sort(key=lambda s: -s["value_shift"])
    diff = np.abs(ref - var)
    return ({"value_shift_mean": float(diff.mean()) if diff.size else 0.0,
             "value_shift_max": float(diff.max()) if diff.size else 0.0, "value_spread": spread,
             "relative_shift": float(diff.mean() / spread) if diff.size else 0.0,
             "shift_kept": max(0.0, 1.0 - float(diff.mean() / spread)) if diff.size else 1.0}, samples)


def guess_output_kind(model_path, outputs: list[list[np.ndarray]]) -> tuple[str, str]:
    """(kind, why) for an ONNX model's first output, from the graph's last op and the reference's values."""
    first = [np.asarray(o[0]) for o in outputs]
    a = first[0]
    last_op = _producer_op(model_path)
    from core.compare.measure.detection import yolo_layout

    if a.dtype.kind != "f":
        return TENSORS, f"the first output is {a.dtype} (not floats): compared value by value"
    if a.size == 0 or not np.isfinite(a).all():
        return TENSORS, f"the first output {list(a.shape)} is empty or not finite: tensor errors and cosine"
    layout = yolo_layout(a)
    if layout:
        return DETECTION_BOXES, (f"the first output {list(a.shape)} holds box coordinates and class scores in one "
                                 f"tensor (a YOLO-style head, {layout})")
    squeezed = [s for s in a.shape if s != 1]
    in_unit = a.size and float(a.min()) >= -1e-4 and float(a.max()) <= 1 + 1e-4
    if a.ndim == 3 and len(squeezed) == 2 and squeezed[-1] >= 10 and a.shape[-1] == squeezed[-1]:
        path = a.reshape(-1, a.shape[-1]).argmax(-1)
        if (path == 0).mean() >= 0.3 or last_op in ("Softmax", "LogSoftmax"):
            return CTC_SEQUENCE, (f"the first output is [time {squeezed[0]}, classes {squeezed[-1]}] scores whose best "
                                  "path is mostly class 0 (a CTC blank)")
    if a.ndim >= 3 and len(squeezed) == 2 and min(squeezed) >= 16 and in_unit and last_op in ("Sigmoid", "Clip", ""):
        return DETECTION_MAP, f"the first output is a {squeezed[0]}x{squeezed[1]} map of values in [0, 1]"
    if a.size <= 4:
        if in_unit and last_op in ("Sigmoid", "Softmax", "Clip", ""):
            return DECISION_SCORE, f"the first output is {a.size} value(s) in [0, 1] (a decision score)"
        return REGRESSION, f"the first output is {a.size} value(s) outside [0, 1] (a score or measurement)"
    if len(squeezed) == 1 and in_unit and abs(float(a.sum()) - 1.0) < 1e-3:
        return CLASS_LOGITS, f"the first output is {squeezed[0]} probabilities summing to 1 (a classifier)"
    if len(squeezed) == 1:
        normalised = last_op in ("LpNormalization", "Div", "ReduceMean")  # pooled or L2-normalised vectors
        if not normalised and (last_op in ("Softmax", "LogSoftmax", "Gemm") or squeezed[0] <= 1000):
            return CLASS_LOGITS, f"the first output is one vector of {squeezed[0]} scores (class logits)"
        return EMBEDDING, f"the first output is one vector of {squeezed[0]} values (an embedding)"
    return TENSORS, f"no task metric fits the first output {list(a.shape)}: tensor errors and cosine"


def _producer_op(model_path) -> str:
    """The op type that produces the graph's first output ('' when it cannot be read)."""
    if model_path is None:
        return ""
    try:
        import onnx

        model = onnx.load(str(model_path), load_external_data=False)
    except Exception:  # noqa: BLE001 - a guess, not a check: an unreadable graph just gives no hint
        return ""
    name = model.graph.output[0].name if model.graph.output else ""
    return next((n.op_type for n in model.graph.node if name in n.output), "")


def output_quality(kind: str, ref, var, labels: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Dispatch on the declared kind of the first output; ref/var are evaluate.VariantRun."""
    from core.compare.measure import evaluate

    ref_first = [np.asarray(o[0]) for o in ref.outputs]
    var_first = [np.asarray(o[0]) for o in var.outputs]
    if kind == CLASS_LOGITS:
        from core.compare.measure.label_quality import label_quality

        return label_quality(CLASS_LOGITS, ref_first, var_first, labels, {})
    if kind == DETECTION_BOXES:
        from core.compare.measure.detection import detection_quality

        return detection_quality(ref_first, var_first, labels)
    if kind == DETECTION_MAP:
        return mask_quality(ref_first, var_first, labels)
    if kind == CTC_SEQUENCE:
        return ctc_quality(ref_first, var_first, labels)
    if kind == DECISION_SCORE:
        return score_quality(ref_first, var_first, labels)
    if kind == REGRESSION:
        return regression_quality(ref_first, var_first, labels)
    if kind == EMBEDDING:
        r = np.stack([x.reshape(-1) for x in ref_first]).astype(np.float64)
        v = np.stack([x.reshape(-1) for x in var_first]).astype(np.float64)
        return evaluate.embedding_quality(r, v, labels)
    if kind == TENSORS:
        return evaluate.tensor_error_quality(ref.outputs, var.outputs, ref.output_names, labels)
    raise ValueError(f"unknown output kind {kind!r}")
