"""Stage 4, measure: run every variant with onnxruntime and put numbers on it against the reference.

Why a stage: size, memory, latency and quality are measured the same way for every variant the techniques
wrote, and the numbers are plain data the judgment reads; nothing here decides whether a variant is worth
shipping (that is judge/).

Modules: evaluate (sessions run, load time, peak memory, interleaved latency, tensor quality), quality (quality
by task), output_kinds (quality by what an output is: logits, boxes, masks, CTC, scores), detection (YOLO boxes
matched between runs), label_quality (classifier labels kept, top-5, probability shift), generation (prefill,
decode, perplexity, KV cache of causal LMs) and generation_stats (what it measured, as report data),
paired_timing (speed-ups from paired rounds, the noise floor), stored_size (predicted sizes beside the measured
file), variant_status (made, unchanged or failed, and why).
"""

__all__ = ["detection", "evaluate", "generation", "generation_stats", "label_quality", "output_kinds",
           "paired_timing", "quality", "stored_size", "variant_status"]
