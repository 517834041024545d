"""Size a model on the Hugging Face Hub by its id, from metadata only: never its weights.

Why this shape: the first thing users type is a model id. What the repo really holds is the truth, so the
lookup reads it from the smallest pieces the Hub serves: the model-info API (commit, files, sizes), config.json
(through the same JSON-only validator and bounds as an upload), each safetensors shard's header by a range
request (exact element counts per dtype, so pre-quantized repos are sized from the bytes they hold), and for
GGUF repos each file's size and the chosen file's header (its own architecture and tensor types).

Rules held here:
- only the configured endpoint (HF_ENDPOINT, default https://huggingface.co) is contacted, with paths built
  from a validated repo id (core.sizing.hub_ref); header reads are capped (a repo may declare a 100 MB header);
- one budget per lookup (core.sizing.hub_http): a total deadline, a cap on decoded bytes and on parsed JSON
  values, redirects only within the Hub's hosts; file names the Hub lists must be plain paths inside the repo;
- a token lives only in the call: never stored, logged, put in a cache key or an error message;
- results are cached in-process by (repo, resolved commit, file); a branch name resolves to its commit for a
  few minutes, so a repeated lookup makes no request. Results that needed a user's token are not cached.
  Failures of token-less lookups are cached for FAILURE_TTL_S, so a page's reruns do not ask again.

`huggingface_hub` and `gguf` are imported inside functions only, so importing core.sizing stays light.
"""

from __future__ import annotations

import os
import posixpath
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from core.errors import QuantLensError
from core.sizing.architecture import MAX_CONFIG_BYTES, architecture_from_config, parse_config_json
from core.sizing.engine import ModelSpec, model_from_architecture, model_from_params, weights_bytes
from core.sizing.hub_http import HubHttp
from core.sizing.hub_ref import HubRef, parse_hub_ref
from core.sizing.precisions import PRECISIONS, get_precision

DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT_S = 15.0
MAX_FILES = 20_000  # a model repo with more files than this is not listed
MAX_SHARDS = 256  # safetensors shards or GGUF split parts whose headers are read
SAFETENSORS_FIRST_READ = 64 * 2**10  # one range request covers the header of almost every real shard
MAX_SAFETENSORS_HEADER = 16 * 2**20
GGUF_SPLIT_FIRST_READ = 256 * 2**10
RESOLVE_TTL_S = 300.0
CACHE_SIZE = 128
FAILURE_TTL_S = 60.0
FAILURE_CACHE_SIZE = 256
MAX_INFO_BYTES = 32 * 2**20  # the model-info JSON: 20,000 files take ~6 MB
MAX_FILE_NAME_CHARS = 1000
# Lookups running at once in this process: each may use its whole budget (~110 MiB worst measured, 512 MB allowed),
# so many sessions opening one hostile link cannot add up; the others wait up to SLOT_WAIT_S, then `hub_busy`.
MAX_CONCURRENT_LOOKUPS = 4
SLOT_WAIT_S = 30.0
_slots = threading.BoundedSemaphore(MAX_CONCURRENT_LOOKUPS)
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_NOT_IN_NAMES = re.compile(r"[\x00-\x1f\x7f\\]")  # control characters (NUL, newline...) and backslashes
_SPLIT_RE = re.compile(r"^(?P<base>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$")


@dataclass(frozen=True)
class GgufFile:
    """One GGUF model in the repo: a single file, or split parts `-0000k-of-0000N` summed."""

    name: str
    parts: tuple[str, ...]
    size_bytes: int
    quant: str | None  # the precision name its file name states (Q4_K_M...), None when it states none


@dataclass(frozen=True)
class SizeCheck:
    """The calculator's prediction next to what the Hub publishes, so every lookup checks the arithmetic."""

    label: str
    predicted_bytes: int
    published_bytes: int

    @property
    def error_percent(self) -> float:
        return 100.0 * (self.predicted_bytes - self.published_bytes) / self.published_bytes if self.published_bytes else 0.0


