"""A second web process for the Redis queue tests: submits one job through RedisJobQueue, prints what it sees.

`python -m tests.core.redis_submitter URL STORE SESSION SECONDS` prints JSON lines: {"position": n} each time
its place in the shared line is reported, then {"ok": report} or {"code": error code}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.errors import QuantLensError
from core.jobs.redis_queue import RedisJobQueue
from core.jobs.result_store import FolderStore
from core.jobs.runner import JobLimits, job_directory

SLEEP = "tests.security.workers:sleep"
LIMITS = JobLimits(timeout_s=120, memory_bytes=512 * 2**20, threads=1)


def say(**item) -> None:
    print(json.dumps(item), flush=True)


def main(url: str, store: str, session: str, seconds: str) -> int:
    queue = RedisJobQueue(url, FolderStore(Path(store)), max_queued=20)
    with job_directory() as job_dir:
        try:
            report = queue.run(session, SLEEP, {"seconds": float(seconds), "tag": session}, job_dir=job_dir,
                               limits=LIMITS, on_wait=lambda position: say(position=position))
        except QuantLensError as exc:
            say(code=exc.code)
            return 1
    say(ok=report)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
