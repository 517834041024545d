"""`org/repo:Q4_K_M` -> that repo's GGUF file of that type, the way llama.cpp (`-hf`) and Ollama (`hf.co/...`) read it.

Why apart from core.sizing.hub: the lookup there sizes one file (or the repo's default one); this resolves the
type to a file from the repo's own listing (what the first lookup returns) and looks that file up, so a `:QUANT`
costs at most one more header read and every budget and cache of the lookup still applies.
"""

from __future__ import annotations

from core.errors import QuantLensError
from core.sizing.hub_ref import HubRef, parse_hub_ref


def lookup(text: str | HubRef, revision: str | None = None, filename: str | None = None, token: str | None = None):
    """core.sizing.hub.lookup, with `:QUANT` mapped to the repo's GGUF file of that type."""
    from dataclasses import replace

    from core.sizing import hub
    from core.sizing.precisions import get_precision

    ref = text if isinstance(text, HubRef) else parse_hub_ref(text, revision, filename)
    if not ref.quant or ref.filename:
        return hub.lookup(ref, token=token)
    base = hub.lookup(HubRef(ref.repo_id, ref.revision), token=token)
    try:
        want = get_precision(ref.quant).name
    except QuantLensError:
        want = ref.quant
    files = [f for f in base.gguf_files if not f.name.rsplit("/", 1)[-1].lower().startswith("mmproj")]
    match = [f for f in files if f.quant == want] or \
            [f for f in files if ref.quant.upper() in f.name.rsplit("/", 1)[-1].upper()]
    if not match:
        have = sorted({f.quant for f in files if f.quant})
        what = f"it has {', '.join(have)}" if have else "it has no GGUF file"
        raise QuantLensError("hub_not_found", f"{ref.repo_id} has no GGUF file of type {ref.quant}; {what}.")
    chosen = min(match, key=lambda f: len(f.parts))  # a single file before a split copy of the same type
    if base.gguf_file == chosen.name:
        return replace(base, ref=ref)
    found = hub.lookup(HubRef(ref.repo_id, ref.revision, chosen.parts[0]), token=token)
    return replace(found, ref=ref)
