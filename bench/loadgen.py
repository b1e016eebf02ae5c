"""The load generator of the inbound benchmark, always in processes of its own: ``wrk`` (Debian's
``wrk`` package) when it is installed, else Python processes with keep-alive sessions. Loopback
only, bounded in time; every request carries a different signed delivery read from ``lines``
(one ``"<signature> <body>"`` per line)."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

WRK_SCRIPT = Path(__file__).with_name("wrk_gateway.lua")


def run_load(url: str, lines: Path, duration: float, connections: int, threads: int = 2) -> dict[str, Any]:
    """Requests/s and latency percentiles (ms) of ``duration`` seconds of load at ``connections``."""
    if shutil.which("wrk"):
        return _wrk(url, lines, duration, connections, threads)
    return _python(url, lines, duration, connections, threads)


def _wrk(url: str, lines: Path, duration: float, connections: int, threads: int) -> dict[str, Any]:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        str(lines),
        str(threads),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK-JSON "))
    raw = json.loads(line.removeprefix("WRK-JSON "))
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return {
        "tool": "wrk",
        "requests": raw["requests"],
        "rps": raw["requests"] / seconds,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": errors,
    }


def _worker(url: str, lines: Path, first: int, count: int, total: int, deadline: float, out: Any) -> None:
    """``count`` keep-alive clients; client ``first + k`` sends lines ``first + k``, ``+ total``, …"""
    import threading

    import requests

    data = [ln.split(" ", 1) for ln in lines.read_text().splitlines()]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def loop(k: int) -> None:
        session = requests.Session()
        mine: list[float] = []
        i, errs = first + k, 0
        while time.time() < deadline:
            sig, body = data[i % len(data)]
            i += total
            t0 = time.perf_counter()
            try:
                r = session.post(
                    f"{url}/gateway/messages",
                    data=body.encode(),
                    headers={"X-Gateway-Signature": sig, "Content-Type": "application/json"},
                    timeout=10,
                )
                ok = r.status_code == 200
            except requests.RequestException:
                ok = False
            mine.append(time.perf_counter() - t0)
            errs += 0 if ok else 1
        with lock:
            latencies.extend(mine)
            errors[0] += errs

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((latencies, errors[0]))


def _python(url: str, lines: Path, duration: float, connections: int, processes: int) -> dict[str, Any]:
    from bench.common import percentile

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    per = max(1, connections // processes)
    start = time.time() + 1.0  # let every process get going first
    deadline = start + duration
    procs = [
        ctx.Process(target=_worker, args=(url, lines, p * per, per, per * processes, deadline, out))
        for p in range(processes)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=duration + 120) for _ in procs]
    for p in procs:
        p.join(30)
    latencies = [x * 1000 for lat, _ in results for x in lat]
    return {
        "tool": "python",
        "requests": len(latencies),
        "rps": len(latencies) / duration,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=0.0),
        "errors": sum(e for _, e in results),
    }