@dataclass(frozen=True)
class HubModel:
    """What a lookup found. `spec` feeds the engine like any catalog model; the rest is shown beside it."""

    ref: HubRef
    commit: str
    spec: ModelSpec
    kind: str  # "safetensors" | "gguf" | "config"
    stored_precision: str | None  # the precision the repo (or chosen GGUF file) is stored in, when known
    stored_weights_bytes: int | None  # exact tensor bytes from the headers
    parameters_by_dtype: dict[str, int] = field(default_factory=dict)  # elements per stored dtype (header truth)
    weight_files: tuple[tuple[str, int], ...] = ()  # (file, bytes) of the files sized
    gguf_files: tuple[GgufFile, ...] = ()
    gguf_file: str | None = None  # the GGUF model whose header was read
    gguf_types: dict[str, int] = field(default_factory=dict)  # bytes per ggml type in that file
    checks: tuple[SizeCheck, ...] = ()
    notes: tuple[str, ...] = ()
    gated: bool = False
    requests: int = 0  # HTTP requests this lookup made (0 when answered from the cache)

    @property
    def link_params(self) -> dict[str, str]:
        """The calculator link's keys for this model (hf=, rev=, file=)."""
        out = {"hf": self.ref.repo_id}
        if self.ref.revision:
            out["rev"] = self.ref.revision
        if self.ref.filename:
            out["file"] = self.ref.filename
        return out


# ------------------------------------------------------------------------------------------------ cache

_lock = threading.Lock()
_results: OrderedDict[tuple[str, str, str], HubModel] = OrderedDict()
_resolved: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()  # LRU, at most CACHE_SIZE entries
_failures: OrderedDict[tuple[str, str, str, str], tuple[QuantLensError, float]] = OrderedDict()


def clear_cache() -> None:
    with _lock:
        _results.clear()
        _resolved.clear()
        _failures.clear()


def _failure_key(ref: HubRef) -> tuple[str, str, str, str]:
    return (endpoint(), ref.repo_id, ref.revision or "", ref.filename or "")


def _cached_failure(ref: HubRef) -> QuantLensError | None:
    with _lock:
        hit = _failures.get(_failure_key(ref))
        if hit is None:
            return None
        if time.monotonic() - hit[1] >= FAILURE_TTL_S:
            del _failures[_failure_key(ref)]
            return None
        _failures.move_to_end(_failure_key(ref))
    return QuantLensError(hit[0].code, hit[0].message)


def _store_failure(ref: HubRef, exc: QuantLensError) -> None:
    with _lock:
        _failures[_failure_key(ref)] = (QuantLensError(exc.code, exc.message), time.monotonic())
        while len(_failures) > FAILURE_CACHE_SIZE:
            _failures.popitem(last=False)


def _cached(repo_id: str, commit: str, filename: str | None) -> HubModel | None:
    with _lock:
        hit = _results.get((repo_id, commit, filename or ""))
        if hit is not None:
            _results.move_to_end((repo_id, commit, filename or ""))
        return hit


def _store(model: HubModel, revision: str | None, cacheable: bool) -> None:
    if not cacheable:
        return
    with _lock:
        _results[(model.ref.repo_id, model.commit, model.ref.filename or "")] = model
        while len(_results) > CACHE_SIZE:
            _results.popitem(last=False)
        _resolved[(model.ref.repo_id, revision or "")] = (model.commit, time.monotonic())
        _resolved.move_to_end((model.ref.repo_id, revision or ""))
        while len(_resolved) > CACHE_SIZE:  # bounded like _results: 2,000 lookups once left 2,001 entries
            _resolved.popitem(last=False)


def _resolved_commit(repo_id: str, revision: str | None) -> str | None:
    if revision and _COMMIT_RE.match(revision):
        return revision
    with _lock:
        hit = _resolved.get((repo_id, revision or ""))
    if hit and time.monotonic() - hit[1] < RESOLVE_TTL_S:
        return hit[0]
    return None


