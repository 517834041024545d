"""What a user typed in the model box -> a Hub repo id, revision and file, or a refusal before any request.

Why a parser of its own: the text comes from a user (or a shared link) and must never decide which server is
contacted. Only `org/name` ids and links on huggingface.co / hf.co are accepted; from a link only the repo id,
the revision and the file name are kept, and the lookup then goes to the configured endpoint (HF_ENDPOINT).
Anything else (another host, a dataset or Space, `..` in a path) is refused with `hub_bad_id`: no SSRF.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from core.errors import QuantLensError

HUB_HOSTS = frozenset({"huggingface.co", "www.huggingface.co", "hf.co"})
MAX_REF_CHARS = 500
# The Hub's own rule (huggingface_hub.utils.validate_repo_id): letters, digits, '-', '_', '.', at most 96 chars
# per part, no '--' or '..', not starting or ending with '-' or '.'.
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_RE = re.compile(rf"^{_PART}/{_PART}$")
_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_FILE_RE = re.compile(r"^[A-Za-z0-9_.\-][A-Za-z0-9_.\- /()+]{0,299}$")
# `:QUANT` after the repo id, as llama.cpp (`-hf org/repo:Q4_K_M`) and Ollama (`hf.co/org/repo:Q8_0`) name a GGUF
_QUANT_RE = re.compile(r"(?<=[A-Za-z0-9]):([A-Za-z0-9_]{1,24})(@[^:@/\s]+)?$")
_NOT_MODELS = frozenset({"datasets", "spaces", "api", "docs", "blog", "models", "collections", "papers", "settings"})


@dataclass(frozen=True)
class HubRef:
    """A model repo on the Hub; `revision` None means the default branch, `filename` None means the whole repo."""

    repo_id: str
    revision: str | None = None
    filename: str | None = None
    quant: str | None = None  # `org/repo:Q4_K_M` (llama.cpp's -hf and Ollama's hf.co/ form): the GGUF file of that type

    @property
    def label(self) -> str:
        """The short form shown to users and put in links."""
        return (self.repo_id + (f":{self.quant}" if self.quant else "") + (f"@{self.revision}" if self.revision else "")
                + (f" ({self.filename})" if self.filename else ""))


def _bad(text: str, why: str) -> QuantLensError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return QuantLensError("hub_bad_id", f"{shown!r} is not a Hugging Face model id or huggingface.co link: {why}.")


def check_repo_id(repo_id: str, text: str | None = None) -> str:
    if ".." in repo_id or "--" in repo_id or not _REPO_RE.match(repo_id):
        raise _bad(text or repo_id, "use the form org/name, e.g. mistralai/Mistral-7B-v0.1")
    if repo_id.split("/")[0].lower() in _NOT_MODELS:
        raise _bad(text or repo_id, "only model repos can be sized, not datasets or Spaces")
    return repo_id


def check_revision(revision: str | None, text: str | None = None) -> str | None:
    if revision is None or revision == "":
        return None
    if ".." in revision or not _REVISION_RE.match(revision) or revision.endswith("/"):
        raise _bad(text or revision, "the revision must be a branch, tag or commit")
    return revision


def check_filename(filename: str | None, text: str | None = None) -> str | None:
    if filename is None or filename == "":
        return None
    if ".." in filename.split("/") or filename.startswith("/") or not _FILE_RE.match(filename):
        raise _bad(text or filename, "the file name is not a plain path inside the repo")
    return filename


def _from_url(text: str) -> HubRef:
    try:
        parts = urlsplit(text)
    except ValueError:
        raise _bad(text, "the link cannot be read") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or host not in HUB_HOSTS or parts.port not in (None, 443, 80):
        raise _bad(text, "only links on huggingface.co are accepted")
    if parts.username or parts.password:
        raise _bad(text, "a link may not carry credentials")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if len(segments) < 2:
        raise _bad(text, "the link does not name a model repo")
    repo_id = check_repo_id("/".join(segments[:2]), text)
    rest = segments[2:]
    if not rest:
        return HubRef(repo_id)
    kind, rest = rest[0], rest[1:]
    if kind not in ("tree", "blob", "resolve", "commit") or not rest:
        raise _bad(text, "the link is not a repo, revision or file page")
    # refs/pr/N is the one revision form that contains slashes on the Hub's own links
    if rest[:2] == ["refs", "pr"] and len(rest) >= 3:
        revision, path = "/".join(rest[:3]), rest[3:]
    else:
        revision, path = rest[0], rest[1:]
    revision = check_revision(revision, text)
    filename = check_filename("/".join(path), text) if kind in ("blob", "resolve") and path else None
    if kind in ("blob", "resolve") and filename is None:
        raise _bad(text, "the file link does not name a file")
    return HubRef(repo_id, revision, filename)


def parse_hub_ref(text: str, revision: str | None = None, filename: str | None = None) -> HubRef:
    """`org/name`, `org/name@rev` or a huggingface.co link (repo, tree/REV, blob|resolve/REV/FILE) -> HubRef.

    An explicit `revision` / `filename` (from --revision, --file or the link's rev=/file=) wins over the text's.
    """
    if not isinstance(text, str) or not text.strip():
        raise QuantLensError("hub_bad_id", "Type a Hugging Face model id such as mistralai/Mistral-7B-v0.1.")
    text = text.strip()
    if len(text) > MAX_REF_CHARS:
        raise _bad(text, f"it is longer than {MAX_REF_CHARS} characters")
    quant_match = _QUANT_RE.search(text)
    if quant_match:  # `org/repo:Q4_K_M`, `hf.co/org/repo:Q8_0` (also before an @revision)
        text = text[:quant_match.start()] + (quant_match.group(2) or "")
        ref = parse_hub_ref(text, revision, filename)
        return HubRef(ref.repo_id, ref.revision, ref.filename, quant_match.group(1).upper())
    if "://" in text or text.lower().startswith(tuple(f"{h}/" for h in HUB_HOSTS)):
        ref = _from_url(text if "://" in text else "https://" + text)
    else:
        repo_text, _, rev_text = text.partition("@")
        ref = HubRef(check_repo_id(repo_text, text), check_revision(rev_text or None, text))
    return HubRef(
        ref.repo_id,
        check_revision(revision) if revision else ref.revision,
        check_filename(filename) if filename else ref.filename,
    )


def ref_text(ref: HubRef) -> str:
    """The shortest text that parses back to `ref`: `org/name`, `org/name:QUANT`, `org/name@rev`, or a file link."""
    if ref.quant and not ref.filename:
        return f"{ref.repo_id}:{ref.quant}" + (f"@{ref.revision}" if ref.revision else "")
    if ref.filename:
        return f"https://huggingface.co/{ref.repo_id}/blob/{ref.revision or 'main'}/{ref.filename}"
    return ref.repo_id + (f"@{ref.revision}" if ref.revision else "")


def split_ref_lines(text: str) -> list[str]:
    """The model box holds one id or link per line (spaces and commas separate too)."""
    return [t for t in re.split(r"[\s,]+", text or "") if t]


def refs_to_query(refs: list[HubRef]) -> dict[str, list[str] | str]:
    """Link keys for several Hub models: `hf` per model; the first one's revision and file as `rev=` / `file=`."""
    if not refs:
        return {}
    first = refs[0]
    head = ref_text(first) if first.quant and not first.filename else first.repo_id
    out: dict[str, list[str] | str] = {"hf": [head] + [ref_text(r) for r in refs[1:]]}
    if first.revision:
        out["rev"] = first.revision
    if first.filename:
        out["file"] = first.filename
    return out


def refs_from_query(values: list[str], revision: str | None, filename: str | None) -> list[HubRef]:
    """The inverse of refs_to_query; raises QuantLensError (hub_bad_id) on the first bad value."""
    refs = [parse_hub_ref(v) for v in values if v]
    if refs and (revision or filename):
        refs[0] = parse_hub_ref(refs[0].repo_id, revision or refs[0].revision, filename or refs[0].filename)
    return refs
