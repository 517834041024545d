"""What users type for a context, read the same way in the CLI, the page and links."""

import pytest

from core.errors import QuantLensError
from core.sizing.parsing import format_context, parse_context


@pytest.mark.parametrize(("text", "tokens"), [
    ("128k", 131_072), ("32K", 32_768), ("128 k", 131_072), ("1e5", 100_000), ("131072", 131_072),
    (131_072, 131_072), ("0", 0), ("1m", 1_048_576), ("8,192", 8192), ("4096 tokens", 4096), ("1.5k", 1536),
])
def test_a_context_is_read_as_users_mean_it_with_k_as_1024(text, tokens):
    assert parse_context(text) == tokens


@pytest.mark.parametrize("bad", ["lots", "", "-5", "12x8", "1.5", "1e9", "nan", "inf", True, 3.5, "k"])
def test_a_bad_context_is_one_clear_error_not_another_number(bad):
    with pytest.raises(QuantLensError) as err:
        parse_context(bad)
    assert err.value.code == "invalid_context"


def test_a_context_reads_back_the_way_it_was_typed():
    assert [format_context(n) for n in (131_072, 100_000, 1_048_576, 0)] == ["128k", "100000", "1m", "0"]
