"""Specification of what the model box accepts as a Hugging Face model: ids and huggingface.co links only."""

from __future__ import annotations

import pytest

from core.errors import QuantLensError
from core.sizing.hub import group_gguf_files, quant_from_filename
from core.sizing.hub_ref import HubRef, parse_hub_ref, ref_text, refs_from_query, refs_to_query


@pytest.mark.parametrize(("text", "ref"), [
    ("mistralai/Mistral-Small-24B-Instruct-2501", HubRef("mistralai/Mistral-Small-24B-Instruct-2501")),
    ("  Qwen/Qwen3-8B  ", HubRef("Qwen/Qwen3-8B")),
    ("Qwen/Qwen3-8B@v1.0", HubRef("Qwen/Qwen3-8B", "v1.0")),
    ("https://huggingface.co/meta-llama/Llama-3.1-8B", HubRef("meta-llama/Llama-3.1-8B")),
    ("huggingface.co/meta-llama/Llama-3.1-8B/tree/main", HubRef("meta-llama/Llama-3.1-8B", "main")),
    ("https://hf.co/org/name/tree/refs%2Fpr%2F3", HubRef("org/name", "refs/pr/3")),
    ("https://huggingface.co/org/name/tree/refs/pr/3", HubRef("org/name", "refs/pr/3")),
    ("https://huggingface.co/unsloth/Qwen3-8B-GGUF/blob/main/Qwen3-8B-Q4_K_M.gguf",
     HubRef("unsloth/Qwen3-8B-GGUF", "main", "Qwen3-8B-Q4_K_M.gguf")),
    ("https://huggingface.co/org/name-GGUF/resolve/abc123/Q8_0/name-Q8_0-00001-of-00002.gguf?download=true",
     HubRef("org/name-GGUF", "abc123", "Q8_0/name-Q8_0-00001-of-00002.gguf")),
])
def test_ids_and_huggingface_links_are_read_into_repo_revision_and_file(text, ref):
    assert parse_hub_ref(text) == ref


@pytest.mark.parametrize("text", [
    "https://evil.example/org/name", "http://169.254.169.254/latest/meta-data", "https://huggingface.co.evil.com/a/b",
    "https://user:pw@huggingface.co/a/b", "https://huggingface.co:8443/a/b", "file:///etc/passwd",
    "https://huggingface.co/datasets/org/data", "https://huggingface.co/spaces/org/app", "org/../etc",
    "org--x/name", "just-a-name", "a/b/c", "", "org/name@../../x", "https://huggingface.co/org/name/blob/main/../x",
    "x" * 600,
])
def test_anything_else_is_refused_before_any_request(text):
    with pytest.raises(QuantLensError) as err:
        parse_hub_ref(text)
    assert err.value.code == "hub_bad_id"
    assert "\n" not in err.value.message


def test_several_models_round_trip_through_the_link():
    refs = [HubRef("a/b", "dev", "x-Q4_K_M.gguf"), HubRef("c/d"), HubRef("e/f", "v2")]
    query = refs_to_query(refs)
    assert query == {"hf": ["a/b", "c/d", "e/f@v2"], "rev": "dev", "file": "x-Q4_K_M.gguf"}
    assert refs_from_query(query["hf"], query["rev"], query["file"]) == refs
    assert all(parse_hub_ref(ref_text(r)) == r for r in refs)


def test_gguf_file_names_state_their_type_and_split_parts_are_summed():
    assert quant_from_filename("Llama-3.2-1B-Instruct-Q4_K_M.gguf") == "Q4_K_M"
    assert quant_from_filename("model.IQ2_XXS.gguf") == "IQ2_XXS"
    assert quant_from_filename("gemma-3-4b-it-bf16.gguf") == "GGUF-BF16"
    assert quant_from_filename("mmproj-model-f16.gguf") == "GGUF-F16"
    assert quant_from_filename("model.gguf") is None
    files = group_gguf_files({"m-Q8_0-00001-of-00002.gguf": 10, "m-Q8_0-00002-of-00002.gguf": 5, "m-Q4_0.gguf": 7,
                              "README.md": 1})
    assert [(f.name, f.size_bytes, f.quant, len(f.parts)) for f in files] == [
        ("m-Q4_0.gguf", 7, "Q4_0", 1), ("m-Q8_0-00001-of-00002.gguf", 15, "Q8_0", 2)]


def test_llama_cpp_and_ollama_names_with_a_gguf_type_parse_and_round_trip():
    from core.sizing.hub_ref import parse_hub_ref, ref_text, refs_from_query, refs_to_query

    for text, quant in (("bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "Q4_K_M"),
                        ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:iq4_xs", "IQ4_XS")):
        ref = parse_hub_ref(text)
        assert ref.repo_id == "bartowski/Llama-3.2-1B-Instruct-GGUF" and ref.quant == quant
        assert parse_hub_ref(ref_text(ref)) == ref
        query = refs_to_query([ref])
        assert refs_from_query(query["hf"], None, None) == [ref]
