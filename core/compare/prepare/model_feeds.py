"""The user's inputs made into onnxruntime feeds for the prepared model: the step where inputs meet the model.

Why here and not in inputs/: which feeds a model gets depends on the prepared model (its task, its input names
and shapes, its tokenizer folder), so this is the first step that needs both; the pieces it dispatches to
(texts, arrays, images, audio) know nothing of the prepared model. Public so bench/ builds exactly the feeds the
pipeline does.
"""

from __future__ import annotations

from pathlib import Path

from core.compare.common.onnx_io import make_session
from core.compare.common.settings import CompareOptions, parse_size
from core.compare.inputs import user_data as model_inputs
from core.compare.inputs.feeds import Feeds, array_feeds, empty_past, load_tokenizer, text_feeds
from core.compare.inputs.image_arrays import probed_generated_feeds
from core.compare.inputs.media_inputs import media_files
from core.compare.inputs.media_tasks import MEDIA_TASKS, media_feeds
from core.compare.inputs.onnx_media import MediaPrep, onnx_media_feeds
from core.compare.prepare.model import PreparedModel
from core.errors import QuantLensError


def build_feeds(prepared: PreparedModel, inputs, options: CompareOptions) -> Feeds:
    session = make_session(prepared.fp32_path, 1)
    specs = model_inputs.input_specs(session)
    del session
    try:  # a KV-cache LM's arrays start from an empty cache: an .npz need not hold one
        past = empty_past(specs)
    except QuantLensError:  # a cache of undeclared size: the arrays must supply it
        past = {}
    array_specs = [s for s in specs if s.name not in past]
    if prepared.task in MEDIA_TASKS and not (isinstance(inputs, dict) and "npz" in inputs):
        return media_feeds(prepared.model_dir, prepared.task, inputs, specs)
    if isinstance(inputs, dict) and "files" in inputs and prepared.model_dir is None:  # an ONNX upload
        prep = MediaPrep(parse_size(options.image_size), options.image_layout, options.image_scale, options.sample_rate)
        return onnx_media_feeds(prepared.fp32_path, array_specs, media_files(inputs["files"]), prep)
    if isinstance(inputs, dict) and "files" in inputs:
        raise QuantLensError("bad_inputs", "Images and audio files are inputs for image or audio classifiers; this "
                                           "model takes text or arrays (.txt, .csv or .npz).")
    if isinstance(inputs, dict) and "npz" in inputs:
        return array_feeds([f | past for f in model_inputs.feeds_from_npz(Path(inputs["npz"]), array_specs)], "npz")
    if prepared.model_dir is None:
        if inputs:
            raise QuantLensError("no_tokenizer", "Texts need a tokenizer: upload the Hugging Face folder as a .zip, "
                                                 "or give this ONNX model an .npz of input arrays.")
        return array_feeds([f | past for f in probed_generated_feeds(prepared.fp32_path, array_specs)], "generated")
    texts = model_inputs.clean_texts(list(inputs)) if inputs else list(model_inputs.DEFAULT_TEXTS)
    tokenizer = load_tokenizer(prepared.model_dir, prepared.fp32_path.parent)
    feeds = text_feeds(texts, specs, tokenizer, prepared.config, options.latency_seq_len)
    feeds.source = "texts" if inputs else "default texts"
    return feeds
