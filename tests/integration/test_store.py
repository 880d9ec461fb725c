"""The store on SQLite and on a real PostgreSQL: migrations, apply, leases, registry rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect

from dockyard.errors import Conflict
from dockyard.spec.loader import validate_data
from dockyard.store import model_versions
from dockyard.store import resources as repo
from dockyard.store.db import Store
from dockyard.store.tables import ModelVersionRow, utcnow
from tests import factories as f


@pytest.fixture
def store(database_url: str) -> Store:
    s = Store(database_url)
    s.migrate()
    s.migrate()  # idempotent
    yield s  # type: ignore[misc]
    s.close()


def test_schema_created(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "resources",
        "events",
        "workloads",
        "model_versions",
        "model_aliases",
        "alembic_version",
    } <= tables


def test_apply_is_idempotent_and_bumps_generation(store: Store) -> None:
    job = validate_data(f.job("train", ["python", "x.py"]))
    with store.session() as s:
        row, action = repo.apply(s, job)
        assert (action, row.generation) == ("created", 1)
    with store.session() as s:
        row, action = repo.apply(s, job)
        assert (action, row.generation) == ("unchanged", 1)
    changed = validate_data(f.job("train", ["python", "y.py"]))
    with store.session() as s:
        row, action = repo.apply(s, changed)
        assert (action, row.generation) == ("configured", 2)
        assert row.spec["command"] == ["python", "y.py"]
    labelled = validate_data(
        f.job("train", ["python", "y.py"])
        | {"metadata": {"name": "train", "labels": {"team": "a"}}}
    )
    with store.session() as s:
        row, action = repo.apply(s, labelled)
        assert (action, row.generation) == ("configured", 2)  # labels are not spec


def test_timestamps_are_utc_aware(store: Store) -> None:
    with store.session() as s:
        repo.apply(s, validate_data(f.volume("v")))
    with store.session() as s:
        row = repo.require(s, repo.Key("Volume", "default", "v"))
        assert row.created_at.tzinfo is not None
        assert abs((utcnow() - row.created_at).total_seconds()) < 60


def test_apply_refuses_a_resource_being_deleted(store: Store) -> None:
    vol = validate_data(f.volume("v"))
    with store.session() as s:
        row, _ = repo.apply(s, vol)
        repo.mark_deleted(s, row, {})
    with store.session() as s, pytest.raises(Conflict, match="being deleted"):
        repo.apply(s, vol)


def test_leases(store: Store) -> None:
    with store.session() as s:
        row, _ = repo.apply(s, validate_data(f.volume("v")))
        uid = row.uid
    with store.session() as s:
        assert repo.acquire_lease(s, uid, "a", 60)
    with store.session() as s:
        assert not repo.acquire_lease(s, uid, "b", 60)  # held by a
        assert repo.acquire_lease(s, uid, "a", 60)  # renewal
    with store.session() as s:
        later = utcnow() + timedelta(seconds=120)
        assert repo.acquire_lease(s, uid, "b", 60, now=later)  # expired: b takes it
        assert repo.holds_lease(s, uid, "b") and not repo.holds_lease(s, uid, "a")
    with store.session() as s:
        repo.release_lease(s, uid, "a")  # not the holder: no effect
        assert repo.holds_lease(s, uid, "b")
        repo.release_lease(s, uid, "b")
        assert not repo.holds_lease(s, uid, "b")


def test_model_versions_are_unique(store: Store) -> None:
    from sqlalchemy.exc import IntegrityError

    def add(version: int, key: str) -> None:
        with store.session() as s:
            s.add(
                ModelVersionRow(
                    project="default",
                    model="m",
                    version=version,
                    flavor="sklearn",
                    path="m.joblib",
                    files={},
                    metrics={},
                    lineage={},
                    signature={},
                    source_key=key,
                )
            )

    add(1, "a")
    with pytest.raises(IntegrityError):
        add(1, "b")
    with pytest.raises(IntegrityError):
        add(2, "a")
    with store.session() as s:
        assert model_versions.next_version(s, "default", "m") == 2
        model_versions.set_alias(s, "default", "m", "prod", 1)
    with store.session() as s:
        assert model_versions.aliases(s, "default", "m") == {"prod": 1}
