"""Reading the llama.cpp answers `make truth` records (tests/core/data/llamacpp_truth/<model>.json).

The recorder (bench/truth_llamacpp.py) stores per-expert checkpoint tensors once with a count; this expands them.
Shared by bench/truth/compare_table.py and tests/core/test_llamacpp_truth.py, so both read a record the same way.
"""

from __future__ import annotations


def hf_tensors(rec) -> list[tuple[str, tuple[int, ...]]]:
    """The checkpoint's tensors; per-expert ones are stored once as `[name with {e}, shape, count]`."""
    out = []
    for entry in rec["hf_tensors"]:
        if len(entry) == 3:
            out += [(entry[0].format(e=e), tuple(entry[1])) for e in range(entry[2])]
        else:
            out.append((entry[0], tuple(entry[1])))
    return out
