"""How fast the "CRM integration" tab renders and saves, and how many SQL statements each takes.

    .venv/bin/python bench/settings_page.py [--repeat 25] [--sizes 10,100,1000] [--channels 20]

Builds one account per size (employees x channels, half of the employees holding a role on every
channel, three pipelines) and drives the real Flask app through its test client, so the time is
the server's: routing, identity, queries, validation, Jinja. Prints the median of ``--repeat``
runs and the SQL statements of one request (a ``before_cursor_execute`` listener), for:

* render   GET /app/settings?channel=…
* save     POST of the whole form where half the roles change each time
* resave   POST of the same form again (nothing changes, nothing is written)

SQLite (a temporary file) by default; PostgreSQL when DATABASE_URL or TEST_DATABASE_URL is set.
The accounts it creates there are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cryptography.fernet import Fernet
from sqlalchemy import delete, event, insert, select

from bench.common import table, write_results
from widget import create_app
from widget.config import Settings
from widget.db import db
from widget.domain.crm import CrmPipeline, CrmSnapshot, CrmStage, CrmUser
from widget.migrate import upgrade
from widget.models import Account, Channel, ChannelRole, Employee
from widget.models.accounts import CRM_KOMMO, STATUS_ACTIVE
from widget.services.crm_data.snapshot import apply_snapshot
from widget.web.identity import Identity, issue_session_token

TRANSPORTS = ("whatsapp", "waba", "telegram", "instagram")


def build_account(n_employees: int, n_channels: int, tag: str) -> tuple[int, int, list[int]]:
    """Returns (account id, the measured channel id, employee ids)."""
    with db.transaction() as s:
        acc = Account(crm=CRM_KOMMO, external_id=f"bench-{tag}", domain=f"bench-{tag}.kommo.test", status=STATUS_ACTIVE)
        s.add(acc)
        s.flush()
        users = tuple(
            CrmUser(f"u{i}", f"Employee {i:04d}", f"e{i}@example.com", i % 50 != 49, i == 0) for i in range(n_employees)
        )
        stages = tuple(
            CrmStage(str(10 * p + k), f"Stage {k}", k, "incoming" if k == 0 else "open")
            for p in range(3)
            for k in range(6)
        )
        pipes = tuple(
            CrmPipeline(
                "lead",
                str(p),
                f"Pipeline {p}",
                p,
                p == 0,
                tuple(x for x in stages if x.crm_stage_id.startswith(str(p))),
            )
            for p in range(1, 4)
        )
        apply_snapshot(s, acc.id, CrmSnapshot(users=users, pipelines=pipes))
        account_id = acc.id
    with db.transaction() as s:
        s.execute(
            insert(Channel),
            [
                {
                    "account_id": account_id,
                    "transport": TRANSPORTS[i % 4],
                    "name": f"Channel {i}",
                    "address": f"+3460000{i:04d}",
                }
                for i in range(n_channels)
            ],
        )
        channel_ids = (
            s.execute(select(Channel.id).where(Channel.account_id == account_id).order_by(Channel.id)).scalars().all()
        )
        emp_ids = (
            s.execute(select(Employee.id).where(Employee.account_id == account_id).order_by(Employee.id))
            .scalars()
            .all()
        )
        s.execute(
            insert(ChannelRole),
            [
                {
                    "account_id": account_id,
                    "channel_id": ch,
                    "employee_id": e,
                    "role": "seller",
                    "gets_new_clients": True,
                }
                for ch in channel_ids
                for e in emp_ids[::2]
            ],
        )
    return account_id, channel_ids[0], list(emp_ids)


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_args: Any) -> None:
        self.count += 1


def measure(fn: Callable[[], Any], repeat: int, counter: StatementCounter) -> tuple[float, int]:
    fn()  # warm caches (Jinja templates, SQLAlchemy statement cache)
    times = []
    statements = 0
    for i in range(repeat):
        before = counter.count
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
        if i == 0:
            statements = counter.count - before
    return statistics.median(times), statements


def run(
    database_url: str | None = None, *, sizes: tuple[int, ...] = (10, 100, 1000), channels: int = 20, repeat: int = 25
) -> dict[str, Any]:
    """Median ms and SQL statements of render / save / resave per employee count."""
    tmp = tempfile.mkdtemp(prefix="bench-settings-")
    url = database_url or f"sqlite:///{tmp}/bench.db"
    upgrade(Settings.from_env({"DATABASE_URL": url, "SANDBOX": "1", "INSTANCE_PATH": tmp}).database_url)
    settings = Settings.from_env(
        {
            "SANDBOX": "1",
            "INSTANCE_PATH": tmp,
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PUBLIC_URL": "http://127.0.0.1:5000",
        }
    )
    app = create_app(settings)
    counter = StatementCounter()
    event.listen(db.engine, "before_cursor_execute", counter)
    client = app.test_client()
    figures: dict[str, Any] = {}
    accounts = []
    tag = str(int(time.time()))
    try:
        for n in sizes:
            account_id, channel_id, emp_ids = build_account(n, channels, f"{tag}-{n}")
            accounts.append(account_id)
            ident = Identity(account_id, CRM_KOMMO, "u0", True, "en", "http://localhost:5001")
            with app.test_request_context():
                st = issue_session_token(ident)
            page = client.get("/app/settings", query_string={"st": st, "channel": channel_id})
            assert page.status_code == 200, page.status_code
            html = page.get_data(as_text=True)
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', html)
            assert csrf is not None
            headers = {"X-Session-Token": st, "X-CSRFToken": csrf.group(1), "Accept": "application/json"}
            active = [e for i, e in enumerate(emp_ids) if i % 50 != 49]  # the page does not send inactive rows

            def form(flip: bool, active: list[int] = active) -> dict[str, str]:
                data = {"new_client_entity": "lead", "pipeline": "1", "stage": "11", "distribution": "round_robin"}
                for i, e in enumerate(active):
                    role = ("head" if flip else "seller") if i % 2 == 0 else ""
                    data[f"role-{e}"] = role
                    if role:
                        data[f"new-{e}"] = "1"
                return data

            state = {"flip": False}

            def render(channel_id: int = channel_id, st: str = st) -> None:
                resp = client.get("/app/settings", query_string={"st": st, "channel": channel_id})
                assert resp.status_code == 200

            def save(channel_id: int = channel_id, headers: dict[str, str] = headers, state: dict = state) -> None:
                state["flip"] = not state["flip"]
                resp = client.post(f"/app/settings/channels/{channel_id}", data=form(state["flip"]), headers=headers)
                assert resp.status_code == 200 and resp.get_json()["changed"], resp.get_json()

            def resave(channel_id: int = channel_id, headers: dict[str, str] = headers, state: dict = state) -> None:
                resp = client.post(f"/app/settings/channels/{channel_id}", data=form(state["flip"]), headers=headers)
                assert resp.status_code == 200 and not resp.get_json()["changed"], resp.get_json()

            render_ms, render_n = measure(render, repeat, counter)
            save_ms, save_n = measure(save, repeat, counter)
            resave_ms, resave_n = measure(resave, repeat, counter)
            figures[str(n)] = {
                "render_ms": render_ms,
                "render_statements": render_n,
                "save_ms": save_ms,
                "save_statements": save_n,
                "resave_ms": resave_ms,
                "resave_statements": resave_n,
                "page_kb": len(html.encode()) / 1024,
            }
    finally:
        with db.transaction() as s:
            s.execute(delete(Account).where(Account.id.in_(accounts)))
        event.remove(db.engine, "before_cursor_execute", counter)
        db.engine.dispose()
    return {
        "config": {"database": url.split(":", 1)[0], "channels": channels, "repeat": repeat, "statistic": "median"},
        "sizes": figures,
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        (
            f"{int(n):,} employees",
            f["render_ms"],
            f["render_statements"],
            f["save_ms"],
            f["save_statements"],
            f["resave_ms"],
            f["resave_statements"],
            f["page_kb"],
        )
        for n, f in result["sizes"].items()
    ]
    cfg = result["config"]
    head = (
        f"3. Settings page (CRM integration tab) — {cfg['database']}, {cfg['channels']} channels, "
        f"median of {cfg['repeat']}"
    )
    body = table(("account", "render ms", "stmts", "save ms", "stmts", "resave ms", "stmts", "page KB"), rows)
    return f"{head}\n{body}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--channels", type=int, default=20)
    args = parser.parse_args()
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    result = run(url, sizes=tuple(int(x) for x in args.sizes.split(",")), channels=args.channels, repeat=args.repeat)
    print(report(result))
    write_results({"settings_page": result})


if __name__ == "__main__":
    main()
