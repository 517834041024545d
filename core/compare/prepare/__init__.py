"""Stage 2, prepare: any accepted source becomes one FP32 ONNX file, and the user's inputs become its feeds.

Why a stage: every technique starts from the same FP32 file under a fixed name and every measurement from the
same feeds, so the export (torch, optimum) and the checks on an uploaded ONNX file happen once, here, before any
variant is made.

Modules: model (prepare_model: the demo, an HF folder or an .onnx → PreparedModel), export (HF folder → ONNX
with optimum), limits (refuse what cannot be one file, before exporting), preprocess (make an uploaded ONNX
quantizable), model_feeds (build_feeds: inputs matched to the prepared model), bit_census (bits per layer of a
file: already-quantized uploads, and true labels of written variants).
"""

__all__ = ["bit_census", "export", "limits", "model", "model_feeds", "preprocess"]
