"""Run every benchmark on PostgreSQL and write ``bench/results.json``.

    .venv/bin/python -m bench                 # every benchmark, the chat list up to 1M chats (~5 min)
    .venv/bin/python -m bench --short         # quick: chat list to 100k, 5 s of gateway load, 10 s end to end
    .venv/bin/python -m bench --only gateway,chat_list

Each benchmark creates its own database (``widget_bench``, or ``BENCH_DATABASE_URL``) and drops it at
the end; PostgreSQL and Redis must be running on 127.0.0.1. Figures are printed, never asserted;
each benchmark compares itself with its baseline in the same run. Every module also runs alone:
``.venv/bin/python bench/<name>.py --help``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import chat_list, chat_panel_poll, crm_requests, end_to_end, gateway_inbound, settings_page
from bench.common import DEFAULT_DB, machine, write_results

ORDER = ("settings_page", "chat_list", "chat_panel_poll", "crm_requests", "gateway", "end_to_end")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--only", default="", help=f"comma-separated: {', '.join(ORDER)}")
    ap.add_argument("--chats", default=None, help="chat list sizes, e.g. 10000,100000,1000000")
    ap.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DB)
    args = ap.parse_args(argv)
    only = [x for x in args.only.split(",") if x] or list(ORDER)
    unknown = set(only) - set(ORDER)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    sizes = tuple(int(x) for x in (args.chats or ("10000,100000" if args.short else "10000,100000,1000000")).split(","))
    url = args.database_url
    runs: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[dict[str, Any]], str], str]] = {
        "settings_page": (lambda: settings_page.run(url), settings_page.report, "settings_page"),
        "chat_list": (lambda: chat_list.run(url, sizes=sizes), chat_list.report, "chat_list"),
        "chat_panel_poll": (
            lambda: chat_panel_poll.run(url, (100_000,), 100 if args.short else 200),
            chat_panel_poll.report,
            "chat_panel_poll",
        ),
        "crm_requests": (lambda: crm_requests.run(url), crm_requests.report, "crm_requests"),
        "gateway": (
            lambda: gateway_inbound.run(url, duration=5.0 if args.short else 10.0),
            gateway_inbound.report,
            "gateway_inbound",
        ),
        "end_to_end": (
            lambda: end_to_end.run(url, duration=10.0 if args.short else 60.0),
            end_to_end.report,
            "end_to_end",
        ),
    }
    print(f"benchmarks on {url} — machine {machine()}\n")
    results: dict[str, Any] = {}
    started = time.monotonic()
    try:
        for name in ORDER:
            if name not in only:
                continue
            t0 = time.monotonic()
            run, report, key = runs[name]
            if name in ("settings_page", "crm_requests"):
                from faults.stack import recreate_database

                recreate_database(url)
            result = run()
            result["seconds"] = round(time.monotonic() - t0, 1)
            results[key] = result
            print(report(result), f"\n({result['seconds']:.0f}s)\n", flush=True)
            write_results({key: result})
    finally:
        from faults.stack import drop_database

        drop_database(url)
    if "gateway_inbound" in results:
        gw = results["gateway_inbound"]
        peak = gw["gunicorn_worker_peak_rss_mb"]
        print(f"6. Memory after benchmark 1 — peak RSS of a gunicorn worker: {peak:.0f} MiB (no job worker runs in 1)")
    missed = [k for k, v in results.items() if v.get("met") is False]
    print(f"\nall done in {time.monotonic() - started:.0f}s; targets missed: {', '.join(missed) or 'none'}")
    print("figures written to bench/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
