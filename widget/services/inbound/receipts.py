"""The gateway intake: acknowledge a verified delivery with one durable write, then nudge the job
that processes it (``widget.services.inbound.processing``).

The acknowledgement path (``POST /gateway/messages``) is the hottest request we serve: every client
message of every account passes through it, and the gateway waits for our answer. So it does the
least that makes the message safe: one read of the channel's signing keys, the HMAC check, the
payload check, and one ``INSERT … ON CONFLICT DO NOTHING`` into ``inbound_deliveries``, committed
on its own (autocommit on PostgreSQL: one round trip, durable when it returns). A redelivery of the
same gateway message id, even at the same instant from several processes, inserts nothing and is
answered ``duplicate``.

"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from widget.crypto import TokenBox
from widget.db import Database
from widget.domain.inbound import InboundMessage
from widget.domain.ports import JobQueue
from widget.models.intake import InboundDelivery
from widget.services.channels.signing import KEYS_QUERY, ChannelKeys, channel_keys, keys_from_row, remember_key_cache
from widget.services.inbound.messages import CHANNEL_GONE, DUPLICATE, STORED
from widget.services.outbox import insert_or_ignore

log = logging.getLogger(__name__)

JOB_NAME = "process_inbound"
KEYS_TTL = 2.0  # seconds a process keeps a channel's signing keys (PostgreSQL fast path)
KEYS_MAX = 50_000

_table: Any = InboundDelivery.__table__


class ChannelGone(Exception):
    """The channel (or its account) was deleted between the key lookup and the insert."""


class PortableIntake:
    """The acknowledgement on SQLite (the embedded default): the same two steps as
    ``PostgresIntake``, through the ORM, each in a short transaction of its own."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def keys(self, box: TokenBox, channel_id: int) -> ChannelKeys | None:
        with self._database.transaction() as session:
            return channel_keys(session, box, channel_id)

    def accept(self, account_id: int, msg: InboundMessage, raw: bytes, now: datetime) -> int | None:
        """Store a verified delivery durably; its id, or None when this gateway message id is known.
        Raises ``ChannelGone`` when the channel was deleted while the message was on its way."""
        values = {
            "account_id": account_id,
            "channel_id": msg.channel_id,
            "gateway_message_id": msg.message_id,
            "body": raw.decode("utf-8"),
            "received_at": now,
            "attempts": 0,
            "outcome": "",
        }
        try:
            with self._database.transaction() as session:
                new_id = insert_or_ignore(session, InboundDelivery, values, ["channel_id", "gateway_message_id"])
        except IntegrityError as exc:
            raise ChannelGone(str(msg.channel_id)) from exc
        return int(new_id) if new_id is not None else None


# --- the PostgreSQL fast path ---------------------------------------------------------------------

_KEYS_SQL = str(KEYS_QUERY.compile(dialect=postgresql.dialect()))  # placeholders: %(channel_id)s
_ACCEPT_SQL = (
    "INSERT INTO inbound_deliveries"
    " (account_id, channel_id, gateway_message_id, body, received_at, attempts, outcome)"
    " SELECT a, c, m, b, r, 0, ''"
    " FROM unnest(%s::int[], %s::int[], %s::text[], %s::text[], %s::timestamptz[]) AS d(a, c, m, b, r)"
    " ON CONFLICT (channel_id, gateway_message_id) DO NOTHING RETURNING id, channel_id, gateway_message_id"
)
GROUP_MAX = 64  # deliveries written by one statement at most


class _Waiting:
    __slots__ = ("error", "event", "lead", "params", "result")

    def __init__(self, params: tuple[Any, ...]) -> None:
        self.params = params
        self.event = threading.Event()
        self.lead = False
        self.result: int | None = None
        self.error: BaseException | None = None


class _GroupInsert:
    """Group commit for the acknowledgements of one process.

    The first request to arrive writes its delivery; requests that arrive while that statement is
    in flight queue up, and the next of them writes them all in one statement (one round trip, one
    WAL flush, one commit), then wakes the others with their answers. Nobody waits on a timer: a
    lone request writes alone at once, and under load batches form by themselves. Each request is
    answered only after the statement holding its row has committed.
    """

    def __init__(self, intake: PostgresIntake) -> None:
        self._intake = intake
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._busy = False

    def insert(self, params: tuple[Any, ...]) -> int | None:
        me = _Waiting(params)
        with self._lock:
            self._queue.append(me)
            leads = not self._busy
            self._busy = True
        if not leads:
            me.event.wait()
            if not me.lead:
                return self._answer(me)
        with self._lock:
            batch, self._queue = self._queue[:GROUP_MAX], self._queue[GROUP_MAX:]
        try:
            self._write(batch)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.event.set()
                else:
                    self._busy = False
        return self._answer(me)

    @staticmethod
    def _answer(me: _Waiting) -> int | None:
        if me.error is not None:
            raise me.error
        return me.result

    def _write(self, batch: list[_Waiting]) -> None:
        import psycopg

        try:
            first: dict[tuple[int, str], _Waiting] = {}
            for item in batch:
                first.setdefault((item.params[1], item.params[2]), item)  # a repeat in the batch is a duplicate
            try:
                self._insert(first)
            except psycopg.errors.ForeignKeyViolation:
                # A channel was deleted meanwhile: write them one by one, so only its deliveries fail.
                for key, item in first.items():
                    try:
                        self._insert({key: item})
                    except psycopg.errors.ForeignKeyViolation as exc:
                        item.error = ChannelGone(str(item.params[1]))
                        item.error.__cause__ = exc
        except BaseException as exc:  # every waiting request hears of it; none hangs
            for item in batch:
                item.error = exc
        finally:
            for item in batch:
                item.event.set()

    def _insert(self, items: dict[tuple[int, str], _Waiting]) -> None:
        """One statement for all of ``items``; each inserted one gets its new id."""
        columns = tuple(list(col) for col in zip(*(item.params for item in items.values()), strict=True))
        for new_id, channel_id, message_id in self._intake._run(_ACCEPT_SQL, columns):
            items[(channel_id, message_id)].result = int(new_id)


