"""Run the fault and load suite.

    .venv/bin/python -m faults                      # full: 120 clients per CRM per scenario, 30 s outage
    .venv/bin/python -m faults --reduced            # what CI runs (tests/faults/test_fault_suite_reduced.py)
    .venv/bin/python -m faults --only outage,db-drop --clients 300

Needs PostgreSQL and Redis on 127.0.0.1. Creates (and drops) its own database, ``widget_faults``
by default. Prints one row per scenario and CRM and writes ``faults/results.json``; exits 1 when a
client was lost or duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from faults.stack import Stack, StackConfig, drop_database, recreate_database
from faults.suite import FULL, REDUCED, SCENARIOS, as_dicts, run_suite

DEFAULT_DB = "postgresql://postgres@127.0.0.1/widget_faults"


def reduced_config(database_url: str) -> StackConfig:
    """Small numbers and compressed recovery time: a 25 s claim lease (production: 2 min) swept
    every 2 s, with a 2 s HTTP timeout so that no live operation outlasts its lease. The portal is
    on Bitrix24's Enterprise limits (5 requests/s, burst 250) so that draining does not dominate."""
    return StackConfig(
        database_url=database_url,
        http_timeout=2.0,
        lease=25.0,
        sweep=2.0,
        bitrix24_rate=5.0,
        bitrix24_burst=250,
        env={"BITRIX24_RATE_PER_SECOND": "5", "BITRIX24_BURST": "250"},
    )


def full_config(database_url: str) -> StackConfig:
    """Production timings: the 2-minute lease and the minutely sweep, a 10 s HTTP timeout."""
    return StackConfig(database_url=database_url, web_workers=3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reduced", action="store_true", help="the CI run: few clients, short faults, compressed time")
    ap.add_argument("--only", default="", help=f"comma-separated: {', '.join(s.name for s in SCENARIOS)}")
    ap.add_argument("--crm", default="kommo,bitrix24")
    ap.add_argument("--clients", type=int, default=None, help="new clients per CRM per scenario")
    ap.add_argument("--database-url", default=os.environ.get("FAULTS_DATABASE_URL", DEFAULT_DB))
    ap.add_argument("--json", default=str(Path(__file__).with_name("results.json")))
    ap.add_argument("--keep", action="store_true", help="keep the database and the process logs")
    args = ap.parse_args(argv)

    sizes = REDUCED if args.reduced else FULL
    if args.clients:
        sizes = replace(sizes, clients=args.clients)
    config = (reduced_config if args.reduced else full_config)(args.database_url)
    recreate_database(args.database_url)
    started = time.monotonic()
    stack = Stack(config)
    print(f"fault suite ({'reduced' if args.reduced else 'full'}): logs in {stack.run_dir}")
    try:
        with stack:
            rows = run_suite(
                stack,
                sizes,
                only=[s for s in args.only.split(",") if s] or None,
                crms=tuple(c for c in args.crm.split(",") if c),
            )
    finally:
        if not args.keep:
            drop_database(args.database_url)
    bad = [r for r in rows if not r.ok]
    verdict = "all clean" if not bad else f"{len(bad)} NOT CLEAN"
    print(f"{len(rows)} rows in {time.monotonic() - started:.0f}s; {verdict}")
    mode = "reduced" if args.reduced else "full"
    report = {"mode": mode, "sizes": sizes.__dict__, "rows": as_dicts(rows)}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
