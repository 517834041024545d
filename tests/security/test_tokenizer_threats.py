"""Threat 15, validator side: tokenizer files are bounded, and chat templates are never rendered by QuantLens.

The ReDoS part (a catastrophic regex that only bites when text is encoded) is covered in the worker tests:
tokenizers run only inside a job with a wall-clock limit (tests/security/test_worker_threats.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.gate.ingest import UploadLimits
from tests.security.fixtures import hf_zip

CORE = Path(__file__).resolve().parents[2] / "core"
EVIL_TEMPLATE = "{{ ''.__class__.__mro__[1].__subclasses__() }}"


def test_too_many_added_tokens_in_tokenizer_json_are_refused(sandbox):
    tokenizer = {"version": "1.0", "added_tokens": [{"id": i, "content": f"<t{i}>"} for i in range(2_000)]}
    sandbox.rejects(hf_zip(**{"tokenizer.json": json.dumps(tokenizer).encode()}), "invalid_tokenizer",
                    UploadLimits(max_added_tokens=1_000))


def test_too_many_added_tokens_in_tokenizer_config_are_refused(sandbox):
    config = {"added_tokens_decoder": {str(i): {"content": f"<t{i}>"} for i in range(2_000)}}
    sandbox.rejects(hf_zip(**{"tokenizer_config.json": json.dumps(config).encode()}), "invalid_tokenizer",
                    UploadLimits(max_added_tokens=1_000))


def test_oversized_tokenizer_json_is_refused_before_parsing(sandbox):
    sandbox.rejects(hf_zip(**{"tokenizer.json": b'{"a": "' + b"x" * 4096 + b'"}'}), "invalid_tokenizer",
                    UploadLimits(max_tokenizer_bytes=1024))


def test_tokenizer_json_that_is_not_json_is_refused(sandbox):
    sandbox.rejects(hf_zip(**{"tokenizer.json": b"{not json"}), "invalid_tokenizer")


def test_deeply_nested_json_is_refused_without_a_recursion_crash(sandbox):
    sandbox.rejects(hf_zip(**{"tokenizer.json": b"[" * 100_000 + b"]" * 100_000}), "invalid_tokenizer")


def test_a_chat_template_is_accepted_as_inert_data(sandbox):
    """The validator does not render it; it is only text in a file the worker may read."""
    upload = sandbox.validate(hf_zip(**{"tokenizer_config.json": json.dumps({"chat_template": EVIL_TEMPLATE}).encode()}))
    assert "tokenizer_config.json" in upload.files


def test_quantlens_code_never_renders_a_chat_template():
    """No module of the engine calls apply_chat_template or renders a template with jinja."""
    offenders = [
        path.name for path in CORE.rglob("*.py")
        if re.search(r"apply_chat_template|jinja2|\.from_string\(|\.render\(", path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_transformers_sandbox_refuses_the_traversal_template_if_it_were_ever_rendered():
    jinja2 = pytest.importorskip("jinja2.sandbox")
    env = jinja2.ImmutableSandboxedEnvironment()
    with pytest.raises(jinja2.SecurityError):
        env.from_string(EVIL_TEMPLATE).render()