class PostgresIntake:
    """The acknowledgement's statements on PostgreSQL, straight on the driver.

    Each web thread keeps one autocommit connection of its own: no pool checkout and liveness ping,
    no ``BEGIN``/``COMMIT``, statements prepared by the driver after their first few runs. A
    connection that breaks (a database restart, a failover) is replaced and the statement run once
    more; both statements are safe to repeat.

    A channel's keys (its account, the account's status and its signing secrets) are kept for
    ``KEYS_TTL`` seconds, so under load a delivery costs one round trip: the insert that makes it
    durable. The price is bounded and deliberate: after a secret is rotated without a grace period
    or the account uninstalls, another process may accept deliveries signed with the old secret for
    at most ``KEYS_TTL`` more (they are still verified; the process that makes the change forgets at
    once). A channel that is deleted fails the insert's foreign key at once (404).
    """

    def __init__(self, url: str) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._keys: dict[int, tuple[float, ChannelKeys]] = {}
        self._group = _GroupInsert(self)
        # Keyed by the thread object: a thread that ends (a test's, or one a server retires) has
        # its connection closed when the thread is collected, and every one is closed at exit.
        self._conns: weakref.WeakKeyDictionary[threading.Thread, tuple[int, Any]] = weakref.WeakKeyDictionary()

    def _connection(self) -> Any:
        import psycopg

        thread = threading.current_thread()
        held = self._conns.get(thread)
        if held is not None and held[0] == os.getpid() and not held[1].closed:
            return held[1]
        conn = psycopg.connect(self._dsn, autocommit=True)
        self._conns[thread] = (os.getpid(), conn)
        weakref.finalize(thread, conn.close)
        return conn

    def _drop(self) -> None:
        held = self._conns.pop(threading.current_thread(), None)
        if held is not None:
            held[1].close()

    def _run(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
        import psycopg

        for attempt in (1, 2):
            conn = self._connection()
            try:
                return conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                self._drop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def keys(self, box: TokenBox, channel_id: int) -> ChannelKeys | None:
        """The channel's keys, read at most once per ``KEYS_TTL`` per process (see ``forget_keys``)."""
        now = time.monotonic()
        held = self._keys.get(channel_id)
        if held is not None and now - held[0] < KEYS_TTL:
            return held[1]
        rows = self._run(_KEYS_SQL, {"channel_id": channel_id})
        if not rows:
            self._keys.pop(channel_id, None)
            return None
        keys = keys_from_row(box, channel_id, rows[0])
        if len(self._keys) >= KEYS_MAX:
            self._keys.clear()
        self._keys[channel_id] = (now, keys)
        return keys

    def forget(self) -> None:
        self._keys.clear()

    def accept(self, account_id: int, msg: InboundMessage, raw: bytes, now: datetime) -> int | None:
        """Store a verified delivery durably (grouped with concurrent ones); its id, or None for a
        known gateway message id. Raises ``ChannelGone`` when the channel was deleted meanwhile."""
        return self._group.insert((account_id, msg.channel_id, msg.message_id, raw.decode("utf-8"), now))


_fast: dict[str, PostgresIntake] = {}
_fast_lock = threading.Lock()


def intake_for(database: Database) -> PostgresIntake | PortableIntake:
    """How this process acknowledges deliveries on this database."""
    return postgres_intake(database) or PortableIntake(database)


def postgres_intake(database: Database) -> PostgresIntake | None:
    """This process's fast path for the database, or None on SQLite (which takes the portable one)."""
    url = database.url
    if not url or not url.startswith("postgresql"):
        return None
    fast = _fast.get(url)
    if fast is None:
        with _fast_lock:
            fast = _fast.get(url)
            if fast is None:
                fast = _fast[url] = PostgresIntake(url)
                remember_key_cache(fast)  # this process forgets a rotated secret's keys at once
    return fast


def nudge(jobs: JobQueue) -> None:
    """Have the pending deliveries processed soon: the acknowledgements of a burst share a push."""
    jobs.nudge_soon(JOB_NAME)


__all__ = [
    "CHANNEL_GONE",
    "DUPLICATE",
    "JOB_NAME",
    "STORED",
    "ChannelGone",
    "intake_for",
    "nudge",
]
