"""Every HTTP request of one Hub lookup, inside one budget: a total deadline, a byte cap, allowed hosts only.

Why not huggingface_hub's own session as is: against a hostile Hub stand-in (threats round three) its model-info
call followed a redirect to any host, inflated a 400 KB gzip answer to 400 MB in memory, and a server trickling one
byte every 5 s kept a lookup alive forever (the read timeout restarts on every byte). Here:

- a lookup has a wall-clock deadline (`LookupBudget.deadline_s`, default DEADLINE_S, env QUANTLENS_HUB_DEADLINE_S).
  Every connection the lookup opens is registered; a timer shuts them all down at the deadline, so a trickle (in
  the headers or the body) ends there, and later requests are refused before they start (`hub_deadline`);
- `Accept-Encoding: identity` is asked for; a server that compresses anyway is decoded here chunk by chunk with a
  cap, and every body byte (decoded) counts against the lookup's byte budget (`hub_too_large`);
- redirects are followed by hand, at most MAX_REDIRECTS, only to the endpoint's own origin or, when the endpoint is
  the real Hub, to its CDN hosts (*.hf.co, *.huggingface.co over https): anything else is `hub_redirect_refused`
  naming the host, before it is contacted;
- the token is sent only to the endpoint's own origin: never to a CDN host, never to any other host.

huggingface_hub still builds the headers (user agent, token), the file URLs and the error types
(`hf_raise_for_status`), and its offline switch (HF_HUB_OFFLINE) is honoured. Imports are inside functions.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from core.errors import QuantLensError

DEADLINE_S = 30.0  # one whole lookup; the threat budget is 45 s
CONNECT_TIMEOUT_S = 10.0
MAX_LOOKUP_BYTES = 96 * 2**20  # decoded body bytes of all requests of one lookup (real repos: a few MB)
# JSON values parsed in one lookup (model info + config + every safetensors header): a header costs ~8 per tensor,
# so this is ~150,000 tensors; DeepSeek-V3, with its experts stored one tensor each, has ~91,000.
MAX_LOOKUP_JSON_TOKENS = 1_200_000
MAX_ERROR_BODY_BYTES = 64 * 2**10
MAX_REDIRECTS = 5
CHUNK = 64 * 2**10
HUB_HOSTS = frozenset({"huggingface.co", "hf.co"})
HUB_CDN_SUFFIXES = (".hf.co", ".huggingface.co")  # cdn-lfs*.hf.co, cas-bridge.xethub.hf.co, cdn-lfs.huggingface.co


def deadline_s() -> float:
    """The configured per-lookup deadline (QUANTLENS_HUB_DEADLINE_S, seconds), DEADLINE_S when unset or invalid."""
    try:
        value = float(os.environ.get("QUANTLENS_HUB_DEADLINE_S", ""))
    except ValueError:
        return DEADLINE_S
    return value if 0 < value <= 600 else DEADLINE_S


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = -1
    return parts.scheme, (parts.hostname or "").lower(), port


def redirect_allowed(endpoint: str, target: str) -> bool:
    """True when a redirect to `target` stays within the Hub: the endpoint's own origin, or (for the real Hub only)
    its CDN hosts over https. A mirror or a local HF_ENDPOINT gets no extra hosts."""
    scheme, host, _port = _origin(target)
    if scheme not in ("http", "https") or not host:
        return False
    if _origin(target) == _origin(endpoint):
        return True
    endpoint_host = _origin(endpoint)[1]
    return (endpoint_host in HUB_HOSTS and scheme == "https"
            and (host in HUB_HOSTS or host.endswith(HUB_CDN_SUFFIXES)))


def sends_token(endpoint: str, url: str) -> bool:
    """The token goes to the endpoint's own origin only (CDN links are pre-signed and need none)."""
    return _origin(url) == _origin(endpoint)


def count_json_tokens(raw: bytes) -> int:
    """An upper bound of the values json.loads would build, counted in C without building any.

    Every value after the first in an array or object follows a comma, and every first value is inside a `[` or
    `{`; brackets or commas inside strings only make the count larger (safe side)."""
    return raw.count(b",") + raw.count(b"[") + raw.count(b"{") + 1


