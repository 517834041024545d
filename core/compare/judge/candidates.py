"""Each INT8 candidate judged as soon as it is built: FP32's outputs kept once, the candidate's measured on the
same inputs, and the task's own metric (core.compare.judge.judgment) deciding, with the paired speed-up beside it.

Why in judge/: the candidate search (core.compare.techniques.int8_auto) builds recipes, but ranking them needs the
measuring and the judgment that come later on the data's path. The comparison hands `CandidateProbe` to the
techniques (core.compare.isolated_steps), so building never imports judging and the stages stay in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.compare.common.onnx_io import make_session
from core.compare.judge.judgment import judge
from core.compare.measure.evaluate import VariantRun, time_interleaved
from core.compare.measure.output_kinds import guess_output_kind, output_quality
from core.compare.techniques.int8_auto import MEASURE_ROUNDS, Candidate

if TYPE_CHECKING:
    from core.compare.common.settings import CompareOptions
    from core.compare.techniques.base import QuantizedModel


class CandidateProbe:
    """FP32's outputs and session, kept once, so each candidate is measured as soon as it is built."""

    def __init__(self, fp32: Path, feeds: list[dict], latency_feed: dict, options: CompareOptions) -> None:
        from core.compare.common.onnx_io import make_session

        self.fp32, self.feeds, self.latency, self.threads = Path(fp32), feeds, latency_feed, options.threads
        self.session = make_session(self.fp32, self.threads)
        self.outputs = [self.session.run(None, f) for f in feeds]
        self.names = [o.name for o in self.session.get_outputs()]
        self.bytes = self.fp32.stat().st_size
        kind = options.output_kind
        if kind == "auto":
            kind = guess_output_kind(self.fp32, self.outputs)[0]
        self.kind = kind

    def measure(self, name: str, q: QuantizedModel) -> Candidate:
        import numpy as np

        session = make_session(q.path, self.threads)
        outputs = [session.run(None, f) for f in self.feeds]
        times = time_interleaved({"fp32": self.session, name: session}, self.latency, MEASURE_ROUNDS)
        speedup = float(np.median(times["fp32"])) / max(float(np.median(times[name])), 1e-9)
        cosine = _cosine_all(self.outputs, outputs)
        labels = [f"input {i + 1}" for i in range(len(self.feeds))]

        def run(outs):
            return VariantRun(0, 0, "", 0, 0, 0, self.threads, self.names, outs)

        quality, _ = output_quality(self.kind, run(self.outputs), run(outputs), labels)
        judged = judge(quality, self.kind)
        return Candidate(name, speedup, cosine, self.bytes / max(q.size_bytes, 1), judged.value, judged.metric,
                         judged.floor)


def _cosine_all(ref_outputs: list[list], var_outputs: list[list]) -> float:
    """Mean over float outputs of the cosine over all inputs at once (a near-zero output of one input, e.g. a
    detector on a picture with nothing to detect, must not swing it)."""
    import numpy as np

    cosines = []
    for k, ref in enumerate(ref_outputs[0]):
        if np.asarray(ref).dtype.kind == "f":
            cosines.append(_cosine(np.concatenate([np.ravel(o[k]) for o in ref_outputs]),
                                   np.concatenate([np.ravel(o[k]) for o in var_outputs])))
    return float(np.mean(cosines)) if cosines else 1.0


def _cosine(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))