# ----------------------------------------------------------------------------------------------- errors

def endpoint() -> str:
    """The one Hub endpoint ever contacted: HF_ENDPOINT (a mirror, or a local server in tests) or huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _translate(exc: BaseException, ref: HubRef, with_token: bool) -> QuantLensError:
    """Library and network exceptions -> one sentence with a stable code (never the URL or the token)."""
    import requests
    from huggingface_hub import errors as hf

    repo = ref.repo_id
    if isinstance(exc, QuantLensError):
        return exc
    if isinstance(exc, hf.GatedRepoError):
        what = ("the token given cannot read it: accept the model's licence on its Hub page with the account that "
                "owns the token") if with_token else (
            "accept its licence on the model's Hub page, then paste a read token from huggingface.co/settings/tokens "
            "(it is used for this lookup only and never stored)")
        return QuantLensError("hub_gated", f"{repo} is a gated model; {what}.")
    if isinstance(exc, hf.RevisionNotFoundError):
        return QuantLensError("hub_not_found", f"{repo} has no revision {ref.revision!r}.")
    if isinstance(exc, hf.EntryNotFoundError):
        return QuantLensError("hub_not_found", f"{repo} has no file {ref.filename or ''!r} at that revision.")
    if isinstance(exc, hf.RepositoryNotFoundError):
        return QuantLensError("hub_not_found", f"No model {repo} on the Hub (if it is private, paste a token that can "
                                               "read it).")
    if isinstance(exc, (hf.OfflineModeIsEnabled,)):
        return QuantLensError("hub_offline", "The Hub lookup is off (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set); pick a "
                                             "catalog model or upload a config.json.")
    if isinstance(exc, requests.Timeout):
        return QuantLensError("hub_timeout", f"The Hub did not answer within {TIMEOUT_S:.0f} s; try again.")
    if isinstance(exc, requests.ConnectionError):
        return QuantLensError("hub_offline", "The Hub cannot be reached from here (offline or blocked); pick a catalog "
                                             "model or upload a config.json.")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 429:
        return QuantLensError("hub_rate_limited", "The Hub is rate limiting this server; wait a minute and try again "
                                                  "(a token raises the limit).")
    if status == 401:
        return QuantLensError("hub_bad_token", "The Hub refused the token; check that it is a valid read token.")
    if status == 403:
        return QuantLensError("hub_gated", f"Access to {repo} is refused; the token cannot read this repo.")
    if status is not None and status >= 500:
        return QuantLensError("hub_unavailable", f"The Hub answered with an error ({status}); try again later.")
    if status is not None:
        return QuantLensError("hub_unavailable", f"The Hub refused the lookup of {repo} ({status}).")
    return QuantLensError("hub_unavailable", f"The Hub lookup of {repo} failed ({type(exc).__name__}).")


# --------------------------------------------------------------------------------------------- requests

class _Client:
    """The lookup's few requests, all within one budget (hub_http.HubHttp); counts them."""

    def __init__(self, ref: HubRef, http: HubHttp) -> None:
        self.ref = ref
        self.endpoint = http.endpoint
        self.http = http
        self.requests = 0

    def model_info(self) -> Any:
        """The model-info API, as HfApi.model_info asks it, but read within the budget and counted before parsing."""
        import json
        from urllib.parse import quote

        from huggingface_hub.hf_api import ModelInfo

        self.requests += 1
        url = f"{self.endpoint}/api/models/{self.ref.repo_id}"
        if self.ref.revision is not None:
            url += f"/revision/{quote(self.ref.revision, safe='')}"
        _response, body = self.http.get(url, params={"blobs": "True"}, limit=MAX_INFO_BYTES, what="the model info")
        self.http.budget.take_json(body, "The model info")
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or not isinstance(data.get("siblings", []), (list, type(None))):
                raise ValueError("not an object")
            if len(data.get("siblings") or ()) > MAX_FILES:  # before one object is built per file
                raise QuantLensError("hub_repo_too_large", f"{self.ref.repo_id} lists more than {MAX_FILES:,} files, too "
                                                           "many to size; link one file instead.")
            info = ModelInfo(**{k: data[k] for k in ("id", "sha", "siblings", "gated", "private") if k in data})
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            raise QuantLensError("hub_unavailable", f"The Hub's model info for {self.ref.repo_id} is not valid JSON "
                                                    "model info.") from None
        return info

    def url(self, commit: str, filename: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(self.ref.repo_id, filename, revision=commit, endpoint=self.endpoint)

    def read(self, commit: str, filename: str, start: int, stop: int) -> bytes:
        """Bytes start..stop-1 of a file by one range request; never more than stop-start bytes are kept."""
        if stop <= start:
            return b""
        self.requests += 1
        url = self.url(commit, filename)
        inside = urlsplit(self.endpoint).path.rstrip("/") + f"/{self.ref.repo_id}/resolve/{commit}/"
        if not posixpath.normpath(unquote(urlsplit(url).path)).startswith(inside):
            raise _bad_file_name(self.ref, filename)  # never a path outside the repo, whatever the quoting did
        # a server that ignores Range sends the file from 0: the bytes before `start` are read and dropped
        response, body = self.http.get(url, headers={"Range": f"bytes={start}-{stop - 1}"}, limit=stop, truncate=True,
                                       what=filename[:100])
        skip = start if response.status_code == 200 else 0
        return body[skip:skip + (stop - start)]


# -------------------------------------------------------------------------------------------- the lookup

def lookup(text: str | HubRef, revision: str | None = None, filename: str | None = None, token: str | None = None
           ) -> HubModel:
    """Size the model at a Hub id or link. Raises QuantLensError with a `hub_*` code on every failure."""
    ref = text if isinstance(text, HubRef) else parse_hub_ref(text, revision, filename)
    hit = peek(ref)
    if hit is not None:
        return hit
    if not token:
        failed = _cached_failure(ref)
        if failed is not None:
            raise failed
    if not _slots.acquire(timeout=SLOT_WAIT_S):
        raise QuantLensError("hub_busy", "The server is busy with other Hub lookups; try again in a minute.")
    try:
        if not token:  # the lookup this one waited behind may have answered it
            hit, failed = peek(ref), _cached_failure(ref)
            if hit is not None:
                return hit
            if failed is not None:
                raise failed
        return _lookup_now(ref, token)
    finally:
        _slots.release()


def _lookup_now(ref: HubRef, token: str | None) -> HubModel:
    http = HubHttp(endpoint(), token, read_timeout_s=TIMEOUT_S)
    try:
        with http:
            model, cacheable = _lookup(_Client(ref, http))
    except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence, never a traceback
        error = http.budget.deadline_error() if http.budget.over else _translate(exc, ref, bool(token))
        if not token:
            _store_failure(ref, error)
        raise error from None
    _store(model, ref.revision, cacheable or not token)
    return model


def peek(ref: HubRef) -> HubModel | None:
    """The cached answer for `ref` when one is known without any request (a commit, or a branch resolved lately)."""
    commit = _resolved_commit(ref.repo_id, ref.revision)
    if commit is not None:
        hit = _cached(ref.repo_id, commit, ref.filename)
        if hit is not None:
            return replace(hit, ref=ref, requests=0)
    return None


def cached_failure(ref: HubRef) -> QuantLensError | None:
    """The failure of a token-less lookup of `ref` within the last FAILURE_TTL_S seconds, if any."""
    return _cached_failure(ref)


def _bad_file_name(ref: HubRef, name: object) -> QuantLensError:
    shown = repr(name)[:80]
    return QuantLensError("hub_bad_file_name", f"The Hub listed a file of {ref.repo_id} whose name is not a plain path "
                                               f"inside the repo ({shown}); the lookup is refused.")


def plain_repo_path(name: object) -> bool:
    """A file name the Hub lists is used only when it is a plain relative path inside the repo: no absolute path,
    backslash, control character (NUL, newline), empty, '.' or '..' segment."""
    if not isinstance(name, str) or not name or len(name) > MAX_FILE_NAME_CHARS:
        return False
    if name.startswith("/") or _NOT_IN_NAMES.search(name):
        return False
    return all(seg not in ("", ".", "..") for seg in name.split("/"))


def _sizes(info: Any, ref: HubRef) -> dict[str, int]:
    out = {}
    for s in info.siblings or ():
        if not plain_repo_path(s.rfilename):
            raise _bad_file_name(ref, s.rfilename)
        size = s.lfs.size if s.lfs is not None and getattr(s.lfs, "size", None) else s.size
        out[s.rfilename] = int(size) if isinstance(size, int) else -1
    return out


def _lookup(client: _Client) -> tuple[HubModel, bool]:
    ref = client.ref
    info = client.model_info()
    commit = info.sha or ""
    if not _COMMIT_RE.match(commit):
        raise QuantLensError("hub_unavailable", f"The Hub did not say which commit {ref.repo_id} is at.")
    hit = _cached(ref.repo_id, commit, ref.filename)
    if hit is not None:
        return replace(hit, ref=ref, requests=client.requests), True
    if info.siblings is None or len(info.siblings) > MAX_FILES:
        raise QuantLensError("hub_repo_too_large", f"{ref.repo_id} lists more than {MAX_FILES:,} files, too many to "
                                                   "size; link one file instead.")
    sizes = _sizes(info, ref)
    gated = bool(info.gated) or bool(info.private)
    name = ref.repo_id
    if ref.filename is not None:
        if ref.filename not in sizes:
            raise QuantLensError("hub_not_found", f"{ref.repo_id} has no file {ref.filename!r} at that revision.")
        if ref.filename.endswith(".gguf"):
            return _gguf(client, commit, sizes, name, gated), not gated
        if not ref.filename.endswith(".safetensors"):
            raise QuantLensError("hub_bad_id", f"{ref.filename!r} is neither a .gguf nor a .safetensors file.")
        return _safetensors(client, commit, sizes, [ref.filename], name, gated), not gated
    shards = _safetensors_files(sizes)
    if shards:
        return _safetensors(client, commit, sizes, shards, name, gated), not gated
    if any(f.endswith(".gguf") for f in sizes):
        return _gguf(client, commit, sizes, name, gated), not gated
    if "config.json" in sizes:
        return _safetensors(client, commit, sizes, [], name, gated), not gated
    raise QuantLensError("hub_no_weights", f"{ref.repo_id} has no config.json, safetensors or GGUF file to size.")


def _safetensors_files(sizes: dict[str, int]) -> list[str]:
    """Top-level weight shards; `model*.safetensors` win over duplicates such as Mistral's consolidated file."""
    top = sorted(f for f in sizes if f.endswith(".safetensors") and "/" not in f)
    preferred = [f for f in top if f.startswith("model")]
    return preferred or top


# ------------------------------------------------------------------------------------------ safetensors

def _read_config(client: _Client, commit: str, sizes: dict[str, int]) -> dict[str, Any] | None:
    if "config.json" not in sizes:
        return None
    if sizes["config.json"] > MAX_CONFIG_BYTES:
        raise QuantLensError("config_too_large", f"{client.ref.repo_id}'s config.json is larger than "
                                                 f"{MAX_CONFIG_BYTES // 1000} kB.")
    raw = client.read(commit, "config.json", 0, MAX_CONFIG_BYTES + 1)
    client.http.budget.take_json(raw, "config.json")
    return parse_config_json(raw)


def _shard_header(client: _Client, commit: str, filename: str, size: int) -> Any:
    import struct

    from core.gate.safetensors_header import parse_header_bytes

    raw = client.read(commit, filename, 0, min(size, SAFETENSORS_FIRST_READ))
    if len(raw) >= 8:
        (n,) = struct.unpack("<Q", raw[:8])
        if n > MAX_SAFETENSORS_HEADER:
            raise QuantLensError("hub_header_too_large", f"{filename} declares a {n:,}-byte header, above the "
                                                         f"{MAX_SAFETENSORS_HEADER // 2**20} MiB limit; it is not read.")
        if 8 + n > len(raw) and 8 + n <= size:
            raw += client.read(commit, filename, len(raw), 8 + n)
        client.http.budget.take_json(raw[8:8 + n], f"The header of {filename}")  # counted before json.loads builds
    try:
        return parse_header_bytes(raw, size, label=filename, max_header_bytes=MAX_SAFETENSORS_HEADER)
    except QuantLensError as exc:
        raise QuantLensError("hub_bad_safetensors", exc.message) from None


def _read_many(fn: Callable[[str], Any], names: list[str], abort: Callable[[], None] | None = None) -> list[Any]:
    """Shard headers are independent small reads: a few at a time keeps a 50-shard repo quick. The first failure
    (in time, not in file order) is raised, after `abort` has stopped the reads still running."""
    if len(names) <= 1:
        return [fn(n) for n in names]
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(fn, n) for n in names]
        done, _pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        if failed is not None:
            for f in futures:
                f.cancel()
            if abort is not None:
                abort()
            raise failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]


