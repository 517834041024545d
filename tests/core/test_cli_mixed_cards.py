"""`python -m core size --mixed rtx-4090+rtx-3060-12gb`: different cards used together, in the CLI."""

import json
import re

from tests.core.test_sizing_cli import ROOT, size


def test_mixed_cards_get_one_answer_with_llama_cpp_layers_per_card_and_every_key_is_documented():
    out = size("--model", "Qwen/Qwen2.5-32B", "--precision", "Q8_0,Q6_K", "--context", "8k",
               "--mixed", "rtx-4090+rtx-3060-12gb", "--format", "json")
    assert out.returncode == 0, out.stderr
    t = json.loads(out.stdout)["together"]
    assert t["hardware_ids"] == ["rtx-4090", "rtx-3060-12gb"] and t["fits"] and t["precision"] == "Q6_K"
    assert sum(t["tensor_split"]) == 65 and t["flags"] == f"-ngl 65 -ts {t['tensor_split'][0]},{t['tensor_split'][1]}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### `python -m core size`"):readme.index("### `python -m core compare`")]
    assert set(t) <= set(re.findall(r'"([a-z_0-9]+)"', section)) and "--mixed" in section


def test_the_table_says_it_in_a_line_and_a_bad_id_is_a_one_line_error_with_its_code():
    out = size("--model", "meta-llama/Llama-3.1-70B", "--precision", "Q4_K_M", "--context", "8k",
               "--mixed", "rtx-4090+rtx-3060-12gb")
    assert out.returncode == 0, out.stderr
    assert "together: no" in out.stdout and "--tensor-split" in out.stdout and "system RAM" in out.stdout
    bad = size("--model", "meta-llama/Llama-3.1-8B", "--mixed", "rtx-4090+nope")
    assert bad.returncode != 0 and "card_set_invalid" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
