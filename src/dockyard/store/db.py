"""Engine, sessions and migrations for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from dockyard.errors import ServerUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """``postgresql://`` → the psycopg 3 driver; everything else unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except ModuleNotFoundError as exc:
        raise ServerUnavailable(
            f"the database driver for {url.split(':', 1)[0]} is not installed ({exc.name})",
            hint="pip install 'dockyard[postgres]'",
        ) from exc


MIGRATION_LOCK = 0x646F636B  # "dock": PostgreSQL advisory lock held while migrating


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; replicas may start together)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with contextlib.ExitStack() as stack:
        if engine.dialect.name == "sqlite":
            path = engine.url.database
            if path and path != ":memory:":
                lock = stack.enter_context(open(f"{path}.migrate.lock", "a+"))
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


class Store:
    """The database: the only truth about desired and observed state."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        migrate(self.engine)

    def resource_count(self) -> int:
        """How many resources the store holds (0 before its first migration)."""
        if not inspect(self.engine).has_table("resources"):
            return 0
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM resources")).scalar_one())

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
