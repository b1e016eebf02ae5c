"""Benchmark 5, end to end: a gateway message of a new client → its contact and lead/deal created in
the CRM, at 20 messages a second for 60 s (``--short``: 10 s), half to a Kommo account and half to a
Bitrix24 portal, with both sandbox CRMs answering every request 20 ms late (their latency fault).

For each client: the time from the gateway POST to the end of the CRM request that created its
records, minus the time the CRM spent on that client's requests (measured inside the sandbox) =
the time *our side* added (HTTP intake, database, queue, job pickup, our CRM client). Prints p50 and
p99 of both. The CRMs' per-account rate limits are raised to 100 requests/s here: at Kommo's 7/s
one account takes at most 3.5 new clients a second, which would measure Kommo's queue, not ours.

Benchmark 6 (memory) reads the peak RSS of every gunicorn worker and job worker after this run.

    .venv/bin/python bench/end_to_end.py [--short]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # standalone: python bench/<this>.py

import requests

from bench.common import bench_database, percentile, table, write_results
from faults.census import wait_drained
from faults.gateway import message, send
from faults.stack import Stack, StackConfig, peak_rss_mb
from faults.tenants import Tenant, bitrix24_tenant, kommo_tenant

RATE, LATENCY = 20.0, 0.020
RAISED = {
    "KOMMO_RATE_PER_SECOND": "100",
    "BITRIX24_RATE_PER_SECOND": "100",
    "BITRIX24_BURST": "500",
}


def _timeline(tenant: Tenant, prefix: str) -> dict[str, list[list[float]]]:
    answer = requests.get(f"{tenant.crm_url}/_census/timeline", params={"prefix": prefix}, timeout=30)
    clients: dict[str, list[list[float]]] = answer.json()["clients"]
    return clients


def figures(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": statistics.median(values) if values else float("nan"),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values, default=float("nan")),
    }


def run(database_url: str | None = None, *, duration: float = 60.0) -> dict[str, Any]:
    url = bench_database(database_url)
    config = StackConfig(url, kommo_rate=100, bitrix24_rate=100, bitrix24_burst=500, env=RAISED)
    with Stack(config) as stack:
        tenants = [kommo_tenant(stack), bitrix24_tenant(stack)]
        requests.post(f"{stack.kommo_url}/_sandbox/faults", json={"kind": "latency", "seconds": LATENCY}, timeout=10)
        requests.post(f"{stack.bitrix24_url}/_sandbox/latency", json={"seconds": LATENCY}, timeout=10)
        time.sleep(3)  # the install's own follow-up jobs
        total = int(RATE * duration)
        prefixes = {"kommo": "510", "bitrix24": "520"}
        plan = []  # (tenant, digits) alternating between the two CRMs
        for n in range(total):
            tenant = tenants[n % 2]
            plan.append((tenant, f"{prefixes[tenant.crm]}{n:06d}"))
        deliveries = [message(t, d) for t, d in plan]
        sent_at: dict[str, float] = {}
        lock = threading.Lock()

        def stamp(i: int) -> None:
            with lock:
                sent_at[plan[i][1]] = time.time()

        started = time.monotonic()
        stats = send(stack.url, deliveries, rate=RATE, concurrency=16, on_sent=stamp)
        load_end = time.monotonic()
        per_crm: dict[str, Any] = {}
        all_ours: list[float] = []
        all_e2e: list[float] = []
        for tenant in tenants:
            prefix = prefixes[tenant.crm]
            expected = {d for t, d in plan if t is tenant}
            census, _, drained = wait_drained(tenant, prefix, expected, load_end, timeout=300)
            timeline = _timeline(tenant, prefix)
            ours, e2e, crm_time, missing = [], [], [], 0
            for digits in expected:
                spans = timeline.get(digits, [])
                creates = [end for start, end, create in spans if create]
                if not creates:
                    missing += 1
                    continue
                total_ms = (max(creates) - sent_at[digits]) * 1000
                in_crm = sum(end - start for start, end, _ in spans) * 1000
                e2e.append(total_ms)
                crm_time.append(in_crm)
                ours.append(total_ms - in_crm)
            all_ours += ours
            all_e2e += e2e
            per_crm[tenant.crm] = {
                "clients": len(expected),
                "lost": census.lost,
                "duplicated": census.duplicated,
                "not_timed": missing,
                "drained_after_load_s": drained,
                "ours": figures(ours),
                "end_to_end": figures(e2e),
                "crm_time": figures(crm_time),
            }
        rss = {
            "gunicorn_workers_mb": [peak_rss_mb(p) for p in stack.web_worker_pids()],
            "job_workers_mb": [peak_rss_mb(w.pid) for w in stack.workers],
        }
    return {
        "config": {
            "rate_per_s": RATE,
            "duration_s": duration,
            "crm_latency_ms": LATENCY * 1000,
            "web": f"{config.web_workers} gunicorn workers x {config.web_threads} threads",
            "jobs": f"{config.job_workers} job workers x {config.job_threads} threads",
        },
        "sent_in_s": load_end - started,
        "gateway_resent": stats.resent,
        "crms": per_crm,
        "ours": figures(all_ours),
        "end_to_end": figures(all_e2e),
        "memory": rss,
    }


def report(result: dict[str, Any]) -> str:
    rows = []
    for crm, v in result["crms"].items():
        rows.append(
            (
                crm,
                v["clients"],
                v["ours"]["p50_ms"],
                v["ours"]["p99_ms"],
                v["end_to_end"]["p50_ms"],
                v["end_to_end"]["p99_ms"],
                v["crm_time"]["p50_ms"],
                f"{v['lost']}/{v['duplicated']}",
            )
        )
    o, e = result["ours"], result["end_to_end"]
    rows.append(("both", o["n"], o["p50_ms"], o["p99_ms"], e["p50_ms"], e["p99_ms"], None, ""))
    cfg = result["config"]
    head = (
        f"5. End to end — {cfg['rate_per_s']:.0f} new clients/s for {cfg['duration_s']:.0f}s, CRM latency "
        f"{cfg['crm_latency_ms']:.0f} ms; {cfg['web']}, {cfg['jobs']}"
    )
    body = table(
        ("CRM", "clients", "ours p50 ms", "ours p99 ms", "total p50", "total p99", "in CRM p50", "lost/dup"), rows
    )
    mem = result["memory"]
    web = ", ".join(f"{m:.0f}" for m in mem["gunicorn_workers_mb"] if m)
    jobs = ", ".join(f"{m:.0f}" for m in mem["job_workers_mb"] if m)
    six = f"6. Memory after benchmark 5 — peak RSS: gunicorn workers {web} MiB; job workers {jobs} MiB"
    return f"{head}\n{body}\n\n{six}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--short", action="store_true", help="10 s instead of 60 s")
    args = ap.parse_args()
    result = run(args.database_url, duration=10.0 if args.short else 60.0)
    print(report(result))
    write_results({"end_to_end": result})


if __name__ == "__main__":
    main()