_BNB_4BIT_KEYS = ("load_in_4bit", "_load_in_4bit")


def _stored_precision(config: dict[str, Any] | None, dtype_elements: dict[str, int]) -> tuple[str | None, str | None]:
    """(precision name, note): the format a checkpoint is stored in, from quantization_config or its dtypes."""
    quant = config.get("quantization_config") if isinstance(config, dict) else None
    if isinstance(quant, dict) and isinstance(quant.get("quant_method"), str):
        method = quant["quant_method"].lower()
        bits = quant.get("bits")
        if method == "awq" and bits in (4, None):
            return "AWQ-INT4", None
        if method == "gptq" and bits in (4, None):
            return "GPTQ-INT4", None
        if method == "bitsandbytes":
            return ("NF4", None) if any(quant.get(k) for k in _BNB_4BIT_KEYS) else ("int8", None)
        if method in ("fp8", "fbgemm_fp8"):
            return "FP8-SCALED", None
        if method == "compressed-tensors":
            groups = quant.get("config_groups") or {}
            weights = [g.get("weights") for g in groups.values() if isinstance(g, dict)] if isinstance(groups, dict) else []
            kinds = {(w.get("num_bits"), w.get("type")) for w in weights if isinstance(w, dict)}
            if kinds == {(8, "float")}:
                return "FP8-SCALED", None
            if kinds == {(4, "int")}:
                return "GPTQ-INT4", None
        return None, (f"Stored as {method[:30]}: QuantLens has no exact model of that format, so the published bytes "
                      "are the reference.")
    if not dtype_elements:
        return None, None
    dominant = max(dtype_elements, key=lambda k: dtype_elements[k])
    mapping = {"BF16": "bf16", "F16": "fp16", "F32": "fp32", "F8_E4M3": "FP8-SCALED", "F8_E5M2": "FP8-SCALED"}
    return mapping.get(dominant), None


