"""Two "Refresh CRM data" runs of one account at once (the install's own refresh and the admin's
button, or two job workers): both succeed and each new employee is stored once. Without the
account lock, the second inserted the employee the first had not committed yet and failed on the
unique index (seen in the job workers' logs of the end-to-end benchmark, Bitrix24)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.support.factories import make_account, small_snapshot
from widget.db import db
from widget.models import Employee
from widget.services.crm_data.snapshot import apply_snapshot

pytestmark = pytest.mark.postgres_only(reason="row locks between two sessions at once")


def test_two_refreshes_at_once_store_each_new_employee_once(app: Flask) -> None:
    with app.app_context():
        account_id = make_account()
    first_applied = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with app.app_context(), db.transaction() as session:
                apply_snapshot(session, account_id, small_snapshot())
                first_applied.set()
                threading.Event().wait(0.5)  # still uncommitted while the second one starts
        except BaseException as exc:
            errors.append(exc)
            first_applied.set()

    def second() -> None:
        first_applied.wait(10)
        try:
            with app.app_context(), db.transaction() as session:
                apply_snapshot(session, account_id, small_snapshot())
        except BaseException as exc:
            errors.append(exc)

    threads: list[Any] = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with app.app_context(), db.transaction() as session:
        count = session.execute(select(func.count()).where(Employee.account_id == account_id)).scalar_one()
    assert count == len(small_snapshot().users)
