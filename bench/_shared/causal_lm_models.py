"""Small causal-LM folders built locally (no downloads): Llama- and Qwen2-shaped, random weights, own tokenizer.

Random weights prove the generation plumbing (KV-cache export, prefill, decode, perplexity), not quality. The
tokenizer is a byte-level BPE trained here on a few sentences (the kind Llama 3 / Qwen2 / SmolLM2 use), saved as
tokenizer.json, so AutoTokenizer loads it like a real model's.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Quantization stores each weight in fewer bits, so the model needs less memory.",
    "A language model reads the prompt once, then writes one token at a time.",
    "Once upon a time there was a small model that wanted to run on a laptop.",
    "The cat sat on the mat and looked at the rain outside the window.",
]


def build_byte_bpe_tokenizer(dest: Path, vocab_size: int = 512) -> int:
    """Train a byte-level BPE on CORPUS, save it as a Hugging Face fast tokenizer; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(dest)
    return tokenizer.get_vocab_size()


def build_causal_lm_folder(dest: Path, family: str = "llama", *, hidden: int = 64, layers: int = 2, heads: int = 4,
                           kv_heads: int = 2, intermediate: int = 128, positions: int = 256, vocab: int = 512,
                           tie: bool = False, seed: int = 0, model_vocab: int | None = None) -> Path:
    """A Hugging Face folder (config.json, model.safetensors, tokenizer) for a `family` ('llama' or 'qwen2') LM.

    `model_vocab` sizes the embedding table like a real model's (SmolLM2: 49152) while the tokenizer stays small.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    vocab_size = build_byte_bpe_tokenizer(dest, vocab)
    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    config_cls, model_cls = classes[family]
    config = config_cls(vocab_size=max(vocab_size, model_vocab or 0), hidden_size=hidden, intermediate_size=intermediate,
                        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                        max_position_embeddings=positions, tie_word_embeddings=tie, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(seed)
    model_cls(config).save_pretrained(dest, safe_serialization=True)
    return dest
