"""Every model shipped in the catalog goes through the whole calculator without surprises."""

import pytest

from core import sizing
from core.sizing import catalog
from core.sizing.precisions import PRECISIONS

ALL = [p.name for p in PRECISIONS]
CATALOG_IDS = [m.id for m in catalog.load_models()]


@pytest.mark.parametrize("model_id", CATALOG_IDS)
def test_every_catalog_model_sizes_at_every_precision_with_plausible_bits_per_weight(model_id):
    model = sizing.model_from_catalog(model_id)
    result = sizing.calculate([model], ALL, 4096, 2, "q8_0", "vllm", catalog.load_hardware()[:2])
    for e in result.estimates[0]:
        bits = 8 * e.weights_bytes / model.parameters
        assert 1.5 <= bits <= 34, (e.precision, bits)
        assert e.total_min_bytes <= e.total_bytes <= e.total_max_bytes
    assert len(result.fits) == 2 * len(ALL)


def test_gpt_oss_mxfp4_file_matches_the_published_12_gb():
    model = sizing.model_from_catalog("openai/gpt-oss-20b")
    assert sizing.weights_bytes(model, "MXFP4_MOE") / 1e9 == pytest.approx(12.1, rel=0.02)


def test_llama_3_1_70b_q4_k_m_is_about_42_5_gb_like_published_ggufs():
    # bartowski/Meta-Llama-3.1-70B-Instruct-GGUF lists Q4_K_M at 42.52 GB.
    model = sizing.model_from_catalog("meta-llama/Llama-3.1-70B")
    assert sizing.weights_bytes(model, "Q4_K_M") / 1e9 == pytest.approx(42.52, rel=0.01)


def test_catalog_models_resolve_by_short_id():
    assert sizing.model_from_catalog("Llama-3.1-8B").parameters == 8_030_261_248
