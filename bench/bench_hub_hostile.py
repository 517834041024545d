"""Worst-case cost of one Hub lookup against a hostile Hub stand-in on 127.0.0.1 (threats round three, issue 20).

For each case of bench/hostile_hub.py (an honest control repo, the hostile cases, and the cases just under each
limit) one lookup runs in a fresh Python, and the table shows its error code (ok = sized), its wall time and its
peak memory above the lookup's own imports. Each repo is built on the server before its lookup is timed.
The budget per lookup is 512 MB and 45 s; the trickle cases end at the lookup deadline (QUANTLENS_HUB_DEADLINE_S,
default 30 s; `--deadline` sets it for this run), the others long before.

Run: .venv/bin/python bench/bench_hub_hostile.py [--deadline S] [--trickle S] [--case NAME ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import hostile_hub as hh  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=None, help="lookup deadline in seconds (default: the product's)")
    parser.add_argument("--trickle", type=float, default=5.0, help="seconds between trickled bytes (default 5)")
    parser.add_argument("--case", action="append", choices=hh.CASES + hh.AT_CAP_CASES,
                        help="only these cases (repeatable)")
    args = parser.parse_args(argv)
    server = hh.start(trickle_s=args.trickle)
    try:
        chosen = args.case or hh.CASES + hh.AT_CAP_CASES
        rows = ["honest/tiny"] + [f"hostile/{c}" for c in hh.CASES if c in chosen] + [
            f"at-cap/{c}" for c in hh.AT_CAP_CASES if c in chosen]
        print(f"{'case':30} {'code':22} {'seconds':>8} {'RSS delta MiB':>14} {'peak RSS MiB':>13}")
        worst_mem, worst_s = 0.0, 0.0
        for ref in rows:
            server.files(ref)
            r = hh.measure_lookup(server.url, ref, deadline_s=args.deadline)
            print(f"{ref:30} {r['code']:22} {r['seconds']:8.2f} {r['rss_delta_mib']:14.1f} {r['peak_rss_mib']:13.1f}",
                  flush=True)
            worst_mem, worst_s = max(worst_mem, r["rss_delta_mib"]), max(worst_s, r["seconds"])
        print(f"worst: {worst_mem:.1f} MiB above imports, {worst_s:.1f} s (budget 512 MB, 45 s); "
              f"requests that reached the other host: {len(server.elsewhere_log)}")
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