@dataclass
class LookupBudget:
    """What one lookup may spend; shared by its threads (shard headers are read a few at a time)."""

    deadline_s: float = field(default_factory=deadline_s)
    max_bytes: int = MAX_LOOKUP_BYTES
    max_json_tokens: int = MAX_LOOKUP_JSON_TOKENS
    started: float = field(default_factory=time.monotonic)
    bytes_used: int = 0
    tokens_used: int = 0
    expired: bool = False
    aborted: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _sockets: list[Any] = field(default_factory=list, repr=False)
    _timer: threading.Timer | None = field(default=None, repr=False)

    def start(self) -> None:
        self._timer = threading.Timer(max(self.remaining(), 0.0), self.expire)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._sockets.clear()

    def remaining(self) -> float:
        return self.deadline_s - (time.monotonic() - self.started)

    @property
    def over(self) -> bool:
        """The deadline has passed (the watchdog may not have run yet: a read timeout can end exactly there)."""
        return self.expired or self.remaining() <= 0

    def deadline_error(self) -> QuantLensError:
        return QuantLensError("hub_deadline", f"The Hub lookup did not finish within its {self.deadline_s:g} s "
                                              "budget (the server answered too slowly); try again later.")

    def check_time(self) -> float:
        left = self.remaining()
        if self.expired or left <= 0:
            self.expired = True
            raise self.deadline_error()
        if self.aborted:
            raise QuantLensError("hub_unavailable", "The Hub lookup was stopped after another of its reads failed.")
        return left

    def watch(self, sock: Any) -> None:
        with self._lock:
            if self.expired or self.aborted:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._sockets.append(sock)

    def expire(self) -> None:
        """At the deadline: every open connection of this lookup is shut down, so no read can go on trickling."""
        with self._lock:
            self.expired = True
            self._shutdown_all()

    def abort(self) -> None:
        """One read failed: the others (a few at a time, in threads) are stopped now rather than at the deadline."""
        with self._lock:
            self.aborted = True
            self._shutdown_all()

    def _shutdown_all(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def take_bytes(self, n: int, what: str) -> None:
        with self._lock:
            self.bytes_used += n
            over = self.bytes_used > self.max_bytes
        if over:
            raise QuantLensError("hub_too_large", f"The Hub's answers for this lookup ({what}) exceed "
                                                  f"{self.max_bytes // 2**20} MiB; the lookup is refused.")

    def take_json(self, raw: bytes, what: str) -> None:
        """Count a JSON text's values before it is parsed; refuse when the lookup's total would pass the cap."""
        n = count_json_tokens(raw)
        with self._lock:
            self.tokens_used += n
            over = self.tokens_used > self.max_json_tokens
        if over:
            raise QuantLensError("hub_too_large", f"{what} holds more JSON values than QuantLens parses in one lookup "
                                                  f"({self.max_json_tokens:,}); it is refused.")


def _session(budget: LookupBudget) -> Any:
    """A requests session whose connections register with the budget's watchdog (also through a proxy)."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Watched(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            budget.watch(self.sock)

    class WatchedTLS(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            budget.watch(self.sock)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Watched

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedTLS

    classes = {"http": Pool, "https": TLSPool}

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = classes

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            manager.pool_classes_by_scheme = classes
            return manager

    session = requests.Session()
    adapter = Adapter(max_retries=0, pool_maxsize=8)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _Decoder:
    """Content-Encoding undone chunk by chunk with zlib's max_length, so a bomb never inflates past the cap."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._z = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self._z = zlib.decompressobj(47)  # gzip or zlib header, detected
        else:
            raise QuantLensError("hub_unavailable", f"The Hub answered in an encoding QuantLens does not read "
                                                    f"({encoding[:20]!r}).")

    def feed(self, data: bytes, room: int) -> bytes:
        """Decoded bytes of `data`, at most room + 1 (one more than allowed tells the caller it overflowed)."""
        if self._z is None:
            return data
        return self._z.decompress(data, room + 1)  # input left in unconsumed_tail means it is past the cap anyway


class HubHttp:
    """GETs against the endpoint within one LookupBudget. Use as a context manager: the watchdog runs inside."""

    def __init__(self, endpoint: str, token: str | None, budget: LookupBudget | None = None,
                 read_timeout_s: float = 15.0) -> None:
        from huggingface_hub.utils import build_hf_headers

        self.endpoint = endpoint
        self.budget = budget or LookupBudget()
        self.read_timeout_s = read_timeout_s
        self._headers = build_hf_headers(token=token or None, library_name="quantlens")
        self._session: Any = None

    def __enter__(self) -> HubHttp:
        self.budget.start()
        self._session = _session(self.budget)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.budget.stop()
        self._headers = {}
        if self._session is not None:
            self._session.close()

    def _headers_for(self, url: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {k: v for k, v in self._headers.items() if sends_token(self.endpoint, url) or k.lower() != "authorization"}
        return {**headers, "Accept-Encoding": "identity", **(extra or {})}

    def get(self, url: str, *, params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
            limit: int, what: str, truncate: bool = False) -> tuple[Any, bytes]:
        """(response, body): body holds at most `limit` decoded bytes. Past the limit a body is cut there when
        `truncate` (a range read whose server sent more), else refused (`hub_too_large`). HTTP errors raise the
        huggingface_hub error types (with a capped body), for the caller to translate."""
        import huggingface_hub.constants as hf_constants
        from huggingface_hub.errors import OfflineModeIsEnabled
        from huggingface_hub.utils import hf_raise_for_status

        if hf_constants.HF_HUB_OFFLINE:
            raise OfflineModeIsEnabled("HF_HUB_OFFLINE is set")
        if not redirect_allowed(self.endpoint, url):
            raise _refused(url)
        for _ in range(MAX_REDIRECTS + 1):
            left = self.budget.check_time()
            try:
                response = self._session.get(url, params=params, headers=self._headers_for(url, headers), stream=True,
                                             allow_redirects=False,
                                             timeout=(min(CONNECT_TIMEOUT_S, left), min(self.read_timeout_s, left)))
            except Exception:
                if self.budget.over:
                    raise self.budget.deadline_error() from None
                raise
            params = None  # a redirect's Location carries its own query
            if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                target = urljoin(response.url, response.headers["Location"])
                response.close()
                if not redirect_allowed(self.endpoint, target):
                    raise _refused(target)
                url = target
                continue
            try:
                if response.status_code >= 400:
                    body = self._read(response, MAX_ERROR_BODY_BYTES, what, truncate=True)
                    response._content, response._content_consumed = body, True
                    hf_raise_for_status(response)
                return response, self._read(response, limit, what, truncate)
            finally:
                response.close()
        raise QuantLensError("hub_redirect_refused", f"The Hub redirected {what} more than {MAX_REDIRECTS} times; "
                                                     "the lookup is refused.")

    def _read(self, response: Any, limit: int, what: str, truncate: bool) -> bytes:
        decoder = _Decoder(response.headers.get("Content-Encoding", ""))
        chunks: list[bytes] = []
        got = 0
        try:
            while got <= limit:
                raw = response.raw.read(CHUNK, decode_content=False)
                if not raw:
                    break
                data = decoder.feed(raw, limit - got)
                self.budget.take_bytes(len(data), what)
                chunks.append(data)
                got += len(data)
        except QuantLensError:
            raise
        except Exception:
            if self.budget.over:
                raise self.budget.deadline_error() from None
            raise
        if self.budget.expired:
            raise self.budget.deadline_error()
        body = b"".join(chunks)
        if len(body) > limit:
            if not truncate:
                raise QuantLensError("hub_too_large", f"The Hub's answer for {what} is larger than "
                                                      f"{limit / 2**20:.3g} MiB; the lookup is refused.")
            body = body[:limit]
        return body


def _refused(url: str) -> QuantLensError:
    scheme, host, port = _origin(url)
    shown = (host or "(no host)")[:80] + (f":{port}" if port not in (None, 80, 443) else "")
    return QuantLensError("hub_redirect_refused", f"The Hub redirected to another host ({scheme or '?'}://{shown}), "
                                                  "which QuantLens does not contact; the lookup is refused.")
