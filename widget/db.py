"""Database binding: one engine per process, sessions per unit of work.

SQLite (the embedded default) and PostgreSQL (at scale) are both first-class. The differences that
matter for correctness live here, in one place:

* SQLite runs in WAL mode with a long busy timeout, and pysqlite's own transaction handling is
  switched off so that SQLAlchemy's ``BEGIN`` is the real one (the documented recipe).
* ``lock_for_update`` takes a row lock that holds across processes: ``SELECT … FOR UPDATE`` on
  PostgreSQL; on SQLite a no-op ``UPDATE`` of the row, which takes the database write lock until the
  transaction ends (other writers wait on the busy timeout).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import MetaData, create_engine, event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


M = TypeVar("M", bound=Base)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy emit BEGIN itself
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


class Database:
    """Holds the engine and session factory of one process; bound to the app with ``init_app``."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._factory: sessionmaker[Session] | None = None
        self.url: str | None = None
        self._pool: tuple[int, int] | None = None

    def configure(self, url: str, *, pool_size: int = 10, max_overflow: int = 20) -> None:
        """Bind to ``url``. On PostgreSQL the process holds at most ``pool_size + max_overflow``
        connections through this engine (``DB_POOL_SIZE``, ``DB_MAX_OVERFLOW``); SQLite ignores both."""
        if self._engine is not None and self.url == url and self._pool == (pool_size, max_overflow):
            return
        if self._engine is not None:
            self._engine.dispose()
        self.url = url
        self._pool = (pool_size, max_overflow)
        pool = {} if url.startswith("sqlite") else {"pool_size": pool_size, "max_overflow": max_overflow}
        self._engine = make_engine(url, **pool)
        self._factory = sessionmaker(bind=self._engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("Database is not configured")
        return self._engine

    def session(self) -> Session:
        if self._factory is None:
            raise RuntimeError("Database is not configured")
        return self._factory()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on error."""
        session = self.session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @property
    def is_sqlite(self) -> bool:
        return bool(self.url and self.url.startswith("sqlite"))


def lock_for_update(session: Session, model: type[M], **where: Any) -> M | None:
    """Lock one row (found by column equality) until the transaction ends, across processes.

    On SQLite this must be the first statement of its transaction: a deferred transaction that has
    already read cannot safely upgrade to the write lock.
    """
    conditions = [getattr(model, k) == v for k, v in where.items()]
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        first_col = next(iter(where))
        session.execute(
            update(model)
            .where(*conditions)
            .values({first_col: getattr(model, first_col)})
            .execution_options(synchronize_session=False)
        )
        stmt = select(model).where(*conditions)
    else:
        stmt = select(model).where(*conditions).with_for_update()
    return session.execute(stmt.execution_options(populate_existing=True)).scalars().first()


db = Database()
