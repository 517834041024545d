"""Write a weight-free, shape-exact GGUF for a config.json, with llama.cpp's own converter.

Why the converter itself: what a published GGUF holds (names, shapes, which tensors stay F32, how MoE experts
are stacked, MTP/nextn layers, SSM A = -exp(A_log), conv1d squeezed, the metadata llama.cpp needs to load the
architecture) is decided by llama.cpp's `convert_hf_to_gguf.py`. Running it on lazy tensors that live on
PyTorch's meta device gives all of that without a single weight: the header is written as the converter would
write it, and the data section is made sparse with truncate (it costs no disk and reads as zeros).

The tensor list comes from transformers building the model on the meta device (never trust_remote_code). A
few checkpoints hold tensors transformers does not build (GLM-4.5's MTP/nextn layer); `_extra_tensors` adds
those from the config, as the Hub checkpoint has them.

Run as: python bench/truth/sparse_gguf.py LLAMA_CPP_TREE OUT_DIR CONFIG.json...  (one JSON line per config)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path


def meta_inventory(cfg: dict) -> list[tuple[str, tuple[int, ...]]]:
    """(HF name, shape) of every parameter, from transformers on the meta device (no weights, no remote code)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    named = list(model.named_parameters())  # tied parameters are listed once, as the checkpoint stores them
    names = {n for n, _ in named}
    out = [(n, tuple(p.shape)) for n, p in named]
    # a checkpoint stores tied lm_head only when it is not tied
    if not cfg.get("tie_word_embeddings", True) and "lm_head.weight" not in names:
        emb = model.get_input_embeddings().weight
        out.append(("lm_head.weight", tuple(emb.shape)))
    return out + _extra_tensors(cfg, out)


def _extra_tensors(cfg: dict, tensors: list[tuple[str, tuple[int, ...]]]) -> list[tuple[str, tuple[int, ...]]]:
    """Tensors the Hub checkpoint has and transformers does not build: GLM-4.5 / DeepSeek-V3 MTP (nextn) layers,
    stored as `model.layers.{num_hidden_layers + k}.*` (a full decoder layer plus eh_proj, enorm, hnorm, shared_head)."""
    n_mtp = int(cfg.get("num_nextn_predict_layers") or 0)
    if not n_mtp or cfg.get("model_type") not in ("glm4_moe", "deepseek_v3"):
        return []
    n = cfg["num_hidden_layers"]
    last = n - 1
    e = cfg["hidden_size"]
    layer = [(name, shape) for name, shape in tensors if name.startswith(f"model.layers.{last}.")]
    extra: list[tuple[str, tuple[int, ...]]] = []
    for k in range(n_mtp):
        i = n + k
        extra += [(name.replace(f"model.layers.{last}.", f"model.layers.{i}."), shape) for name, shape in layer]
        extra += [
            (f"model.layers.{i}.eh_proj.weight", (e, 2 * e)),
            (f"model.layers.{i}.enorm.weight", (e,)),
            (f"model.layers.{i}.hnorm.weight", (e,)),
            (f"model.layers.{i}.shared_head.norm.weight", (e,)),
            (f"model.layers.{i}.embed_tokens.weight", (cfg["vocab_size"], e)),
            (f"model.layers.{i}.shared_head.head.weight", (cfg["vocab_size"], e)),
        ]
    return extra