def _safetensors(client: _Client, commit: str, sizes: dict[str, int], shards: list[str], name: str, gated: bool
                 ) -> HubModel:
    ref = client.ref
    if len(shards) > MAX_SHARDS:
        raise QuantLensError("hub_repo_too_large", f"{ref.repo_id} has {len(shards)} weight shards, more than the "
                                                   f"{MAX_SHARDS} whose headers are read; link one file instead.")
    if any(sizes[s] < 8 for s in shards):
        raise QuantLensError("hub_unavailable", f"The Hub did not give the size of every weights file of {ref.repo_id}.")
    config = _read_config(client, commit, sizes)
    headers = _read_many(lambda s: _shard_header(client, commit, s, sizes[s]), shards, client.http.budget.abort)
    by_dtype: dict[str, int] = {}
    for h in headers:
        for t in h.tensors:
            by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + t.elements
    elements = sum(by_dtype.values())
    stored_bytes = sum(h.data_bytes for h in headers) if headers else None
    stored, stored_note = _stored_precision(config, by_dtype)
    notes: list[str] = [stored_note] if stored_note else []
    quantized = isinstance(config, dict) and isinstance(config.get("quantization_config"), dict)
    arch_spec: ModelSpec | None = None
    if config is not None:
        try:
            arch_spec = model_from_architecture(architecture_from_config(config), name, "hub")
        except QuantLensError as exc:
            if not headers:
                raise
            notes.append(f"config.json could not be sized ({exc.message}); parameters are the safetensors headers' "
                         "element count, without an architecture (no KV cache).")
    if arch_spec is not None:
        spec = arch_spec
        if headers and not quantized and elements:
            active = elements if arch_spec.active_parameters == arch_spec.parameters else min(arch_spec.active_parameters, elements)
            spec = replace(arch_spec, parameters=elements, active_parameters=active)
    elif elements:
        spec = replace(model_from_params(elements, name), source="hub")
        if quantized:
            notes.append("Packed quantized tensors hold several weights per element, so this count is low.")
    else:
        raise QuantLensError("hub_no_weights", f"{ref.repo_id} has neither a usable config.json nor safetensors weights.")
    if not headers:
        notes.append("No safetensors weights in this repo: sized from config.json alone.")
    checks: list[SizeCheck] = []
    if arch_spec is not None and stored is not None and stored_bytes:
        label = get_precision(stored).label
        checks.append(SizeCheck(f"Weights at {label}: predicted from config.json vs the safetensors headers",
                                weights_bytes(arch_spec, stored), stored_bytes))
    files = tuple((s, sizes[s]) for s in shards)
    if files:
        total_files = sum(b for _, b in files)
        if stored_bytes:
            checks.append(SizeCheck("Files: tensor bytes from the headers vs published file sizes", stored_bytes + sum(
                8 + h.header_bytes for h in headers), total_files))
    return HubModel(ref=ref, commit=commit, spec=spec, kind="safetensors" if headers else "config",
                    stored_precision=stored, stored_weights_bytes=stored_bytes, parameters_by_dtype=by_dtype,
                    weight_files=files, checks=tuple(checks), notes=tuple(notes), gated=gated,
                    requests=client.requests)


