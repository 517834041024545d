"""The user's inputs (texts, an .npz, or generated arrays) turned into onnxruntime feeds.

One feed per input for quality, one batch-1 feed of the latency length for timing, and equal-shape feeds for
calibration; a causal LM's KV-cache inputs start empty (`empty_past`). Which of these a model gets is decided by
core.compare.prepare.model_feeds, once the model is prepared; nothing here needs the prepared model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import QuantLensError

PAST_PREFIX = "past_key_values."  # optimum's KV-cache inputs: past_key_values.<i>.key|value


@dataclass
class Feeds:
    per_input: list[dict]  # one feed per text/sample (batch 1)
    labels: list[str]  # what the user sees for each input
    masks: list[Any]
    latency: dict  # one batch-1 feed of the latency sequence length
    calibration: list[dict]  # equal-shape feeds for static calibration
    source: str
    tokenizer: Any = None


class FastTokenizer:
    """The folder's tokenizer.json through the `tokenizers` library, shaped like the few calls the pipeline makes
    of a transformers tokenizer (`tok(text, truncation=True, max_length=n)["input_ids"]`, pad/eos ids, decode).

    Why not AutoTokenizer: importing transformers imports torch (transformers/utils/generic.py), about 0.5 GiB of
    address space and threads that every later forked step (the quantizers) would start with. The comparison
    process never needs torch once the export child has ended.
    """

    def __init__(self, tokenizer: Any, special: dict[str, str]) -> None:
        self._tok = tokenizer
        self._tok.no_padding()  # tokenizer.json may pad to a fixed length; transformers' call does not by default

        def token_id(name: str) -> int | None:
            token = special.get(name)
            return self._tok.token_to_id(token) if token else None

        self.pad_token_id = token_id("pad_token")
        self.eos_token_id = token_id("eos_token")

    @classmethod
    def from_folder(cls, folder: Path) -> FastTokenizer:
        import json

        from tokenizers import Tokenizer

        special: dict[str, str] = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the latter wins, as in transformers
            try:
                loaded = json.loads((folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            for key, value in loaded.items() if isinstance(loaded, dict) else ():
                value = value.get("content") if isinstance(value, dict) else value
                if key.endswith("_token") and isinstance(value, str):
                    special[key] = value
        return cls(Tokenizer.from_file(str(folder / "tokenizer.json")), special)

    def __call__(self, text: str, truncation: bool = False, max_length: int | None = None) -> dict[str, list[int]]:
        if truncation and max_length:
            self._tok.enable_truncation(max_length)
        else:
            self._tok.no_truncation()
        return {"input_ids": list(self._tok.encode(text).ids)}

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)


def _save_fast_tokenizer(model_dir: str, out_dir: str) -> dict:
    """In a child (transformers imports torch): convert a vocab-files-only tokenizer to tokenizer.json."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, trust_remote_code=False)
    if not getattr(tokenizer, "is_fast", False):
        return {"saved": False}
    tokenizer.save_pretrained(out_dir)
    return {"saved": True}


def load_tokenizer(model_dir: Path, work_dir: Path | None = None):
    """The folder's tokenizer without importing torch here: tokenizer.json directly; vocab files converted to
    one in a child process (into `work_dir`); transformers in this process only when neither works."""
    from core.compare.common.step_process import isolation_available, run_isolated

    model_dir = Path(model_dir)
    try:
        if (model_dir / "tokenizer.json").is_file():
            return FastTokenizer.from_folder(model_dir)
        if work_dir is not None and isolation_available(uses_torch=True):
            converted = Path(work_dir) / "tokenizer"
            if run_isolated(_save_fast_tokenizer, str(model_dir), str(converted), uses_torch=True).get("saved"):
                return FastTokenizer.from_folder(converted)
    except Exception:  # noqa: BLE001, S110 - any failure falls back to transformers, which names the problem
        pass
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise QuantLensError("no_tokenizer", "The model folder has no usable tokenizer (tokenizer.json, or vocab "
                                             f"files with tokenizer_config.json): {str(exc)[:120]}") from None


def max_positions(config: dict) -> int:
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return min(value, 4096)
    return 512


def text_feeds(texts: list[str], specs, tokenizer, config: dict, latency_len: int) -> Feeds:
    import numpy as np

    max_len = max_positions(config)
    names = {s.name for s in specs}
    supported = {"input_ids", "attention_mask", "token_type_ids", "position_ids"}
    past = empty_past(specs)  # a causal LM exported with its KV cache reads each text from an empty cache
    unsupported = sorted(names - supported - set(past))
    if unsupported:
        raise QuantLensError("unsupported_input", f"The model has inputs QuantLens cannot build from text: {', '.join(unsupported)}.")

    def complete(ids: np.ndarray, mask: np.ndarray) -> dict:
        feed = {"input_ids": ids.astype(np.int64)}
        if "attention_mask" in names:
            feed["attention_mask"] = mask.astype(np.int64)
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        if "position_ids" in names:
            feed["position_ids"] = np.arange(ids.shape[1], dtype=np.int64)[None, :]
        feed.update(past)
        return feed

    per_input, masks = [], []
    for text in texts:
        ids = np.asarray(tokenizer(text, truncation=True, max_length=max_len)["input_ids"], dtype=np.int64)[None, :]
        if ids.shape[1] == 0:
            ids = np.zeros((1, 1), np.int64)
        mask = np.ones_like(ids)
        per_input.append(complete(ids, mask))
        masks.append(mask)
    seq = max(1, min(latency_len, max_len))
    flat = np.concatenate([f["input_ids"][0] for f in per_input])
    latency_ids = np.resize(flat, seq)[None, :]  # the users' tokens, repeated to the latency length
    latency = complete(latency_ids, np.ones_like(latency_ids))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(f["input_ids"].shape[1] for f in per_input)
    calibration = []
    for f in per_input:
        n = f["input_ids"].shape[1]
        ids = np.full((1, width), pad_id, np.int64)
        ids[0, :n] = f["input_ids"][0]
        mask = np.zeros((1, width), np.int64)
        mask[0, :n] = 1
        calibration.append(complete(ids, mask))
    return Feeds(per_input, list(texts), masks, latency, calibration, "texts", tokenizer)


def array_feeds(feeds: list[dict], source: str) -> Feeds:
    labels = [f"sample {i + 1}" for i in range(len(feeds))]
    return Feeds(feeds, labels, [None] * len(feeds), feeds[0], feeds, source)


def empty_past(specs) -> dict[str, Any]:
    """Zero-length past tensors for a KV-cache graph ({} for a graph without one): the prompt runs from nothing.

    A past input is [batch, kv_heads, past_sequence_length, head_dim]; batch is 1, the past length 0, and the
    head dimensions must be declared numbers (optimum declares them).
    """
    import numpy as np

    past = {}
    for spec in specs:
        if not spec.name.startswith(PAST_PREFIX):
            continue
        shape = []
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int) and dim > 0 and axis != 2:
                shape.append(dim)
            elif axis == 0:
                shape.append(1)
            elif axis == 2:
                shape.append(0)
            else:
                raise QuantLensError("unsupported_input", f"The KV-cache input {spec.name} has an undeclared size "
                                                          f"in dimension {axis}; QuantLens cannot build an empty cache.")
        past[spec.name] = np.zeros(shape, dtype=np.dtype(spec.dtype))
    return past
