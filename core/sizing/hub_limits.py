"""How many Hub lookups one page view and one browser session may start: a shared link cannot fan out.

Why: one link naming 300 Hub ids made 300 Hub requests from a single page view, and every rerun asked again
(threats round three). A page view looks up at most MAX_IDS_PER_VIEW ids (the rest are named in one warning), and
a session starts at most MAX_LOOKUPS_PER_MINUTE lookups that need the network in any 60 s; answers already known
(successes cached in core.sizing.hub, failures cached for FAILURE_TTL_S) cost nothing and are never limited.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from core.errors import QuantLensError

MAX_IDS_PER_VIEW = 8
MAX_LOOKUPS_PER_MINUTE = 20
WINDOW_S = 60.0


@dataclass
class SessionLookupLimit:
    """A sliding one-minute window of the network lookups one session started (kept in that session's state)."""

    per_minute: int = field(default_factory=lambda: MAX_LOOKUPS_PER_MINUTE)
    window_s: float = WINDOW_S
    started: deque[float] = field(default_factory=deque)

    def take(self, now: float | None = None) -> None:
        """Count one lookup, or raise `hub_lookup_limit` when the session has started its share this minute."""
        now = time.monotonic() if now is None else now
        while self.started and now - self.started[0] >= self.window_s:
            self.started.popleft()
        if len(self.started) >= self.per_minute:
            wait = max(1, int(self.window_s - (now - self.started[0])) + 1)
            raise QuantLensError("hub_lookup_limit", f"This session has looked up {self.per_minute} Hub models in the "
                                                     f"last minute, the most allowed; try again in {wait} s.")
        self.started.append(now)


def capped_ids(lines: list[str], limit: int = MAX_IDS_PER_VIEW) -> tuple[list[str], str | None]:
    """The first `limit` distinct ids, and a one-line warning naming how many were left out (None when none)."""
    distinct = list(dict.fromkeys(lines))
    if len(distinct) <= limit:
        return distinct, None
    return distinct[:limit], (f"Only the first {limit} Hub models are looked up in one view; "
                              f"{len(distinct) - limit} more were left out.")