# ------------------------------------------------------------------------------------------------- GGUF

# llama.cpp type name (as file names and general.file_type state it) -> QuantLens precision name
_GGUF_PRECISIONS = {p.gguf_ftype: p.name for p in PRECISIONS if p.family == "gguf" and p.gguf_ftype}
_GGUF_NAMES = sorted(_GGUF_PRECISIONS, key=len, reverse=True)


def quant_from_filename(filename: str) -> str | None:
    """'Llama-3.2-1B-Instruct-Q4_K_M.gguf' -> 'Q4_K_M' (a precision name QuantLens knows), else None."""
    stem = filename.rsplit("/", 1)[-1].upper()
    for n in _GGUF_NAMES:
        if re.search(rf"(?<![A-Z0-9]){re.escape(n.upper())}(?![A-Z0-9])", stem):
            return _GGUF_PRECISIONS[n]
    return None


def group_gguf_files(sizes: dict[str, int]) -> tuple[GgufFile, ...]:
    """Every GGUF model in the repo, split parts (-00001-of-0000N) summed into one."""
    groups: dict[str, list[str]] = {}
    for f in sorted(sizes):
        if not f.endswith(".gguf"):
            continue
        m = _SPLIT_RE.match(f)
        groups.setdefault(m.group("base") + ".gguf" if m else f, []).append(f)
    out = []
    for key, parts in groups.items():
        m = _SPLIT_RE.match(parts[0])
        name = parts[0] if m else key
        out.append(GgufFile(name, tuple(parts), sum(max(sizes[p], 0) for p in parts), quant_from_filename(key)))
    return tuple(out)


