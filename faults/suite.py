"""The scenarios and the run: load through the gateway while a fault is injected, then count.

Every scenario runs against both CRMs at once (one Kommo account and one Bitrix24 portal, each
with its own channel and its own load), with its own client phone prefix, and waits until both have
drained before the next one starts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import requests
from sqlalchemy import func, select

from faults.census import Census, OutboxState, wait_drained
from faults.gateway import SendStats, message, send
from faults.stack import Stack, terminate_connections
from faults.tenants import Tenant


@dataclass(frozen=True)
class Sizes:
    clients: int  # new clients per CRM per scenario
    duration: float  # seconds a paced load is spread over
    outage: float  # the CRM outage
    storm: float  # each phase of the 429/503 storm
    drain_timeout: float
    copies: int = 5  # deliveries of each message in the duplicate storm


FULL = Sizes(clients=120, duration=60, outage=30, storm=10, drain_timeout=900)
REDUCED = Sizes(clients=20, duration=8, outage=5, storm=2.5, drain_timeout=150)


@dataclass
class Ctx:
    stack: Stack
    tenants: list[Tenant]
    sizes: Sizes
    start: float = 0.0
    load_done: threading.Event = field(default_factory=threading.Event)
    notes: list[str] = field(default_factory=list)

    def at(self, seconds: float) -> None:
        """Sleep until ``seconds`` after the load started."""
        delay = self.start + seconds - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def tenant(self, crm: str) -> Tenant | None:
        return next((t for t in self.tenants if t.crm == crm), None)

    # --- the sandboxes' fault controls --------------------------------------------------------

    def kommo(self, kind: str | None, *, clear: bool = False, **params: Any) -> None:
        if self.tenant("kommo") is None:
            return
        url = f"{self.stack.kommo_url}/_sandbox/faults"
        if clear:
            requests.delete(url, params={"kind": kind} if kind else None, timeout=10).raise_for_status()
        else:
            requests.post(url, json={"kind": kind, **params}, timeout=10).raise_for_status()

    def kommo_control(self, path: str, **body: Any) -> Any:
        if self.tenant("kommo") is None:
            return None
        r = requests.post(f"{self.stack.kommo_url}/_sandbox/{path}", json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def b24(self, action: str, **body: Any) -> Any:
        tenant = self.tenant("bitrix24")
        if tenant is None:
            return None
        r = requests.post(f"{self.stack.bitrix24_url}/_sandbox/{action}", json=body, timeout=10)
        r.raise_for_status()
        return r.json().get("result")

    def running_ops(self) -> int:
        from widget.db import db
        from widget.models.conversations import CrmOperation

        with db.transaction() as s:
            return s.execute(
                select(func.count()).select_from(CrmOperation).where(CrmOperation.status == "running")
            ).scalar_one()


# --- scenarios ------------------------------------------------------------------------------------


def duplicate_storm(ctx: Ctx) -> None:
    ctx.notes.append(f"every message delivered {ctx.sizes.copies}x at once")


def crm_outage(ctx: Ctx) -> None:
    begin = ctx.sizes.duration * 0.25
    ctx.at(begin)
    ctx.kommo("outage")
    ctx.b24("outage", on=True)
    ctx.at(begin + ctx.sizes.outage)
    ctx.kommo("outage", clear=True)
    ctx.b24("outage", on=False)
    ctx.notes.append(f"both CRMs down {ctx.sizes.outage:.0f}s from t={begin:.0f}s")


def throttling_storm(ctx: Ctx) -> None:
    storm = ctx.sizes.storm
    ctx.at(ctx.sizes.duration * 0.2)
    # Kommo: 429 with Retry-After, then 503 from its balancer.
    ctx.kommo("rate_limit", retry_after=1)
    # Bitrix24: 503 QUERY_LIMIT_EXCEEDED, and 429 OPERATION_TIME_LIMIT on the contact search.
    tenant = ctx.tenant("bitrix24")
    ctx.b24("query-limit", count=40)
    if tenant is not None:
        ctx.b24("limit-method", portal=tenant.portal, method="crm.duplicate.findbycomm", seconds=storm)
    time.sleep(storm)
    ctx.kommo("rate_limit", clear=True)
    ctx.kommo("error", status=503)
    ctx.b24("fail-next", count=30, status=503)
    time.sleep(storm)
    ctx.kommo("error", clear=True)
    ctx.notes.append(f"429 then 503 for {storm:.0f}s each")


def token_expiry(ctx: Ctx) -> None:
    kommo, b24 = ctx.tenant("kommo"), ctx.tenant("bitrix24")
    for fraction in (0.2, 0.5, 0.8):
        ctx.at(ctx.sizes.duration * fraction)
        if kommo is not None:
            ctx.kommo_control("expire-tokens", host=kommo.kommo_host)
        if b24 is not None:
            ctx.b24("expire-tokens", portal=b24.portal)
    ctx.notes.append("access tokens expired 3 times during the load")


def worker_kill(ctx: Ctx) -> None:
    # A slower CRM keeps every job thread inside a CRM call most of the time: a kill lands mid-job.
    ctx.kommo("latency", seconds=0.3)
    ctx.b24("latency", seconds=0.3)
    try:
        ctx.at(ctx.sizes.duration * 0.4)
        deadline = time.monotonic() + ctx.sizes.duration
        while ctx.running_ops() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        running = ctx.running_ops()
        ctx.stack.kill_worker(0)
        ctx.notes.append(f"worker-0 SIGKILLed with {running} jobs running, restarted 2s later")
        time.sleep(2)
        ctx.stack.restart_worker(0)
        ctx.load_done.wait()
    finally:
        ctx.kommo("latency", clear=True)
        ctx.b24("latency", seconds=0)


def database_drop(ctx: Ctx) -> None:
    ctx.at(ctx.sizes.duration * 0.5)
    dropped = terminate_connections(ctx.stack.config.database_url)
    ctx.notes.append(f"{dropped} PostgreSQL connections terminated once")


def slow_crm(ctx: Ctx) -> None:
    """Slower than our timeout: the CRM creates what we gave up waiting for. The retry must find
    it, not make a second one."""
    slow = ctx.stack.config.http_timeout + 1
    ctx.at(ctx.sizes.duration * 0.3)
    ctx.kommo("latency", seconds=slow, path_contains="/leads/complex", count=3)
    ctx.b24("latency", seconds=slow)
    time.sleep(slow * 1.5)
    ctx.b24("latency", seconds=0)
    ctx.kommo("latency", clear=True)
    ctx.notes.append(f"creates answered after {slow:.0f}s (our timeout {ctx.stack.config.http_timeout:.0f}s)")


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    inject: Callable[[Ctx], None]
    copies: int = 1
    paced: bool = True


SCENARIOS = [
    Scenario("duplicates", "a storm of duplicate gateway deliveries", duplicate_storm, copies=5, paced=False),
    Scenario("outage", "a CRM outage in the middle of the load", crm_outage),
    Scenario("throttling", "429 / 503 storms", throttling_storm),
    Scenario("tokens", "access tokens expiring during the load", token_expiry),
    Scenario("worker-kill", "a job worker SIGKILLed mid-job and restarted", worker_kill),
    Scenario("db-drop", "PostgreSQL connections dropped once", database_drop),
    Scenario("slow-crm", "the CRM answering after our timeout", slow_crm),
]


@dataclass
class Row:
    scenario: str
    crm: str
    messages: int
    clients: int
    contacts: int
    entities: int
    lost: int
    duplicated: int
    drain_s: float | None
    resent: int
    refused: int
    failed_ops: int
    retried_ops: int
    notes: str

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.refused == 0 and self.drain_s is not None


def run_scenario(index: int, scenario: Scenario, stack: Stack, tenants: list[Tenant], sizes: Sizes) -> list[Row]:
    copies = sizes.copies if scenario.copies > 1 else 1
    ctx = Ctx(stack, tenants, sizes)
    loads: dict[str, tuple[str, set[str], list[Any]]] = {}
    for k, tenant in enumerate(tenants):
        prefix = f"{index + 1}{k + 1}7"
        clients = [f"{prefix}{n:06d}" for n in range(sizes.clients)]
        one_each = [message(tenant, d) for d in clients]
        deliveries = [d for d in one_each for _ in range(copies)]  # copies side by side: in flight together
        loads[tenant.crm] = (prefix, set(clients), deliveries)
    stats: dict[str, SendStats] = {}
    rate = None if not scenario.paced else sizes.clients / sizes.duration

    def load(tenant: Tenant) -> None:
        _, _, deliveries = loads[tenant.crm]
        stats[tenant.crm] = send(stack.url, deliveries, rate=rate, concurrency=25 if copies > 1 else 8)

    ctx.start = time.monotonic()
    injector = threading.Thread(target=_guarded, args=(scenario.inject, ctx), name=f"inject-{scenario.name}")
    senders = [threading.Thread(target=load, args=(t,), name=f"load-{t.crm}") for t in tenants]
    injector.start()
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    ctx.load_done.set()
    injector.join()
    load_end = time.monotonic()
    rows = []
    for tenant in tenants:
        prefix, expected, deliveries = loads[tenant.crm]
        census, outbox, drain = wait_drained(tenant, prefix, expected, load_end, sizes.drain_timeout)
        rows.append(_row(scenario, tenant, census, outbox, drain, stats[tenant.crm], len(deliveries), ctx.notes))
    return rows


def _guarded(fn: Callable[[Ctx], None], ctx: Ctx) -> None:
    try:
        fn(ctx)
    except Exception as exc:  # the injection failing must show in the table, not hang the run
        ctx.notes.append(f"INJECTION FAILED: {type(exc).__name__}: {exc}")


def _row(
    scenario: Scenario,
    tenant: Tenant,
    census: Census,
    outbox: OutboxState,
    drain: float | None,
    stats: SendStats,
    messages: int,
    notes: list[str],
) -> Row:
    return Row(
        scenario=scenario.name,
        crm=tenant.crm,
        messages=messages,
        clients=census.expected,
        contacts=census.contacts,
        entities=census.entities,
        lost=census.lost,
        duplicated=census.duplicated,
        drain_s=round(drain, 1) if drain is not None else None,
        resent=stats.resent,
        refused=len(stats.refused),
        failed_ops=outbox.failed_ops,
        retried_ops=outbox.retried_ops,
        notes="; ".join(notes + stats.refused[:2]),
    )


HEADER = (
    f"{'scenario':<12} {'crm':<9} {'msgs':>5} {'clients':>7} {'contacts':>8} {'leads/deals':>11} "
    f"{'lost':>4} {'dup':>4} {'drain s':>7} {'resent':>6}  notes"
)


def format_row(r: Row) -> str:
    drain = f"{r.drain_s:.1f}" if r.drain_s is not None else "TIMEOUT"
    return (
        f"{r.scenario:<12} {r.crm:<9} {r.messages:>5} {r.clients:>7} {r.contacts:>8} {r.entities:>11} "
        f"{r.lost:>4} {r.duplicated:>4} {drain:>7} {r.resent:>6}  {r.notes}"
    )


def run_suite(
    stack: Stack,
    sizes: Sizes,
    *,
    only: list[str] | None = None,
    crms: tuple[str, ...] = ("kommo", "bitrix24"),
    echo: Callable[[str], None] = print,
) -> list[Row]:
    """Install the tenants on a started stack and run the scenarios; returns one row per
    scenario and CRM, echoing each as it finishes."""
    from faults.tenants import bitrix24_tenant, kommo_tenant

    tenants = []
    if "kommo" in crms:
        tenants.append(kommo_tenant(stack))
    if "bitrix24" in crms:
        tenants.append(bitrix24_tenant(stack))
    echo(HEADER)
    rows: list[Row] = []
    for index, scenario in enumerate(SCENARIOS):
        if only and scenario.name not in only:
            continue
        for row in run_scenario(index, scenario, stack, tenants, sizes):
            rows.append(row)
            echo(format_row(row))
    return rows


def as_dicts(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