def write_sparse_gguf(tree: Path, cfg: dict, out: Path, outtype: str = "f16") -> dict:
    """Run llama.cpp's converter over meta tensors and write header + sparse data to `out`."""
    sys.path.insert(0, str(tree))
    sys.path.insert(1, str(tree / "gguf-py"))
    import gguf
    import torch
    from conversion import get_model_class
    from conversion.base import LazyTorchTensor, ModelBase, ModelType, get_model_architecture

    inventory = meta_inventory(cfg)
    dtype = {"float16": torch.float16, "float32": torch.float32}.get(str(cfg.get("torch_dtype")), torch.bfloat16)

    def index_tensors(self, remote_hf_model_id=None):
        # Data is never written; the few converter steps that look at values (Mamba's "is output.weight equal to
        # token_embd?") get a constant distinct per tensor, so different checkpoint tensors stay different.
        tensors = {}
        for k, (name, shape) in enumerate(inventory):
            def gen(s=shape, v=float(k + 1)):
                return LazyTorchTensor(meta=LazyTorchTensor.meta_with_dtype_and_shape(dtype, s), args=(),
                                       func=lambda: torch.full(s, v, dtype=dtype))
            if item := self.filter_tensors((name, gen)):
                tensors[item[0]] = item[1]
        return tensors

    def set_vocab(self):
        # A real BPE tokenizer from llama.cpp's tree (models/ggml-vocab-gpt-neox.gguf), cut or padded with unused
        # tokens to the model's vocabulary size: llama.cpp checks token_embd's rows against the token count.
        n_vocab = int(self.hparams.get("vocab_size") or self.hparams.get("text_config", {}).get("vocab_size"))
        reader = gguf.GGUFReader(tree / "models" / "ggml-vocab-gpt-neox.gguf", "r")
        K = gguf.Keys.Tokenizer
        tokens = [bytes(reader.get_field(K.LIST).parts[i]) for i in reader.get_field(K.LIST).data][:n_vocab]
        types = [int(reader.get_field(K.TOKEN_TYPE).parts[i][0]) for i in reader.get_field(K.TOKEN_TYPE).data][:n_vocab]
        pad = n_vocab - len(tokens)
        tokens += [f"<|quantlens_pad_{i}|>".encode() for i in range(pad)]  # the neox vocab has its own [PADn]
        types += [int(gguf.TokenType.UNUSED)] * pad
        w = self.gguf_writer
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges([bytes(reader.get_field(K.MERGES).parts[i]) for i in reader.get_field(K.MERGES).data])
        w.add_bos_token_id(0)
        w.add_eos_token_id(0)

    ModelBase.index_tensors = index_tensors
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config.json").write_text(json.dumps(cfg))
        if str(cfg.get("model_type", "")).startswith("gemma3"):
            # conversion/gemma.py cuts token_embd to the tokenizer's real size, read from tokenizer.json; assumed
            # here to be vocab_size entries (no cut). A real tokenizer with fewer entries would shrink token_embd.
            vocab = {f"t{i}": i for i in range(int(cfg["vocab_size"]))}
            (Path(d) / "tokenizer.json").write_text(json.dumps({"model": {"vocab": vocab}, "added_tokens": []}))
        hparams = ModelBase.load_hparams(Path(d), False)
        arch = get_model_architecture(hparams, ModelType.TEXT)
        cls = get_model_class(arch)
        cls.set_vocab = set_vocab
        options = []
        if getattr(cls, "supports_mtp_export", False) and arch == "Qwen3NextForCausalLM" \
                and not cfg.get("mtp_num_hidden_layers"):
            # The converter asserts on Qwen3-Next without MTP layers in the config; its --no-mtp writes the model
            # as the GGUF files published before MTP support (no extra block).
            cls.no_mtp = True
            options.append("--no-mtp")
        ftype = {"f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                 "f32": gguf.LlamaFileType.ALL_F32}[outtype]
        old = os.getcwd()
        os.chdir(tree)  # _set_vocab_builtin reads models/ relative to sys.path[0]
        try:
            model = cls(Path(d), ftype, out, eager=False)
            model.prepare_tensors()
            model.prepare_metadata(vocab_only=False)
            w = model.gguf_writer
            tensor_infos = [(n, [int(x) for x in ti.shape], gguf.GGMLQuantizationType(ti.dtype).name, int(ti.nbytes))
                            for n, ti in w.tensors[0].items()]
            w.write_header_to_file(path=out)
            w.write_kv_data_to_file()
            w.write_ti_data_to_file()
            assert w.fout is not None
            fout = w.fout[0]
            fout.flush()
            start = w.ggml_pad(fout.tell(), w.data_alignment)
            total = start + sum(w.ggml_pad(nb, w.data_alignment) for *_, nb in tensor_infos)
            fout.close()
            w.fout = None
            os.truncate(out, total)  # the data section: sparse zeros
        finally:
            os.chdir(old)
    return {"converter_options": options, "hf_architecture": arch, "gguf_arch": gguf.MODEL_ARCH_NAMES[model.model_arch],
            "hf_tensors": [[n, list(s)] for n, s in inventory], "tensors": tensor_infos, "file_bytes": total}


def dedupe_vocab(path: Path) -> bool:
    """Rewrite a sparse GGUF's header if its token list repeats a string (llama.cpp asserts on that): the files
    written before the pad tokens got unique names. Tensor infos and the sparse data size stay the same."""
    import numpy as np
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    r = GGUFReader(path, "r")
    field = r.get_field("tokenizer.ggml.tokens")
    tokens = field.contents()
    if len(set(tokens)) == len(tokens):
        return False
    seen: set[str] = set()
    fixed = []
    for i, tok in enumerate(tokens):
        fixed.append(tok if tok not in seen else f"<|quantlens_pad_{i}|>")
        seen.add(fixed[-1])
    tmp = path.with_suffix(".tmp.gguf")
    w = GGUFWriter(tmp, arch=r.get_field("general.architecture").contents())
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(key, fixed if key == "tokenizer.ggml.tokens" else f.contents(), vtype, sub_type=sub)
    for t in r.tensors:
        w.add_tensor_info(t.name, [int(x) for x in reversed(t.shape.tolist())], np.dtype(np.float32), int(t.n_bytes),
                          raw_dtype=t.tensor_type)
    w.write_header_to_file(path=tmp)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    fout.flush()
    start = w.ggml_pad(fout.tell(), w.data_alignment)
    total = start + sum(w.ggml_pad(int(t.n_bytes), w.data_alignment) for t in r.tensors)
    fout.close()
    w.fout = None
    os.truncate(tmp, total)
    os.replace(tmp, path)
    return True


if __name__ == "__main__":
    import logging
    import traceback

    logging.basicConfig(level=logging.WARNING)
    tree_, outdir_ = Path(sys.argv[1]), Path(sys.argv[2])
    for cfg_path in sys.argv[3:]:
        name = Path(cfg_path).stem
        try:
            result = write_sparse_gguf(tree_, json.loads(Path(cfg_path).read_text()), outdir_ / f"{name}.gguf")
            result["model"] = name
        except Exception as exc:  # noqa: BLE001 - one architecture failing must not stop the others
            traceback.print_exc()
            result = {"model": name, "error": f"{type(exc).__name__}: {exc}"[:500]}
        print("SPARSE_GGUF_JSON " + json.dumps(result), flush=True)