def _default_gguf(files: tuple[GgufFile, ...]) -> GgufFile:
    models = [f for f in files if not f.name.rsplit("/", 1)[-1].lower().startswith("mmproj")] or list(files)
    for quant in ("Q4_K_M", "Q8_0"):
        for f in models:
            if f.quant == quant:
                return f
    return models[0]


def _gguf(client: _Client, commit: str, sizes: dict[str, int], name: str, gated: bool) -> HubModel:
    from core.sizing.gguf_header import config_from_gguf, read_gguf_header

    ref = client.ref
    files = group_gguf_files(sizes)
    chosen = next(f for f in files if ref.filename in f.parts) if ref.filename else _default_gguf(files)
    if len(chosen.parts) > MAX_SHARDS:
        raise QuantLensError("hub_repo_too_large", f"{chosen.name} is split into {len(chosen.parts)} parts, too many "
                                                   "to read.")
    if any(sizes[p] < 24 for p in chosen.parts):
        raise QuantLensError("hub_unavailable", f"The Hub did not give the size of {chosen.name}.")

    def header(part: str) -> Any:
        import core.sizing.gguf_header as gh

        first = gh.FIRST_READ_BYTES if part == chosen.parts[0] else GGUF_SPLIT_FIRST_READ
        return read_gguf_header(lambda a, b: client.read(commit, part, a, b), sizes[part], part,
                                first_read_bytes=first)

    headers = _read_many(header, list(chosen.parts), client.http.budget.abort)
    first = headers[0]
    tensors = [t for h in headers for t in h.tensors]
    exact_params = sum(t.elements for t in tensors)
    stored_bytes = sum(t.nbytes for t in tensors)
    types: dict[str, int] = {}
    for t in tensors:
        types[t.ggml_type] = types.get(t.ggml_type, 0) + t.nbytes
    types = dict(sorted(types.items(), key=lambda kv: -kv[1]))
    stored = _GGUF_PRECISIONS.get(first.file_type or "") or chosen.quant
    label = f"{name} ({chosen.name})"
    notes: list[str] = []
    arch_spec: ModelSpec | None = None
    try:
        arch_spec = model_from_architecture(architecture_from_config(config_from_gguf(first)), label, "hub")
    except QuantLensError as exc:
        notes.append(f"The file's architecture ({first.architecture or 'unnamed'}) could not be sized ({exc.message}); "
                     "weights are exact, the KV cache is not counted.")
    if arch_spec is not None:
        a = arch_spec.architecture
        active = exact_params if a is None or a.moe is None else min(arch_spec.active_parameters, exact_params)
        spec = replace(arch_spec, parameters=exact_params, active_parameters=active)
    else:
        spec = replace(model_from_params(exact_params, label), source="hub")
    checks: list[SizeCheck] = [SizeCheck(f"{chosen.name}: tensor bytes from its header vs its published size",
                                         stored_bytes, chosen.size_bytes)]
    if arch_spec is not None:
        for f in files:
            if f.quant is not None and f.size_bytes > 0:
                checks.append(SizeCheck(f"{f.name}: predicted {f.quant} file vs its published size",
                                        weights_bytes(arch_spec, f.quant), f.size_bytes))
    return HubModel(ref=ref, commit=commit, spec=spec, kind="gguf", stored_precision=stored,
                    stored_weights_bytes=stored_bytes, parameters_by_dtype={}, weight_files=tuple(
                        (p, sizes[p]) for p in chosen.parts), gguf_files=files, gguf_file=chosen.name,
                    gguf_types=types, checks=tuple(checks), notes=tuple(notes), gated=gated, requests=client.requests)
