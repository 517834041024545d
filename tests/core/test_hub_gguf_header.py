"""Specification of reading a GGUF header from the first bytes of a file (files made by the real gguf writer)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from core.errors import QuantLensError
from core.sizing.gguf_header import config_from_gguf, read_gguf_header


class Reads:
    """A file served by range: counts requests and bytes, like the Hub would see them."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size, self.calls = data, size, []

    def __call__(self, start: int, stop: int) -> bytes:
        self.calls.append((start, stop))
        chunk = self.data[start:stop]
        return chunk + bytes(min(stop, self.size) - start - len(chunk))

    @property
    def bytes_read(self) -> int:
        return sum(b - a for a, b in self.calls)


def _llama_header(tmp_path, vocab: int) -> bytes:
    import gguf

    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(32)
    w.add_embedding_length(4096)
    w.add_head_count(32)
    w.add_head_count_kv(8)
    w.add_feed_forward_length(14336)
    w.add_context_length(131072)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_token_list([f"token{n}" for n in range(vocab)])
    w.add_token_scores([0.0] * vocab)
    w.add_tensor_info("token_embd.weight", (vocab, 4096 // 256 * 144), np.dtype(np.uint8), vocab * 4096 // 256 * 144,
                      raw_dtype=gguf.GGMLQuantizationType.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    return path.read_bytes()


def test_a_llama_3_sized_vocabulary_is_read_from_the_header_alone_in_few_requests(tmp_path):
    head = _llama_header(tmp_path, 128_256)
    size = len(head) + 128_256 * 4096 // 256 * 144 + 64
    reads = Reads(head, size)
    h = read_gguf_header(reads, size, "m.gguf")
    assert len(reads.calls) <= 2 and reads.bytes_read < 8 * 2**20
    assert h.array_lengths["tokenizer.ggml.tokens"] == 128_256
    assert h.file_type == "Q4_K_M"
    assert h.tensors[0].ggml_type == "Q4_K" and h.tensors[0].shape == (128_256, 4096)
    assert h.header_bytes == len(head)
    cfg = config_from_gguf(h)
    assert (cfg["vocab_size"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]) == (128_256, 8, 32)
    assert cfg["tie_word_embeddings"] is True  # no output.weight in the file


def test_a_header_declaring_billions_of_strings_is_refused_at_the_cap(tmp_path):
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    key = b"tokenizer.ggml.tokens"
    head += struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 8, 2**40)
    size = 10 * 2**30
    reads = Reads(head, size)
    with pytest.raises(QuantLensError) as err:
        read_gguf_header(reads, size, "hostile.gguf", max_header_bytes=4 * 2**20)
    assert err.value.code == "hub_header_too_large"
    assert reads.bytes_read <= 4 * 2**20


@pytest.mark.parametrize("data", [b"NOPE" + bytes(100), b"GGUF" + struct.pack("<IQQ", 99, 0, 0),
                                  b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0)])
def test_a_file_that_is_not_a_sane_gguf_is_refused_in_one_sentence(data):
    with pytest.raises(QuantLensError) as err:
        read_gguf_header(Reads(data, len(data)), len(data), "bad.gguf")
    assert err.value.code == "hub_bad_gguf"
    assert "\n" not in err.value.message


def test_a_header_declaring_more_array_strings_than_any_model_is_refused_before_walking_them():
    def string_array(key: bytes, count: int) -> bytes:
        return struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 8, count)

    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + string_array(b"a", 0) + string_array(b"tokenizer.ggml.merges", 2_000_001)
    reads = Reads(head + bytes(64), 10 * 2**30)
    with pytest.raises(QuantLensError) as err:
        read_gguf_header(reads, 10 * 2**30, "hostile.gguf")
    assert err.value.code == "hub_header_too_large" and "2,000,000 strings" in err.value.message
    assert len(reads.calls) == 1


def test_a_header_read_in_many_small_pieces_gives_the_same_answer_as_one_read(tmp_path):
    head = _llama_header(tmp_path, 5_000)
    size = len(head) + 5_000 * 4096 // 256 * 144 + 64
    whole = read_gguf_header(Reads(head, size), size, "m.gguf")

    class ShortReads(Reads):  # a server that answers at most 4 KiB per request: the walk resumes after each
        def __call__(self, start: int, stop: int) -> bytes:
            return super().__call__(start, min(stop, start + 4096))

    pieces = ShortReads(head, size)
    bit_by_bit = read_gguf_header(pieces, size, "m.gguf", first_read_bytes=100)
    assert len(pieces.calls) > 10
    assert bit_by_bit == whole


def test_a_header_with_more_metadata_arrays_than_any_model_is_refused_in_one_line():
    from bench.hostile_hub import gguf_string_arrays

    blob = gguf_string_arrays(arrays=65, strings=2)
    with pytest.raises(QuantLensError) as err:
        read_gguf_header(Reads(blob.head, blob.size), blob.size, "arrays.gguf")
    assert err.value.code == "hub_header_too_large" and "64 metadata arrays" in err.value.message
