"""HTTP requests our server sends to each CRM, counted at the sandboxes (printed, not asserted):

* per new client (the contact search included), for every way a new client can be created;
* per known client, per "first to answer" claim, per responsible change coming back;
* per "Refresh CRM data" at 1,000 users (target: ceil(users / page size) + 2).

    .venv/bin/python bench/crm_requests.py            # SQLite in a temporary folder
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1/bench .venv/bin/python bench/crm_requests.py
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cryptography.fernet import Fernet

from tests.support.bitrix24_sandbox import bitrix24_world
from tests.support.conversations import record_replies
from tests.support.crm_flows import Flow, add_channel
from tests.support.jobs import jobs_of, run_jobs_inline
from tests.support.kommo_sandbox import DEMO_HOST, running_kommo, serving_ours
from widget import create_app
from widget.config import Settings
from widget.db import db
from widget.migrate import upgrade
from widget.models import Account
from widget.services.conversations.replies import send_reply
from widget.services.crm_data.bitrix24 import refresh_bitrix24_data
from widget.services.crm_data.kommo import refresh_kommo_data

USERS = 1000
ROWS: list[tuple[str, str, int, str]] = []


def row(crm: str, what: str, count: int, target: str = "") -> None:
    ROWS.append((crm, what, count, target))


def measured(count: Callable[[], int], reset: Callable[[], None], action: Callable[[], Any]) -> int:
    reset()
    action()
    return count()


def kommo(env: dict[str, str]) -> None:
    with running_kommo() as sandbox_kommo:
        holder: dict[str, Any] = {}

        def build(url: str) -> Any:
            settings = Settings.from_env({**env, "PUBLIC_URL": url, **sandbox_kommo.env()})
            app = create_app(settings)
            run_jobs_inline(app)
            record_replies(app)  # replies are delivered to a fake: only CRM requests count here
            holder["app"] = app
            return app

        with serving_ours(build) as ours:
            sandbox_kommo.point_at(ours.url)
            sb = sandbox_kommo.sandbox
            assert sb.deliver_install_webhook(DEMO_HOST).status_code == 200
            with db.transaction() as s:
                account_id = s.query(Account).filter_by(crm="kommo").one().id
            app = holder["app"]
            jose, joao = "10000002", "10000004"
            roles: dict[str, tuple[str | None, bool]] = {jose: ("seller", True), joao: ("seller", True)}

            def count() -> int:
                return len(sb.log.entries(host=DEMO_HOST))

            def flow(stage: str, distribution: str) -> Flow:
                return add_channel(
                    app,
                    account_id,
                    ours.url,
                    entity="lead",
                    pipeline_id="7000001",
                    stage_id=stage,
                    distribution=distribution,
                    roles=roles,
                )

            rr = flow("60000002", "round_robin")
            row(
                "Kommo",
                "new client: lead + contact (complex)",
                measured(count, sb.reset_log, lambda: rr.post(rr.payload(1))),
                "<= 2",
            )
            fr = flow("60000001", "first_reply")
            incoming = fr.payload(2)
            row(
                "Kommo",
                "new client: incoming lead (Unsorted form)",
                measured(count, sb.reset_log, lambda: fr.post(incoming)),
                "<= 2",
            )
            known = rr.payload(3, phone="+34 600 123 456")
            row("Kommo", "known client (search + its leads)", measured(count, sb.reset_log, lambda: rr.post(known)))
            offered = fr.chat(2)
            offered_id, lead_id = offered.id, int(offered.crm_entity_id or 0)
            row(
                "Kommo",
                "first reply accepts the incoming lead",
                measured(
                    count, sb.reset_log, lambda: send_reply(db, jobs_of(fr), account_id, offered_id, fr.emp(jose), "Hi")
                ),
            )
            row(
                "Kommo",
                "responsible changed in Kommo (webhook)",
                measured(
                    count, sb.reset_log, lambda: sb.fire_responsible_changed(DEMO_HOST, "leads", lead_id, int(joao))
                ),
            )
            sb.add_users(DEMO_HOST, USERS - len(sb.users(DEMO_HOST)))
            services = app.extensions["widget"]
            n = measured(count, sb.reset_log, lambda: refresh_kommo_data(db, services, account_id))
            row("Kommo", f'"Refresh CRM data", {USERS} users', n, f"<= {math.ceil(USERS / 250) + 2}")


def bitrix24(env: dict[str, str]) -> None:
    def make_settings(**extra: Any) -> Settings:
        return Settings.from_env({**env, **{k: str(v) for k, v in extra.items()}})

    with bitrix24_world(make_settings) as world:
        world.install()
        account = world.account()
        assert account is not None
        record_replies(world.app)  # replies are delivered to a fake: only CRM requests count here
        state = world.state

        def count() -> int:
            state.wait_deliveries()
            return state.log.count(kind="rest")

        def reset() -> None:
            state.wait_deliveries()
            state.reset_log()

        roles: dict[str, tuple[str | None, bool]] = {"3": ("seller", True), "4": ("seller", True)}

        def flow(entity: str, pipeline: str, stage: str, distribution: str) -> Flow:
            return add_channel(
                world.app,
                account.id,
                world.base_url,
                entity=entity,
                pipeline_id=pipeline,
                stage_id=stage,
                distribution=distribution,
                roles=roles,
            )

        deal = flow("deal", "1", "C1:NEW", "first_reply")
        row(
            "Bitrix24",
            "new client: contact + deal (one batch)",
            measured(count, reset, lambda: deal.post(deal.payload(1))),
            "<= 2",
        )
        lead = flow("lead", "STATUS", "NEW", "round_robin")
        row("Bitrix24", "new client: lead", measured(count, reset, lambda: lead.post(lead.payload(2))), "<= 2")
        known = deal.payload(3, phone="+55 11 98765-4321")
        row("Bitrix24", "known client (findbycomm + one batch)", measured(count, reset, lambda: deal.post(known)))
        chat = deal.chat(1)
        row(
            "Bitrix24",
            "first reply: contact + deal responsible (+ the event it fires)",
            measured(count, reset, lambda: send_reply(db, jobs_of(deal), account.id, chat.id, deal.emp("4"), "Hi")),
        )
        row(
            "Bitrix24",
            "responsible changed in Bitrix24 (event)",
            measured(
                count,
                reset,
                lambda: state.update_record(
                    world.portal, "deal", int(chat.crm_entity_id or 0), {"ASSIGNED_BY_ID": "3"}
                ),
            ),
        )
        state.set_users(world.portal, USERS)
        n = measured(count, reset, lambda: refresh_bitrix24_data(db, world.app.extensions["widget"], account.id))
        row("Bitrix24", f'"Refresh CRM data", {USERS} users', n, f"<= {math.ceil(USERS / 50) + 2}")


def run(database_url: str | None = None) -> dict[str, Any]:
    """Every row (CRM, what, requests seen, target) and whether each target was met."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("widget").setLevel(logging.WARNING)
    ROWS.clear()
    with tempfile.TemporaryDirectory() as tmp:
        raw = database_url or os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
        env = {
            "SANDBOX": "1",
            "INSTANCE_PATH": tmp,
            "DATABASE_URL": raw,
            "SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        }
        upgrade(Settings.from_env(env).database_url)
        kommo(env)
        bitrix24(env)
        db.engine.dispose()
    rows = [{"crm": crm, "what": what, "requests": count, "target": target} for crm, what, count, target in ROWS]
    met = all(r["requests"] <= int(r["target"].split()[-1]) for r in rows if r["target"])
    return {"users": USERS, "rows": rows, "met": met}


def report(result: dict[str, Any]) -> str:
    from bench.common import table

    rows = [(r["crm"], r["what"], r["requests"], r["target"]) for r in result["rows"]]
    body = table(("CRM", "what", "requests", "target"), rows)
    return f"4. CRM requests, counted at the sandbox\n{body}\n-> {'met' if result['met'] else 'MISSED'}"


def main() -> int:
    from bench.common import write_results

    result = run()
    print(report(result))
    write_results({"crm_requests": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
