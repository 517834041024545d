"""`python -m core worker --queue redis://host:6379/0`: take compare jobs from the shared queue on this host.

The jobs run in the same confined child as everywhere else (core.jobs.redis_worker); this command only starts
RQ's forking worker with QuantLens's worker class, JSON serializer and queue name. Start as many as the host's
cores and memory allow (DEPLOY.md, "Sizing a fleet"); every worker must reach the shared store.
"""

from __future__ import annotations

import argparse
import os

from core.errors import QuantLensError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", default=os.environ.get("QUANTLENS_QUEUE", ""),
                        help="the Redis URL of the shared queue, redis://host:6379/0 (default $QUANTLENS_QUEUE)")
    parser.add_argument("--store", default=None,
                        help="the shared store: a folder every host mounts, or s3://bucket/prefix "
                             "(default $QUANTLENS_STORE)")
    parser.add_argument("--burst", action="store_true", help="stop once the queue is empty")
    parser.add_argument("--name", default=None, help="this worker's name in Redis (default: a random one)")


def run(args: argparse.Namespace) -> int:
    from core.jobs.queue_backend import check_queue_url
    from core.jobs.result_store import STORE_ENV, store_from_url

    url = check_queue_url(args.queue)
    if args.store:
        os.environ[STORE_ENV] = args.store
    if not os.environ.get(STORE_ENV, "").strip():
        raise QuantLensError("invalid_setting", f"A worker needs the shared store: --store PATH or {STORE_ENV}.")
    store_from_url(os.environ[STORE_ENV]).check()  # refuse a bad store now, not at the first job
    from core.jobs.redis_worker import work

    work(url, burst=args.burst, name=args.name)
    return 0
