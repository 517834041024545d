"""Stage 1, inputs: what the comparison runs on, read and checked before any model is prepared.

The user's texts (.txt, .csv), arrays (.npz), images and audio (PNG/JPEG/WAV, or the defaults made here), the
bundled demo model, and the onnxruntime feeds each kind becomes. Nothing here knows the prepared model: the step
that matches inputs to a model is prepare.model_feeds (tests/core/test_compare_layers.py keeps every import
pointing to an earlier stage or to common/).

Modules: user_data (texts, .npz arrays, input specs, generated arrays), feeds (Feeds, tokenizers, text and array
feeds, the empty KV cache), media_inputs (image/audio files and defaults), image_arrays (image-like generated
inputs for a CNN), onnx_media (files prepared the way an ONNX model says), media_tasks (vision/audio/token tasks
named from `architectures`, their processors and feeds), demo (the bundled demo model).
"""

__all__ = ["demo", "feeds", "image_arrays", "media_inputs", "media_tasks", "onnx_media", "user_data"]
