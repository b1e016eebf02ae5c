"""What every benchmark shares: the PostgreSQL database it owns, percentiles, tables, results."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # standalone use: python bench/<name>.py

DEFAULT_DB = "postgresql://postgres@127.0.0.1/widget_bench"
RESULTS = Path(__file__).with_name("results.json")


def bench_database(url: str | None = None) -> str:
    """The benchmark's own database, dropped and created anew (``BENCH_DATABASE_URL`` or ``widget_bench``)."""
    from faults.stack import recreate_database

    url = url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DB
    recreate_database(url)
    return url


def sqlalchemy_url(url: str) -> str:
    from widget.config import Settings

    return Settings.from_env({"DATABASE_URL": url, "SANDBOX": "1", "INSTANCE_PATH": "/tmp"}).database_url


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table: numbers right-aligned, text left-aligned."""
    raw = [list(row) for row in rows]
    cells = [[_fmt(c) for c in row] for row in raw]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], int | float) or r[i] is None for r in raw) for i in range(len(headers))]
    out = [
        "  ".join(
            h.rjust(w) if numeric[i] else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    out.append("  ".join("-" * w for w in widths))
    for r in cells:
        out.append(
            "  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
    return "\n".join(line.rstrip() for line in out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def machine() -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "load_average_1m_5m": [round(load1, 2), round(load5, 2)],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(results: dict[str, Any], path: Path = RESULTS) -> None:
    """Merge this run's benchmarks into ``bench/results.json`` (a standalone run of one benchmark
    keeps the others' last figures)."""
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = {}
    current.setdefault("benchmarks", {}).update(results)
    current["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    current["machine"] = machine()
    path.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n")
